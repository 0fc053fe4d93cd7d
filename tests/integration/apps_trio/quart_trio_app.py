"""A Quart-Trio app whose startup opens a trio-bound resource, served as WSGI through
crossgate on the trio portal (``asgi_to_wsgi(..., backend="trio")``). Routes, markers and
events as in :mod:`tests.integration.apps_asgi`, whose helpers run on trio too;
``/endless`` is a raw ASGI app beside Quart-Trio, mounted by ``dispatch`` (on the trio
portal, its lifespan fan-out reaches Quart-Trio).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from crossgate import dispatch
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi
from tests.integration.apps_asgi import Pool, download, endless, mark

app = QuartTrio(__name__)
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


application = asgi_to_wsgi(dispatch({"/endless": endless, "/": app}), backend="trio")
