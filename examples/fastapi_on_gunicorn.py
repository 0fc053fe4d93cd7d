"""A FastAPI app with a lifespan-created resource, served by gunicorn through asgi_to_wsgi.

``asgi_to_wsgi(app)`` is a plain WSGI application, so gunicorn's threaded worker (gthread)
serves it. In each worker process crossgate runs the app on one event loop (the "portal")
and runs the app's lifespan there too, once per process: the pool the lifespan opens is
the same object, on the same loop, for every request that process serves.

The two gunicorn hooks below start the lifespan as soon as a worker has booted (instead
of at its first request) and run the lifespan shutdown when the worker exits.

Run: ``python -m examples.fastapi_on_gunicorn [--port N] [--workers N]`` and open
http://127.0.0.1:8000/pool a few times, or
``crossgate serve examples.fastapi_on_gunicorn:app --server gunicorn`` (same hooks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI, Request

from crossgate import asgi_to_wsgi


class Pool:
    """Stands in for a connection pool: made once per process, bound to its event loop."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()  # an asyncio object: usable only on the loop it is used on
        self.uses = 0
        self.closed = False

    async def acquire(self) -> int:
        async with self._lock:
            self.uses += 1
            return self.uses

    async def close(self) -> None:
        self.closed = True


class State(TypedDict):
    pool: Pool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    pool = Pool()
    print(f"fastapi_on_gunicorn: pool {pool.id} opened in process {os.getpid()}", flush=True)
    try:
        yield {"pool": pool}
    finally:
        await pool.close()
        print(f"fastapi_on_gunicorn: pool {pool.id} closed after {pool.uses} uses", flush=True)


app = FastAPI(title="crossgate: FastAPI on gunicorn", lifespan=lifespan)


@app.get("/pool")
async def use_pool(request: Request) -> dict[str, Any]:
    pool: Pool = request.state.pool
    return {
        "pool_id": pool.id,
        "uses": await pool.acquire(),
        "same_loop": asyncio.get_running_loop() is pool.loop,
        "pid": os.getpid(),
    }


@app.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    body = await request.body()
    return {"size": len(body), "text": body.decode(errors="replace")}


#: The WSGI application gunicorn serves.
wsgi_app = asgi_to_wsgi(app)


def post_worker_init(worker: object) -> None:
    """gunicorn hook, in each worker after fork: run the lifespan startup now."""
    wsgi_app.start()


def worker_exit(server: object, worker: object) -> None:
    """gunicorn hook, in the worker as it exits: run the lifespan shutdown."""
    wsgi_app.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)

    from gunicorn.app.base import BaseApplication  # noqa: PLC0415 - only needed to serve

    class Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
        """gunicorn run from Python: the settings below instead of a command line."""

        def load_config(self) -> None:
            settings = {
                "bind": [f"{args.host}:{args.port}"],
                "workers": args.workers,
                "worker_class": "gthread",
                "threads": args.threads,
                "post_worker_init": post_worker_init,
                "worker_exit": worker_exit,
                "control_socket_disable": True,  # gunicorn >= 25: no shared control socket
            }
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return wsgi_app

    print(f"fastapi_on_gunicorn: http://{args.host}:{args.port}/pool  (Ctrl+C to stop)", flush=True)
    Gunicorn().run()


if __name__ == "__main__":
    main()
