"""``with_lifespan(app, on_startup=..., on_shutdown=...)``: any ASGI app given a lifespan.

Kept as an import path: the shim lives with the rest of the lifespan protocol, in
:mod:`crossgate.adapters.lifespan` (see :class:`~crossgate.adapters.lifespan.LifespanShim`).
"""

from __future__ import annotations

from crossgate.adapters.lifespan import Hook, LifespanShim, with_lifespan

__all__ = ["Hook", "LifespanShim", "with_lifespan"]
