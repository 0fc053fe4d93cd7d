"""``crossgate.dispatch`` mixing the Flask app (WSGI, wrapped by dispatch) and a trio ASGI
app under ``/trio``, for ``hypercorn -k trio``.

The trio app's lifespan opens a resource bound to the trio run (its token, and a
``trio.Lock`` that fails outside that run); each request uses it and says whether it runs
on the same run.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from typing import Any

import trio
import trio.lowlevel

from crossgate import dispatch
from crossgate._types import Receive, Send
from tests.integration.apps_asgi import mark
from tests.integration.apps_wsgi.flask_app import flask_app

Scope = MutableMapping[str, Any]


async def trio_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    assert scope["type"] == "http"
    resource = scope["state"]["resource"]
    async with resource["lock"]:
        await trio.lowlevel.checkpoint()
        answer = {
            "same_run": trio.lowlevel.current_trio_token() is resource["token"],
            "path": scope["path"],
            "root_path": scope["root_path"],
        }
    body = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    assert message["type"] == "lifespan.startup"
    scope["state"]["resource"] = {
        "token": trio.lowlevel.current_trio_token(),
        "lock": trio.Lock(),
    }
    mark(f"startup-trio-{os.getpid()}")
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    assert message["type"] == "lifespan.shutdown"
    mark(f"shutdown-trio-{os.getpid()}")
    await send({"type": "lifespan.shutdown.complete"})


application = dispatch({"/trio": trio_app, "/": flask_app})
