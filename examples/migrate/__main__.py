"""``python -m examples.migrate [--host H] [--port N]``: serve the migration on uvicorn."""

from __future__ import annotations

from examples.migrate.app import main

main()
