"""``python -m examples.django_orm [--port N]``: create the tables, then serve on uvicorn."""

from __future__ import annotations

import argparse

import uvicorn
from django.core.management import call_command
from django.db import connections

from examples.django_orm.app import app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.django_orm")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    call_command("migrate", run_syncdb=True, verbosity=0)
    connections.close_all()  # migrate's connection, on this thread: not a request's
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
