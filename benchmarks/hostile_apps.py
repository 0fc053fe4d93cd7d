"""The apps that the hostile-client suite (``benchmarks/hostile.py``) serves.

One WSGI app and its native ASGI twin answer the same routes:

* ``/hello``: ``hello`` (``/hello?n=7``: ``hello 7``, so pipelined answers show their order);
* ``POST /upload``: reads the whole body in 64 KiB pieces and answers its length;
* ``/events``: a server-sent-events stream, one small event every 100 ms, for ever
  (``time.sleep`` in the WSGI app, ``asyncio.sleep`` in the ASGI one);
* ``/download?size=N``: N bytes, streamed in 64 KiB chunks, each a new bytes object (so a
  server that queued chunks without backpressure would really hold them).

Each contender is one module attribute, so uvicorn takes ``benchmarks.hostile_apps:<attr>``
(hypercorn ``benchmarks.hostile_apps:build('<attr>')``):
``crossgate``, ``a2wsgi``, ``uvicorn`` (uvicorn's own ``_WSGIMiddleware``), ``asgiref``,
``hypercorn`` (hypercorn's ``AsyncioWSGIMiddleware``, for servers other than hypercorn) wrap
``wsgi_app`` with their default options; ``native`` is ``asgi_app``. On hypercorn, its own
WSGI wrapper serves ``wsgi_app`` directly (hypercorn detects a WSGI app), configured by
``HypercornWSGIConfig``. The wrappers are built on first access (PEP 562), so a server
process holds only the one it serves and its thread count is that one's.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final
from urllib.parse import parse_qs

from crossgate._types import Environ, Message, Receive, Send, StartResponse

__all__ = [
    "CHUNK",
    "EVENT_INTERVAL",
    "WRAPPERS",
    "HypercornWSGIConfig",
    "asgi_app",
    "build",
    "wsgi_app",
]

KIB: Final = 1024
MIB: Final = 1024 * KIB
#: Download chunk, and the size of the pieces an upload is read in.
CHUNK: Final = 64 * KIB
#: Seconds between two events of ``/events``.
EVENT_INTERVAL: Final = 0.1
#: hypercorn's WSGI wrapper buffers the whole body and refuses more than this (its defaults:
#: 64 KiB for the middleware, 16 MiB on hypercorn): raised so that the suite's 32 MiB
#: uploads are taken, and what buffering them costs is measured rather than refused.
HYPERCORN_MAX_BODY: Final = 64 * MIB


def _query(raw: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(raw).items()}


def _hello_body(query: dict[str, str]) -> bytes:
    n = query.get("n")
    return b"hello" if n is None else f"hello {n}".encode()


def _download(size: int) -> Iterator[bytes]:
    while size > 0:
        block = b"d" * min(CHUNK, size)  # a new object each time, as a real body's are
        size -= len(block)
        yield block


def _event(index: int) -> bytes:
    return f"data: tick {index}\n\n".encode()


# ------------------------------------------------------------------------------------------
# The WSGI app
# ------------------------------------------------------------------------------------------


def _events() -> Iterator[bytes]:
    index = 0
    while True:
        yield _event(index)
        index += 1
        time.sleep(EVENT_INTERVAL)


def _read_all(environ: Environ) -> int:
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH") or ""
    left = int(declared) if declared.isdigit() else -1
    total = 0
    while left:
        data = stream.read(CHUNK if left < 0 else min(CHUNK, left))
        if not data:
            break
        total += len(data)
        left -= len(data) if left > 0 else 0
    return total


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI side (routes: see the module docstring)."""
    path = environ["PATH_INFO"]
    query = _query(environ.get("QUERY_STRING", ""))
    if path == "/hello":
        body = _hello_body(query)
    elif path == "/upload":
        body = str(_read_all(environ)).encode()
    elif path == "/events":
        start_response(
            "200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
        )
        return _events()
    elif path == "/download":
        size = int(query.get("size", "0"))
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
        )
        return _download(size)
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# ------------------------------------------------------------------------------------------
# The native ASGI twin
# ------------------------------------------------------------------------------------------


async def _answer(send: Send, body: bytes, status: int = 200) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _receive_all(receive: Receive) -> int | None:
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            return total


async def _stream(send: Send, headers: list[tuple[bytes, bytes]], blocks: Iterable[bytes]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for block in blocks:
        await send({"type": "http.response.body", "body": block, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def asgi_app(scope: Message, receive: Receive, send: Send) -> None:
    """The native ASGI side (routes: see the module docstring)."""
    if scope["type"] != "http":
        return  # no lifespan: the servers carry on without one
    path = scope["path"]
    query = _query(scope["query_string"].decode("latin-1"))
    try:
        if path == "/hello":
            await _answer(send, _hello_body(query))
        elif path == "/upload":
            total = await _receive_all(receive)
            if total is not None:
                await _answer(send, str(total).encode())
        elif path == "/events":
            headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            index = 0
            while True:
                await send({"type": "http.response.body", "body": _event(index), "more_body": True})
                index += 1
                await asyncio.sleep(EVENT_INTERVAL)
        elif path == "/download":
            size = int(query.get("size", "0"))
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(size).encode()),
            ]
            await _stream(send, headers, _download(size))
        else:
            await _answer(send, b"not found", 404)
    except OSError:  # the client left (send() on a closed connection)
        return


# ------------------------------------------------------------------------------------------
# The contenders
# ------------------------------------------------------------------------------------------


def _crossgate() -> Any:
    from crossgate import wsgi_to_asgi  # noqa: PLC0415

    return wsgi_to_asgi(wsgi_app)


def _a2wsgi() -> Any:
    from a2wsgi import WSGIMiddleware  # noqa: PLC0415

    return WSGIMiddleware(wsgi_app)  # type: ignore[arg-type]


def _uvicorn() -> Any:
    # The implementation uvicorn ships; its public ``WSGIMiddleware`` (and ``--interface
    # wsgi``) is a2wsgi's when a2wsgi is installed, this class otherwise.
    from uvicorn.middleware.wsgi import _WSGIMiddleware  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _WSGIMiddleware(wsgi_app)  # type: ignore[arg-type]


def _asgiref() -> Any:
    from asgiref.wsgi import WsgiToAsgi  # noqa: PLC0415

    return WsgiToAsgi(wsgi_app)  # type: ignore[no-untyped-call]


def _hypercorn() -> Any:
    from hypercorn.middleware import AsyncioWSGIMiddleware  # noqa: PLC0415

    return AsyncioWSGIMiddleware(wsgi_app, max_body_size=HYPERCORN_MAX_BODY)


WRAPPERS: dict[str, Callable[[], Any]] = {
    "crossgate": _crossgate,
    "a2wsgi": _a2wsgi,
    "uvicorn": _uvicorn,
    "asgiref": _asgiref,
    "hypercorn": _hypercorn,
    "native": lambda: asgi_app,
}


class HypercornWSGIConfig:
    """``hypercorn --config python:benchmarks.hostile_apps.HypercornWSGIConfig``: hypercorn's
    own WSGI wrapper with the body limit raised (see ``HYPERCORN_MAX_BODY``)."""

    wsgi_max_body_size = HYPERCORN_MAX_BODY


_built: dict[str, Any] = {}


def build(name: str) -> Any:
    """The contender ``name``, made once (hypercorn takes ``module:build('name')``: it looks
    the app up with ``eval`` in the module's namespace, which misses ``__getattr__``)."""
    if name not in _built:
        _built[name] = WRAPPERS[name]()
    return _built[name]


def __getattr__(name: str) -> Any:
    if name not in WRAPPERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return build(name)
