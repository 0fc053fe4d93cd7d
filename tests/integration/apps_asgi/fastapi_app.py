"""A FastAPI app with a lifespan that opens a resource, served as WSGI through crossgate.

Routes: see the package docstring.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi
from tests.integration.apps_asgi import Pool, download, endless, mark


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
    return await pool.state()


@api.get("/download/{size}")
async def download_view(size: int) -> StreamingResponse:
    return StreamingResponse(download(size), media_type="application/octet-stream")


@api.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


api.mount("/endless", endless)

application = asgi_to_wsgi(api)
