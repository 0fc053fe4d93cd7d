"""ASGI apps (FastAPI, Quart, Quart-Trio) served through crossgate.asgi_to_wsgi by real
WSGI servers.

Each module exports ``application`` (the WSGI app) and serves the same routes:

* ``/state``: the lifespan's resource (opened at startup, bound to its loop) as JSON;
* ``/download/{size}``: ``size`` bytes streamed from an async generator (``BLOCK`` repeated);
* ``/upload`` (POST): the body read as a stream, answered as ``{"size", "sha256"}``;
* ``/endless/?token``: a raw ASGI app streaming until the client leaves (see :func:`endless`).

Startup and shutdown leave marker files under ``$CROSSGATE_TEST_DIR`` (checked after the
server stopped); events the test waits for (a client disconnect) are sent to it over a
socket, ``$CROSSGATE_TEST_NOTIFY``. The helpers run on asyncio and on trio alike (anyio),
so that an app on the trio portal shares them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import sniffio

from crossgate._types import Receive, Send

__all__ = ["BLOCK", "CHUNK", "Pool", "current_run", "download", "endless", "mark", "notify"]

MARKERS = Path(os.environ.get("CROSSGATE_TEST_DIR", "."))
CHUNK = 64 * 1024
#: The download body: this block repeated, the last one cut to size.
BLOCK = bytes(range(256)) * (CHUNK // 256)


def mark(name: str) -> None:
    (MARKERS / name).write_text(str(os.getpid()))


def current_run() -> object:
    """What identifies the running loop: asyncio's loop, or the trio run's token."""
    if sniffio.current_async_library() == "trio":
        import trio  # noqa: PLC0415 (only where a trio run is going)

        return trio.lowlevel.current_trio_token()
    return asyncio.get_running_loop()


class Pool:
    """Stands for a connection pool: bound to the loop it was opened on."""

    def __init__(self) -> None:
        self.run = current_run()
        self.lock = anyio.Lock()  # used per request
        self.open = True

    async def state(self) -> dict[str, Any]:
        async with self.lock:
            return {
                "open": self.open,
                "same_loop": current_run() is self.run,
                "pid": os.getpid(),
            }


async def download(size: int) -> AsyncIterator[bytes]:
    """The ``/download/{size}`` body: ``BLOCK`` repeated, the last one cut to ``size``."""
    sent = 0
    while sent < size:
        block = BLOCK[: size - sent]
        await anyio.lowlevel.checkpoint()  # trio's frameworks expect a checkpoint per item
        yield block
        sent += len(block)


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
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(event.encode() + b"\n")
