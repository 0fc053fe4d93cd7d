"""What kind of application a callable is: ASGI 3, ASGI 2 ("double callable") or WSGI.

Used by ``dispatch`` to wrap what it mounts, and by the adapters to refuse, at once and by
name, an application of the kind they translate *to* (``asgi_to_wsgi(flask_app)`` would
otherwise fail at the first request with a ``TypeError`` deep inside).
"""

from __future__ import annotations

import inspect
from typing import Literal, TypeAlias

from asgiref.sync import iscoroutinefunction

__all__ = ["Shape", "is_asgi_app", "is_wsgi_app", "refuse_the_wrong_kind", "shape"]

Shape: TypeAlias = Literal["asgi3", "asgi2", "wsgi"]


def shape(app: object) -> Shape | None:
    """ASGI 3 (async callable), ASGI 2 (double callable), WSGI, or None when unsure.

    1. asgiref's hints ``_asgi_single_callable``/``_asgi_double_callable`` decide first;
    2. a coroutine function, or an object whose ``__call__`` is one, is ASGI 3;
    3. any other callable is looked at by how many positional arguments it binds: two is
       WSGI (``environ, start_response``; a PEP 3333 app class too); one is an ASGI 2
       factory (``scope``; ASGI 2 classes); three is ASGI 3 returning an awaitable.
    """
    if not callable(app):
        return None
    if getattr(app, "_asgi_single_callable", False):
        return "asgi3"
    if getattr(app, "_asgi_double_callable", False):
        return "asgi2"
    if _async_callable(app):
        return "asgi3"
    counts = _positional_counts(app)
    if counts is None:
        return None
    for count, kind in ((2, "wsgi"), (1, "asgi2"), (3, "asgi3")):
        if count in counts:
            return kind  # type: ignore[return-value]
    return None


def is_asgi_app(app: object) -> bool:
    """Whether ``app`` looks like an ASGI application (3, or 2 "double callable")."""
    return shape(app) in ("asgi3", "asgi2")


def is_wsgi_app(app: object) -> bool:
    """Whether ``app`` looks like a PEP 3333 application: a sync callable of two arguments."""
    return shape(app) == "wsgi"


def refuse_the_wrong_kind(app: object, want: Literal["asgi", "wsgi"]) -> None:
    """Raise TypeError, naming ``app`` and what to use instead, when ``app`` is certainly
    not of the kind ``want``; stay silent when that is not certain.

    Certainly WSGI: a sync callable taking exactly two positional arguments (a Flask or
    Django app), never one or three. Certainly not WSGI: an async callable (FastAPI,
    Starlette, Quart), one asgiref marks as ASGI, or one that cannot take
    ``(environ, start_response)``. Where the signature cannot be read, nothing is certain.
    """
    if want == "asgi":
        if callable(app) and not _hinted(app) and not _async_callable(app):
            if _positional_counts(app) == {2}:
                raise TypeError(
                    f"crossgate.asgi_to_wsgi() takes an ASGI application, but {app!r} is a "
                    "WSGI application: serve it on a WSGI server as it is, or use "
                    "crossgate.wsgi_to_asgi() to run it on an ASGI server"
                )
        elif not callable(app):
            raise TypeError(f"crossgate.asgi_to_wsgi() takes an ASGI application, not {app!r}")
        return
    if not callable(app):
        raise TypeError(f"crossgate.wsgi_to_asgi() takes a WSGI application, not {app!r}")
    if _hinted(app) or _async_callable(app):
        raise TypeError(
            f"crossgate.wsgi_to_asgi() takes a WSGI application, but {app!r} is an ASGI "
            "application: serve it on an ASGI server as it is, or use "
            "crossgate.asgi_to_wsgi() to run it on a WSGI server"
        )
    counts = _positional_counts(app)
    if counts is not None and 2 not in counts:
        raise TypeError(
            f"crossgate.wsgi_to_asgi() takes a WSGI application, but {app!r} cannot be "
            "called with (environ, start_response)"
        )


def _hinted(app: object) -> bool:
    return bool(
        getattr(app, "_asgi_single_callable", False) or getattr(app, "_asgi_double_callable", False)
    )


def _async_callable(app: object) -> bool:
    """A coroutine function, or an instance whose ``__call__`` is one (not a class: calling
    a class builds an instance, whatever its ``__call__``)."""
    if inspect.isclass(app):
        return False
    call = getattr(app, "__call__", None)  # noqa: B004 -- instances with an async __call__
    return iscoroutinefunction(app) or iscoroutinefunction(call)


def _positional_counts(app: object) -> set[int] | None:
    """Which of 1, 2 and 3 positional arguments ``app`` accepts; None if unknown."""
    try:
        signature = inspect.signature(app)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    counts: set[int] = set()
    for count in (1, 2, 3):
        try:
            signature.bind(*([None] * count))
        except TypeError:
            continue
        counts.add(count)
    return counts
