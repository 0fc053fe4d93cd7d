"""The lifespan protocol, in one place: driven from outside, served for crossgate's apps,
and the hooks users give them.

* ``_manager``: drive an ASGI app's lifespan from outside. ``async with lifespan(app) as
  state:`` runs its startup on the current loop and its shutdown when the block ends;
  ``with lifespan_sync(app) as state:`` does the same from sync code, on the per-process
  portal loop. :class:`LifespanManager` is the one run beneath both, and beneath
  ``asgi_to_wsgi``.
* ``_serve``: serve the protocol for crossgate's own apps. :func:`serve_lifespan` answers
  the server's events around an async context manager (entered at startup, left at
  shutdown); :class:`LifespanGroup` composes several apps' lifespans into one (``dispatch``,
  ``fallback``), shutting them down in reverse order; :class:`Teardown` is that order.
* ``_hooks``: :class:`Hooks`, the one runner of ``on_startup``/``on_shutdown`` hooks, for
  ``with_lifespan`` and ``wsgi_to_asgi`` alike.
* ``_shim``: :class:`LifespanShim` (``with_lifespan``), any ASGI app given hooks, its own
  lifespan run inside them; also importable from :mod:`crossgate.middleware.lifespan`.

A new lifespan feature goes into the piece it concerns: a hook behaviour into ``Hooks``
(every app that takes hooks gets it), a protocol rule into ``serve_lifespan`` (every
crossgate app that answers the protocol gets it), a driving rule into
``LifespanManager``.
"""

from __future__ import annotations

from crossgate.adapters.lifespan._hooks import Hook, Hooks
from crossgate.adapters.lifespan._manager import (
    CANCEL_GRACE,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LifespanManager,
    lifespan,
    lifespan_sync,
)
from crossgate.adapters.lifespan._serve import LifespanGroup, Teardown, serve_lifespan
from crossgate.adapters.lifespan._shim import LifespanShim, with_lifespan

__all__ = [
    "CANCEL_GRACE",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "Hook",
    "Hooks",
    "LifespanGroup",
    "LifespanManager",
    "LifespanShim",
    "Teardown",
    "lifespan",
    "lifespan_sync",
    "serve_lifespan",
    "with_lifespan",
]
