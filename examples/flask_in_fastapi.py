"""A Flask app mounted inside a FastAPI app, both with their lifespans, on uvicorn.

``app.mount("/legacy", wsgi_to_asgi(flask_app, ...))`` serves the Flask app under /legacy
(Flask sees ``SCRIPT_NAME=/legacy``, so ``url_for`` builds /legacy/... URLs). The Flask side
gets startup and shutdown hooks through ``wsgi_to_asgi(on_startup=..., on_shutdown=...)``.

The point to take away: Starlette's ``Mount`` does not forward lifespan events to the apps it
mounts, so those hooks would never run. FastAPI's own lifespan therefore runs the mounted
app's lifespan with ``crossgate.lifespan(legacy)``: startup before the first request,
shutdown (after the Flask requests in flight finished) when the server stops.

Run: ``python -m examples.flask_in_fastapi [--port N]`` and open http://127.0.0.1:8000/ ,
or ``crossgate serve examples.flask_in_fastapi:app``.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from flask import Flask, url_for
from flask import request as flask_request

from crossgate import lifespan, wsgi_to_asgi

# --------------------------------------------------------------------------------------------
# The legacy Flask app, with a resource opened at startup and closed at shutdown
# --------------------------------------------------------------------------------------------


class HitCounter:
    """Stands in for what a legacy app opens at startup (a DB pool, a cache client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # Flask views run in crossgate's thread pool
        self.hits = 0
        self.closed = False

    def hit(self) -> int:
        with self._lock:
            self.hits += 1
            return self.hits

    def close(self) -> None:
        self.closed = True


flask_app = Flask(__name__)


def open_counter() -> None:
    """on_startup hook: runs in the adapter's thread pool before the first request."""
    flask_app.extensions["hit_counter"] = HitCounter()


def close_counter() -> None:
    """on_shutdown hook: runs after the Flask requests in flight have finished."""
    counter: HitCounter = flask_app.extensions.pop("hit_counter")
    counter.close()
    print(f"flask_in_fastapi: legacy counter closed after {counter.hits} hits", flush=True)


@flask_app.get("/")
def legacy_index() -> dict[str, Any]:
    return {
        "framework": "flask",
        "script_root": flask_request.script_root,
        "path": flask_request.path,
        "hits_url": url_for("legacy_hits"),
    }


@flask_app.route("/hits", methods=["GET", "POST"])
def legacy_hits() -> dict[str, Any]:
    counter: HitCounter = flask_app.extensions["hit_counter"]
    if flask_request.method == "POST":
        return {"hits": counter.hit()}
    return {"hits": counter.hits}


legacy = wsgi_to_asgi(flask_app, on_startup=[open_counter], on_shutdown=[close_counter])

# --------------------------------------------------------------------------------------------
# The FastAPI app that mounts it
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # Starlette's Mount does not pass lifespan events on to mounted apps: without this
    # block the Flask side's on_startup/on_shutdown hooks would never run.
    async with lifespan(legacy):
        yield {"greeting": "hello from FastAPI"}


app = FastAPI(title="crossgate: Flask in FastAPI", lifespan=app_lifespan)


@app.get("/")
async def index(request: Request) -> dict[str, Any]:
    return {
        "framework": "fastapi",
        "greeting": request.state.greeting,
        "legacy": str(request.url_for("legacy", path="/")),
    }


@app.get("/status")
async def status() -> dict[str, Any]:
    counter: HitCounter | None = flask_app.extensions.get("hit_counter")
    return {
        "fastapi_started": True,
        "flask_started": counter is not None and not counter.closed,
    }


app.mount("/legacy", legacy, name="legacy")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)

    import uvicorn  # noqa: PLC0415 - only needed to serve, not to import the app

    print(f"flask_in_fastapi: http://{args.host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
