"""The ASGI app that ``test_hostile_wsgi_servers.py`` serves through ``asgi_to_wsgi`` on
gunicorn and waitress.

``application`` is ``benchmarks.hostile_apps.asgi_app`` (the hostile suite's native ASGI
app: ``/hello``, ``POST /upload`` read through ``receive()`` and answered with its length,
``/download?size=N`` in 64 KiB chunks) with two routes of its own:

* ``/__stats``: JSON ``{"tasks": ..., "stubborn": ..., "cancelled": ...}``: the tasks of the
  loop the app runs on (crossgate's portal loop, one per process), how many ``/stubborn``
  calls are still running and how many were cancelled;
* ``/stubborn?size=N``: a download that ignores the disconnect: when ``send()`` fails it
  carries on waiting, so crossgate has to cancel it once its disconnect grace (3 s by
  default) has passed.
"""

from __future__ import annotations

import asyncio
import json

from benchmarks.hostile_apps import CHUNK, asgi_app

from crossgate import asgi_to_wsgi
from crossgate._types import Message, Receive, Send

__all__ = ["app", "application"]

_counts = {"stubborn": 0, "cancelled": 0}


async def _json(send: Send, data: object) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stubborn(scope: Message, send: Send) -> None:
    query = dict(part.partition("=")[::2] for part in scope["query_string"].decode().split("&"))
    size = int(query.get("size") or 0)
    _counts["stubborn"] += 1
    try:
        headers = [(b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            while size > 0:
                block = b"s" * min(CHUNK, size)
                size -= len(block)
                await send({"type": "http.response.body", "body": block, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except OSError:  # the client left: carry on regardless, until cancelled
            await asyncio.Event().wait()  # never set: only a cancellation ends it
    except asyncio.CancelledError:
        _counts["cancelled"] += 1
        raise
    finally:
        _counts["stubborn"] -= 1


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """The hostile suite's ASGI app, ``/__stats`` and ``/stubborn`` (see the module docstring)."""
    path = scope.get("path")
    if path == "/__stats":
        await _json(send, {"tasks": len(asyncio.all_tasks()), **_counts})
    elif path == "/stubborn":
        await _stubborn(scope, send)
    else:
        await asgi_app(scope, receive, send)


application = asgi_to_wsgi(app, lifespan="off")
