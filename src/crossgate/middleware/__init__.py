"""Composable middleware built on the adapters.

* :mod:`~crossgate.middleware.lifespan`: ``with_lifespan`` gives any ASGI app startup and
  shutdown hooks, and runs the app's own lifespan inside them (it lives with the rest of
  the lifespan protocol, in :mod:`crossgate.adapters.lifespan`).
* :mod:`~crossgate.middleware.dispatch`: ``dispatch`` / ``dispatch_wsgi`` mount WSGI and ASGI
  apps under path prefixes, with lifespan fanned out to every mounted app.
* :mod:`~crossgate.middleware.fallback`: ``fallback`` / ``fallback_wsgi`` serve each request
  from a primary app, and from a legacy app where the primary answers 404 (a migration
  route by route), with lifespan reaching both.
"""

from __future__ import annotations

from crossgate.middleware.dispatch import (
    Dispatcher,
    WsgiDispatcher,
    dispatch,
    dispatch_wsgi,
    is_asgi_app,
    is_wsgi_app,
)
from crossgate.middleware.fallback import Fallback, WsgiFallback, fallback, fallback_wsgi
from crossgate.middleware.lifespan import LifespanShim, with_lifespan

__all__ = [
    "Dispatcher",
    "Fallback",
    "LifespanShim",
    "WsgiDispatcher",
    "WsgiFallback",
    "dispatch",
    "dispatch_wsgi",
    "fallback",
    "fallback_wsgi",
    "is_asgi_app",
    "is_wsgi_app",
    "with_lifespan",
]
