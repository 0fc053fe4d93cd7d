"""``python -m examples.django_on_uvicorn [--host H] [--port N]``: migrate and serve."""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The Django example on uvicorn, via crossgate")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)

    import uvicorn  # noqa: PLC0415 - only needed to serve

    from examples.django_on_uvicorn import app  # noqa: PLC0415 - sets Django up

    print(f"django_on_uvicorn: http://{args.host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    # The database is migrated by the app's lifespan startup hook, before the first request.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
