"""A Quart-Trio app whose startup opens a trio-bound resource, served as WSGI through
crossgate on the trio portal. Routes, markers and events as in
:mod:`tests.integration.apps_asgi`; ``/endless`` is a raw ASGI app beside Quart-Trio.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from crossgate import dispatch
from crossgate._types import Receive, Send
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi
from tests.integration.apps_asgi import BLOCK, CHUNK, mark

app = QuartTrio(__name__)


class Pool:
    """Stands for a connection pool: bound to the trio run it was opened in."""

    def __init__(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.lock = trio.Lock()  # used per request: fails outside its run
        self.open = True

    async def state(self) -> dict[str, Any]:
        async with self.lock:
            return {
                "open": self.open,
                "same_loop": trio.lowlevel.current_trio_token() is self.token,
                "pid": os.getpid(),
            }


pools: list[Pool] = []


@app.before_serving
async def open_pool() -> None:
    pools.append(Pool())
    mark(f"startup-{os.getpid()}")


@app.after_serving
async def close_pool() -> None:
    pools[-1].open = False
    mark(f"shutdown-{os.getpid()}")


@app.get("/state")
async def state() -> dict[str, Any]:
    return await pools[-1].state()


async def download(size: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        block = BLOCK[: size - sent]
        await trio.lowlevel.checkpoint()
        yield block
        sent += len(block)


@app.get("/download/<int:size>")
async def download_view(size: int) -> Response:
    return Response(download(size), content_type="application/octet-stream")


@app.post("/upload")
async def upload() -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.body:
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


async def endless(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """Streams until the client leaves, then reports that its send() raised OSError."""
    token = scope["query_string"].decode() or "anonymous"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    try:
        while True:
            await send({"type": "http.response.body", "body": b"z" * CHUNK, "more_body": True})
    except OSError:
        message = await receive()
        await notify(f"disconnect-{token}-{message['type']}")
        raise


async def notify(event: str) -> None:
    """Tell the test process (listening on $CROSSGATE_TEST_NOTIFY, host:port) what happened."""
    host, _, port = os.environ["CROSSGATE_TEST_NOTIFY"].rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(event.encode() + b"\n")


# dispatch on the trio portal: the raw app at /endless beside Quart-Trio, whose lifespan
# reaches it through dispatch's fan-out.
routes = dispatch({"/endless": (endless, "asgi"), "/": (app, "asgi")})

application = asgi_to_wsgi(routes, backend="trio")
