"""The spec types in one place.

ASGI types come from :mod:`asgiref.typing` (the ASGI spec's own typed dictionaries); WSGI
types follow :mod:`wsgiref.types` (PEP 3333). Public signatures take the loose aliases
(`ASGIApp`, `WSGIApp`) so that any framework's application type-checks against them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Protocol, TypeAlias

from asgiref.typing import (
    ASGI3Application,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    LifespanScope,
    Scope,
)

__all__ = [
    "ASGI3Application",
    "ASGIApp",
    "ASGIReceiveCallable",
    "ASGISendCallable",
    "Environ",
    "ExcInfo",
    "HTTPScope",
    "LifespanScope",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "StartResponse",
    "WSGIApp",
    "WriteCallable",
]

# Loose ASGI aliases, as Starlette's `types.py` has them, for what crossgate builds itself.
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
# The apps crossgate is given: frameworks annotate theirs with plain mappings (Starlette,
# FastAPI) or with their own TypedDicts (Quart, through hypercorn.typing; asgiref.typing),
# and a callable that takes a TypedDict scope does not take a MutableMapping (parameters are
# contravariant), so the parameters are left open: any three-argument awaitable callable.
ASGIApp: TypeAlias = Callable[[Any, Any, Any], Awaitable[None]]

# WSGI, PEP 3333 (https://peps.python.org/pep-3333/), as in `wsgiref.types` (3.11+).
Environ: TypeAlias = dict[str, Any]
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType]
OptExcInfo: TypeAlias = ExcInfo | tuple[None, None, None]
WriteCallable: TypeAlias = Callable[[bytes], object]


class StartResponse(Protocol):
    """The `start_response` callable of PEP 3333."""

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = ...,
        /,
    ) -> WriteCallable: ...


WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]
