"""The migration, composed: FastAPI first, the Flask app for every route FastAPI lacks.

``fallback(api, legacy)`` sends each request to FastAPI; its 404 is dropped unsent and the
request (body included) goes to Flask. One server, one lifespan for both apps, the same
URLs as before the migration.

Run: ``python -m examples.migrate [--port N]`` or ``uvicorn examples.migrate.app:app``.
"""

from __future__ import annotations

import argparse
import os

from crossgate import fallback, wsgi_to_asgi
from examples.migrate.legacy import close_resources, legacy, open_resources
from examples.migrate.new import api

app = fallback(
    api,
    wsgi_to_asgi(legacy, on_startup=[open_resources], on_shutdown=[close_resources]),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)

    import uvicorn  # noqa: PLC0415 - only needed to serve, not to import the app

    print(f"examples.migrate: http://{args.host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
