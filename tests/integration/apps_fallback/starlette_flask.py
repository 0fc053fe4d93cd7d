"""Starlette in front of the legacy Flask app on a WSGI server: ``wsgi``, for gunicorn."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from crossgate import fallback_wsgi
from tests.integration.apps_fallback.legacy_flask import legacy


@contextlib.asynccontextmanager
async def site_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"db": "db-of-the-site"}


async def user(request: Request) -> JSONResponse:
    url = str(request.url_for("user", user=request.path_params["user"]))
    return JSONResponse({"app": "starlette", "url": url, "db": request.state.db})


async def echo_new(request: Request) -> JSONResponse:
    body = await request.body()
    digest = hashlib.sha256(body).hexdigest()
    return JSONResponse({"app": "starlette", "length": len(body), "sha256": digest})


async def stream_new(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(5):
            yield f"starlette {index}\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="text/plain")


site = Starlette(
    routes=[
        Route("/users/{user:int}", user, name="user"),
        Route("/echo-new", echo_new, methods=["POST"]),
        Route("/stream-new", stream_new),
    ],
    lifespan=site_lifespan,
)

wsgi = fallback_wsgi(site, legacy)
