"""Composable middleware built on the adapters.

* :mod:`~crossgate.middleware.lifespan`: ``with_lifespan`` gives any ASGI app startup and
  shutdown hooks, and runs the app's own lifespan inside them.
* :mod:`~crossgate.middleware.dispatch`: ``dispatch`` / ``dispatch_wsgi`` mount WSGI and ASGI
  apps under path prefixes, with lifespan fanned out to every mounted app.
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
from crossgate.middleware.lifespan import LifespanShim, with_lifespan

__all__ = [
    "Dispatcher",
    "LifespanShim",
    "WsgiDispatcher",
    "dispatch",
    "dispatch_wsgi",
    "is_asgi_app",
    "is_wsgi_app",
    "with_lifespan",
]
