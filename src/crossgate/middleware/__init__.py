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

from typing import Any, Final

from crossgate._deprecated import renamed
from crossgate.middleware.dispatch import (
    Dispatcher,
    WSGIDispatcher,
    dispatch,
    dispatch_wsgi,
    is_asgi_app,
    is_wsgi_app,
)
from crossgate.middleware.fallback import Fallback, WSGIFallback, fallback, fallback_wsgi
from crossgate.middleware.lifespan import LifespanShim, with_lifespan

__all__ = [
    "Dispatcher",
    "Fallback",
    "LifespanShim",
    "WSGIDispatcher",
    "WSGIFallback",
    "dispatch",
    "dispatch_wsgi",
    "fallback",
    "fallback_wsgi",
    "is_asgi_app",
    "is_wsgi_app",
    "with_lifespan",
]


#: Names before the WSGI/ASGI capitalisation of 0.1, kept for one release.
_RENAMED: Final = {
    "WsgiDispatcher": "WSGIDispatcher",
    "WsgiFallback": "WSGIFallback",
}


def __getattr__(name: str) -> Any:
    return renamed(__name__, _RENAMED, globals())(name)
