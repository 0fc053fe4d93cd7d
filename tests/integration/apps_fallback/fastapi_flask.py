"""FastAPI in front of the legacy Flask app: ``app``, for uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

from crossgate import fallback, wsgi_to_asgi
from tests.integration.apps_fallback.legacy_flask import legacy, started, stopped


@contextlib.asynccontextmanager
async def api_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"db": "db-of-the-api"}


api = FastAPI(lifespan=api_lifespan)


@api.get("/users/{user}")
async def user(user: int, request: Request) -> dict[str, Any]:
    url = str(request.url_for("user", user=user))
    return {"app": "fastapi", "url": url, "db": request.state.db}


@api.post("/echo-new")
async def echo_new(request: Request) -> dict[str, Any]:
    body = await request.body()
    return {"app": "fastapi", "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@api.get("/stream-new")
async def stream_new() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(5):
            yield f"fastapi {index}\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="text/plain")


@api.get("/deciding")
async def deciding() -> None:
    # Takes its time to decide that the path is not its own.
    await asyncio.sleep(1.0)
    raise HTTPException(status_code=404)


app = fallback(api, wsgi_to_asgi(legacy, on_startup=[started], on_shutdown=[stopped]))
