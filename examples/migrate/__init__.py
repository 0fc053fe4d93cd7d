"""A Flask app whose endpoints move to FastAPI one by one (see docs/migration.md).

* :mod:`.legacy`: the Flask app as it was, minus the views already moved;
* :mod:`.new`: the FastAPI app that takes them over, reading and writing Flask's session;
* :mod:`.app`: ``fallback(new, legacy)``, one ASGI app with one lifespan, for one server.

Run: ``python -m examples.migrate [--port N]`` or ``uvicorn examples.migrate.app:app``.
"""
