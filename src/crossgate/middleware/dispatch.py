"""Mount WSGI and ASGI applications under path prefixes, with lifespan fan-out.

``dispatch({"/legacy": flask_app, "/api": fastapi_app, "/": site})`` is an ASGI app;
``dispatch_wsgi({...})`` the same for WSGI servers. Rules shared by both:

* The longest prefix wins, matched at a ``/`` segment boundary: ``/app`` takes ``/app`` and
  ``/app/x``, never ``/application``. ``"/"`` (or ``""``) is the mount of last resort; with
  none, an unmatched request gets a plain-text 404.
* A request for the prefix itself (``/legacy`` for a mount at ``/legacy``) goes to the app
  with an empty remainder (PEP 3333 PATH_INFO "may be an empty string, if the request URL
  targets the application root and does not have a trailing slash"). No redirect here: the
  app decides (Flask and Starlette redirect to ``/legacy/`` themselves; an API may want a
  POST to ``/api`` kept a POST).
* ASGI: the child's ``root_path`` is the parent's plus the prefix and ``path`` is kept
  whole, as the www spec has it and as Starlette >= 0.35's ``Mount`` does, so mounted apps
  build URLs and redirects with their prefix. WSGI: the prefix moves from PATH_INFO to
  SCRIPT_NAME.

App detection (:func:`is_asgi_app`, :func:`is_wsgi_app`) looks at the callable's shape, and
``(app, "wsgi")`` / ``(app, "asgi")`` says it explicitly; an app already wrapped
(``wsgi_to_asgi(app, workers=4)``) is mounted as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias, TypeVar

from asgiref.compatibility import guarantee_single_callable

from crossgate._deprecated import renamed
from crossgate._types import ASGIApp, Environ, Message, Receive, Send, StartResponse, WSGIApp
from crossgate.adapters._bridge import ThreadSensitive
from crossgate.adapters._kind import is_asgi_app, is_wsgi_app, shape
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI, LifespanMode
from crossgate.adapters.lifespan import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LifespanGroup,
)
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI

__all__ = [
    "Dispatcher",
    "Mountable",
    "WSGIDispatcher",
    "dispatch",
    "dispatch_wsgi",
    "is_asgi_app",
    "is_wsgi_app",
]

logger = logging.getLogger(__name__)

Kind: TypeAlias = Literal["asgi", "wsgi"]
#: An ASGI 2 "double callable": called with the scope, it returns the coroutine callable.
#: Its parameters are left open for the reason given at ``ASGIApp`` (TypedDict scopes).
ASGI2App: TypeAlias = Callable[[Any], Callable[[Any, Any], Awaitable[None]]]
#: What a mount maps to: an app, or ``(app, "asgi" | "wsgi")`` to skip detection.
Mountable: TypeAlias = ASGIApp | WSGIApp | ASGI2App | tuple[object, Kind]

App = TypeVar("App")

# Keys a parent router (Starlette's Router and Mount) adds to describe its own routes. The
# mounted app is another application: Starlette's url_for would build its URLs from the
# parent's router and app_root_path, so they stop here.
_PARENT_ROUTING: Final = frozenset({"router", "app_root_path", "endpoint", "path_params"})
_NOT_FOUND: Final = b"Not Found"
_PLAIN: Final = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")]
_PLAIN_WSGI: Final = [(name.decode(), value.decode()) for name, value in _PLAIN]


def _resolve(key: str, value: object) -> tuple[str, Kind, Any]:
    """(normalised prefix, kind, app) for one mount, or raise naming the mount."""
    if not isinstance(key, str) or (key and not key.startswith("/")):
        raise ValueError(f"mount prefix {key!r} must be a string starting with '/'")
    prefix = key.rstrip("/")
    if isinstance(value, tuple):
        app, kind = value
        if kind not in ("asgi", "wsgi"):
            raise ValueError(f"mount {key!r}: kind must be 'asgi' or 'wsgi', not {kind!r}")
        if kind == "asgi" and shape(app) == "asgi2":
            app = _single(app)
        return prefix, kind, app
    found = shape(value)
    if found is None:
        raise TypeError(
            f"mount {key!r}: cannot tell whether {value!r} is a WSGI or an ASGI app; "
            "mount it as (app, 'wsgi') or (app, 'asgi')"
        )
    if found == "asgi2":
        value = _single(value)
    return prefix, "wsgi" if found == "wsgi" else "asgi", value


def _mounts(mounts: Mapping[str, Mountable]) -> list[tuple[str, Kind, Any]]:
    resolved = [_resolve(key, value) for key, value in mounts.items()]
    prefixes = [prefix for prefix, _, _ in resolved]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"two mounts share a prefix once trailing '/' is dropped: {prefixes}")
    return resolved


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it at a "/" boundary."""
    if not prefix:
        return True
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


def _longest_first(mounts: Iterable[tuple[str, App]]) -> tuple[tuple[str, App], ...]:
    return tuple(sorted(mounts, key=lambda mount: len(mount[0]), reverse=True))


def _match(routes: tuple[tuple[str, App], ...], path: str) -> tuple[str, App] | None:
    """The (prefix, app) of the longest prefix ``path`` is under (``routes`` longest first)."""
    for route in routes:
        if _under(path, route[0]):
            return route
    return None


def _single(app: object) -> ASGIApp:
    """An ASGI 2 double callable as an ASGI 3 app (asgiref's adapter)."""
    single: ASGIApp = guarantee_single_callable(app)  # type: ignore[no-untyped-call]
    return single


def _label(prefix: str) -> str:
    return prefix or "/"


def _mount_name(prefix: str) -> str:
    return f"mount {_label(prefix)!r}"


class Dispatcher:
    """An ASGI app routing ``http`` and ``websocket`` scopes to mounted apps by path prefix.

    Lifespan fans out to every mounted app, in the mapping's order, each through a
    :class:`LifespanManager`: an app without a lifespan (Django's ``ASGIHandler``) is skipped
    silently; a failure shuts the apps already started down again, in reverse order, and
    becomes ``lifespan.startup.failed`` naming the mount. Shutdown runs in reverse order.
    Each mount has its own state (seeded with the server's), and each of its requests gets
    a shallow copy of it, over the server's per-request copy, as ``scope["state"]``.

    Args:
        mounts: prefix -> app; a WSGI app runs through :class:`WSGIToASGI`, an ASGI 2 app
            through asgiref's adapter; ``(app, "wsgi" | "asgi")`` skips detection.
        startup_timeout: seconds each mounted app's lifespan startup may take (None: no
            bound).
        shutdown_timeout: seconds each mounted app's lifespan shutdown may take (None: no
            bound).

    Raises:
        ValueError: a prefix does not start with ``/``, two prefixes are the same once
            trailing ``/`` is dropped, or a kind is neither ``"asgi"`` nor ``"wsgi"``.
        TypeError: an app is neither WSGI nor ASGI by its shape (give its kind).
    """

    def __init__(
        self,
        mounts: Mapping[str, Mountable],
        *,
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.mounts: dict[str, ASGIApp] = {
            prefix: WSGIToASGI(app) if kind == "wsgi" else app
            for prefix, kind, app in _mounts(mounts)
        }
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._routes: tuple[tuple[str, ASGIApp], ...] = _longest_first(self.mounts.items())
        # Each mount's lifespan, in the order given; each one's state reaches its requests.
        self._lifespans = LifespanGroup(
            list(self.mounts.items()),
            name="crossgate.dispatch",
            describe=_mount_name,
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
        )

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespans.serve(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            # ASGI: "Applications should raise an exception when they do not understand
            # the scope type" (https://asgi.readthedocs.io/en/latest/specs/main.html).
            raise ValueError(f"crossgate.dispatch cannot route ASGI scope type {kind!r}")
        # www spec: root_path is "the root path this application is mounted at; same as
        # SCRIPT_NAME in WSGI", and path includes it: the route is what follows it.
        root = (scope.get("root_path") or "").rstrip("/")
        path: str = scope["path"]
        whole = _under(path, root)
        route = path[len(root) :] if whole else path
        match = _match(self._routes, route)
        if match is None:
            await _not_found(scope, receive, send)
            return
        prefix, app = match
        child = {key: value for key, value in scope.items() if key not in _PARENT_ROUTING}
        child["root_path"] = root + prefix
        if not whole:
            # A server from before path included root_path: give the app the spec's form.
            child["path"] = root + path
        state = self._lifespans.states.get(prefix)
        if state:
            child["state"] = {**(scope.get("state") or {}), **state}
        # The request's thread-sensitive calls share a thread (entered and left directly:
        # an `async with` costs this path two coroutines).
        sensitive = ThreadSensitive()
        sensitive.enter()
        try:
            await app(child, receive, send)
        finally:
            sensitive.exit()

    def __repr__(self) -> str:
        return f"<Dispatcher {list(map(_label, self.mounts))}>"


async def _not_found(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": _PLAIN})
        await send({"type": "http.response.body", "body": _NOT_FOUND})
        return
    await receive()  # websocket.connect
    if "websocket.http.response" in (scope.get("extensions") or {}):
        # "Websocket Denial Response" (https://asgi.readthedocs.io/en/latest/extensions.html):
        # an HTTP response instead of the handshake.
        await send({"type": "websocket.http.response.start", "status": 404, "headers": _PLAIN})
        await send({"type": "websocket.http.response.body", "body": _NOT_FOUND})
        return
    # www spec, websocket.close: "If this is sent before the socket is accepted, the server
    # must close the connection with a HTTP 403 error code (Forbidden)".
    await send({"type": "websocket.close", "code": 1000})


class WSGIDispatcher:
    """A WSGI app routing requests to mounted apps by path prefix (PEP 3333 SCRIPT_NAME and
    PATH_INFO adjusted at the segment boundary). ASGI apps are mounted through
    :class:`ASGIToWSGI`, each with its lifespan once per process; :meth:`close` shuts them
    down (in reverse order) and :meth:`start` starts them now instead of at first request.

    Args:
        mounts: prefix -> app; an ASGI app runs through :class:`ASGIToWSGI`;
            ``(app, "wsgi" | "asgi")`` skips detection.
        lifespan: as :class:`ASGIToWSGI`'s, for each mounted ASGI app.
        startup_timeout: seconds each mounted ASGI app's lifespan startup may take.
        shutdown_timeout: seconds each mounted ASGI app's lifespan shutdown may take.

    Raises:
        ValueError: as :class:`Dispatcher`.
        TypeError: as :class:`Dispatcher`.
    """

    def __init__(
        self,
        mounts: Mapping[str, Mountable],
        *,
        lifespan: LifespanMode = "auto",
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.mounts: dict[str, WSGIApp] = {
            prefix: app
            if kind == "wsgi"
            else ASGIToWSGI(
                app,
                lifespan=lifespan,
                startup_timeout=startup_timeout,
                shutdown_timeout=shutdown_timeout,
            )
            for prefix, kind, app in _mounts(mounts)
        }
        # PEP 3333: environ strings are "native strings" holding the request's bytes as
        # latin-1, so a prefix is compared in that form ("/café" is "/cafÃ©" there).
        self._routes = _longest_first(
            (prefix.encode("utf-8").decode("latin-1"), app) for prefix, app in self.mounts.items()
        )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # PEP 3333 PATH_INFO: "The remainder of the request URL's "path", designating the
        # virtual "location" of the request's target within the application."
        path_info: str = environ.get("PATH_INFO") or ""
        match = _match(self._routes, path_info)
        if match is None:
            start_response("404 Not Found", list(_PLAIN_WSGI))
            return [_NOT_FOUND]
        prefix, app = match
        # PEP 3333 SCRIPT_NAME: "The initial portion of the request URL's "path" that
        # corresponds to the application object". A copy: the caller's environ stays as it was.
        script_name: str = environ.get("SCRIPT_NAME") or ""
        environ = {
            **environ,
            "SCRIPT_NAME": script_name.rstrip("/") + prefix,
            "PATH_INFO": path_info[len(prefix) :],
        }
        body: Iterable[bytes] = app(environ, start_response)
        return body

    def start(self) -> None:
        """Run every mounted ASGI app's lifespan startup now (see :meth:`ASGIToWSGI.start`)."""
        for app in self.mounts.values():
            if isinstance(app, ASGIToWSGI):
                app.start()

    def close(self) -> None:
        """Shut the mounted ASGI apps down, last mounted first."""
        for app in reversed(self.mounts.values()):
            if isinstance(app, ASGIToWSGI):
                app.close()

    def __repr__(self) -> str:
        return f"<WSGIDispatcher {list(map(_label, self.mounts))}>"


def dispatch(
    mounts: Mapping[str, Mountable],
    *,
    startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
    shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
) -> Dispatcher:
    """An ASGI app serving each of ``mounts`` (prefix -> WSGI or ASGI app) under its prefix,
    WSGI apps through :class:`WSGIToASGI`; lifespan reaches every app that has one.

    Args:
        mounts: prefix -> app (see :class:`Dispatcher`).
        startup_timeout: seconds each mounted app's lifespan startup may take.
        shutdown_timeout: seconds each mounted app's lifespan shutdown may take.

    Returns:
        The :class:`Dispatcher`.
    """
    return Dispatcher(mounts, startup_timeout=startup_timeout, shutdown_timeout=shutdown_timeout)


def dispatch_wsgi(
    mounts: Mapping[str, Mountable],
    *,
    lifespan: LifespanMode = "auto",
    startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
    shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
) -> WSGIDispatcher:
    """A WSGI app (with ``close()``) serving each of ``mounts`` under its prefix, ASGI apps
    through :class:`ASGIToWSGI` with their lifespan (``lifespan`` as there).

    Args:
        mounts: prefix -> app (see :class:`WSGIDispatcher`).
        lifespan: as :class:`ASGIToWSGI`'s, for each mounted ASGI app.
        startup_timeout: seconds each mounted ASGI app's lifespan startup may take.
        shutdown_timeout: seconds each mounted ASGI app's lifespan shutdown may take.

    Returns:
        The :class:`WSGIDispatcher`.
    """
    return WSGIDispatcher(
        mounts,
        lifespan=lifespan,
        startup_timeout=startup_timeout,
        shutdown_timeout=shutdown_timeout,
    )


#: Names before the WSGI/ASGI capitalisation of 0.1, kept for one release.
_RENAMED: Final = {
    "WsgiDispatcher": "WSGIDispatcher",
}


def __getattr__(name: str) -> Any:
    return renamed(__name__, _RENAMED, globals())(name)
