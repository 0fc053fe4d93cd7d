"""crossgate: translate between WSGI (PEP 3333) and ASGI, in both directions.

The public API is flat: everything users import lives here, in :data:`__all__`.

The specifications the code implements, whose sentences are quoted beside the rules they
set (each module names only the section it follows):

* PEP 3333, WSGI: https://peps.python.org/pep-3333/
* ASGI HTTP and WebSocket, with its "WSGI Compatibility" section:
  https://asgi.readthedocs.io/en/latest/specs/www.html
* ASGI lifespan: https://asgi.readthedocs.io/en/latest/specs/lifespan.html
* ASGI extensions: https://asgi.readthedocs.io/en/latest/extensions.html
* RFC 9110, HTTP semantics (fields): https://www.rfc-editor.org/rfc/rfc9110
* RFC 9112, HTTP/1.1 (status line, message framing): https://www.rfc-editor.org/rfc/rfc9112
"""

from __future__ import annotations

import typing as _typing

from crossgate import _deprecated
from crossgate._errors import (
    ClientDisconnected,
    ClientDisconnectFilter,
    CrossgateError,
    InvalidHeader,
    InvalidResponse,
    InvalidStatus,
    LifespanError,
    RequestBodyTooLarge,
    ResponseTimeout,
)
from crossgate._types import ASGIApp, WSGIApp
from crossgate.adapters._bridge import WorkerPool, set_default_workers
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI, asgi_to_wsgi
from crossgate.adapters.calls import async_to_sync, sync_to_async, thread_sensitive
from crossgate.adapters.environ import ENVIRON_SCOPE_KEY
from crossgate.adapters.lifespan import LifespanManager, lifespan, lifespan_sync
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI, wsgi_to_asgi
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

__version__ = "0.1.0.dev0"

__all__ = [
    "ENVIRON_SCOPE_KEY",
    "ASGIApp",
    "ASGIToWSGI",
    "ClientDisconnectFilter",
    "ClientDisconnected",
    "CrossgateError",
    "Dispatcher",
    "Fallback",
    "InvalidHeader",
    "InvalidResponse",
    "InvalidStatus",
    "LifespanError",
    "LifespanManager",
    "LifespanShim",
    "RequestBodyTooLarge",
    "ResponseTimeout",
    "WSGIApp",
    "WSGIDispatcher",
    "WSGIFallback",
    "WSGIToASGI",
    "WorkerPool",
    "__version__",
    "asgi_to_wsgi",
    "async_to_sync",
    "dispatch",
    "dispatch_wsgi",
    "fallback",
    "fallback_wsgi",
    "is_asgi_app",
    "is_wsgi_app",
    "lifespan",
    "lifespan_sync",
    "set_default_workers",
    "sync_to_async",
    "thread_sensitive",
    "with_lifespan",
    "wsgi_to_asgi",
]


#: Names before the WSGI/ASGI capitalisation of 0.1, kept for one release.
_RENAMED: _typing.Final = {
    "AsgiToWsgi": "ASGIToWSGI",
    "WsgiToAsgi": "WSGIToASGI",
    "WsgiDispatcher": "WSGIDispatcher",
    "WsgiFallback": "WSGIFallback",
}


def __getattr__(name: str) -> _typing.Any:
    return _deprecated.renamed(__name__, _RENAMED, globals())(name)
