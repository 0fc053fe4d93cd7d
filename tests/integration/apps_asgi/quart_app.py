"""A Quart app with startup and shutdown hooks that open a resource, served as WSGI through
crossgate. Routes: see the package docstring; ``/endless`` is mounted beside Quart with
crossgate's dispatcher. :func:`with_routes` puts the same hooks and routes on any Quart
app (the Quart-Trio one in ``tests.integration.apps_trio`` too).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, TypeVar

from quart import Quart, Response, request

from crossgate import dispatch
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi
from tests.integration.apps_asgi import Pool, download, endless, mark

App = TypeVar("App", bound=Quart)


def with_routes(app: App) -> App:
    """``app`` with the lifespan hooks and the routes every app of the package serves."""
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

    return app


app = with_routes(Quart(__name__))
application = asgi_to_wsgi(dispatch({"/endless": endless, "/": app}))
