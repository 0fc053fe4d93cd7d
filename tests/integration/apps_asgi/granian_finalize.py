"""The FastAPI app for granian's WSGI interface, whose lifespan shutdown then runs when a
worker stops.

granian's workers are ``multiprocessing`` processes forked by its main process, and each
imports this module itself. When a worker stops, ``multiprocessing`` ends it with
``os._exit()``: atexit, where crossgate runs the ASGI app's lifespan shutdown, never runs.
What ``multiprocessing`` does run there, before that, are its own finalizers: one registered
here closes the app (``ASGIToWSGI.close()`` runs the lifespan shutdown).
"""

from __future__ import annotations

from multiprocessing import util

from tests.integration.apps_asgi.fastapi_app import application

__all__ = ["application"]

# With no object to follow, a finalizer runs at exit when it has an exit priority.
util.Finalize(None, application.close, exitpriority=10)
