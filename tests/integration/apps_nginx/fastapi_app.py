"""The FastAPI app behind nginx: Starlette's ``url_for`` builds the URL."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.get("/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    return {
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
        "url": str(request.url_for("whoami")),
        "pid": os.getpid(),
    }


@app.get("/stream/numbers")
async def numbers() -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(5):
            if number:
                await asyncio.sleep(0.4)
            yield f"line {number}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


@app.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}
