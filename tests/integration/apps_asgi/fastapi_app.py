"""A FastAPI app with a lifespan that opens a resource, served as WSGI through crossgate.

``application`` is what the WSGI servers import. Startup and shutdown leave marker files
under ``$CROSSGATE_TEST_DIR`` (checked after the server stopped); events the test waits for
(a client disconnect) are sent to it over a socket, ``$CROSSGATE_TEST_NOTIFY``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from crossgate._types import Receive, Send
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi

MARKERS = Path(os.environ.get("CROSSGATE_TEST_DIR", "."))
CHUNK = 64 * 1024
#: The download body: this block repeated, the last one cut to size.
BLOCK = bytes(range(256)) * (CHUNK // 256)


def mark(name: str) -> None:
    (MARKERS / name).write_text(str(os.getpid()))


class Pool:
    """Stands for a connection pool: bound to the loop it was opened on."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()  # used per request: fails on another loop
        self.open = True


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    pool = Pool()
    mark(f"startup-{os.getpid()}")
    yield {"pool": pool}
    pool.open = False
    mark(f"shutdown-{os.getpid()}")


api = FastAPI(lifespan=lifespan)


@api.get("/state")
async def state(request: Request) -> dict[str, Any]:
    pool: Pool = request.state.pool
    async with pool.lock:
        return {
            "open": pool.open,
            "same_loop": asyncio.get_running_loop() is pool.loop,
            "pid": os.getpid(),
        }


@api.get("/download/{size}")
async def download(size: int) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            block = BLOCK[: size - sent]
            yield block
            sent += len(block)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@api.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


async def endless(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """Streams until the client leaves, then records that its send() raised OSError."""
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
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(event.encode() + b"\n")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


api.mount("/endless", endless)

application = asgi_to_wsgi(api)
