"""Apps served by the `crossgate serve` option tests (``tests.cli.apps:...``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable

import sniffio

from crossgate._types import Environ, Message, Receive, Send, StartResponse


def wsgi_echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """What the server and crossgate made of the request; ``/slow`` takes 10 s."""
    if environ["PATH_INFO"] == "/slow":
        time.sleep(10)
    answer = {
        "client": environ.get("REMOTE_ADDR"),
        "scheme": environ["wsgi.url_scheme"],
        "pid": os.getpid(),
    }
    body = json.dumps(answer).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


async def asgi_echo(scope: Message, receive: Receive, send: Send) -> None:
    """The same for an ASGI app (the lifespan is answered by crossgate's shim)."""
    if scope["type"] != "http":
        raise ValueError(f"cannot handle {scope['type']!r}")
    client = scope.get("client")
    answer = {
        "client": client[0] if client else None,
        "scheme": scope["scheme"],
        "pid": os.getpid(),
        # The event loop library running the app (--loop).
        "library": sniffio.current_async_library(),
    }
    body = json.dumps(answer).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
