"""The application in each serving process: loaded once, wrapped for the server's side.

Worker processes that the server starts itself (uvicorn and hypercorn spawn them fresh)
call :func:`served_app` (as ``crossgate.cli:_served_app``) and read what to serve from the
``CROSSGATE_SERVE`` environment variable, so each one imports and wraps the application in
its own process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, cast

from crossgate import (
    ASGIToWSGI,
    Dispatcher,
    LifespanShim,
    WSGIToASGI,
    asgi_to_wsgi,
    with_lifespan,
    wsgi_to_asgi,
)
from crossgate._types import ASGIApp, Environ, StartResponse, WSGIApp
from crossgate.cli import _logging
from crossgate.cli._import import Interface, detect_interface, import_app
from crossgate.cli._limits import HeaderLimitASGI
from crossgate.cli._proxy import ProxyHeadersASGI, ProxyHeadersWSGI, Trusted

__all__ = [
    "ENV",
    "ScriptName",
    "Target",
    "as_asgi",
    "as_wsgi",
    "load",
    "served_app",
    "start_adapter",
    "stop_adapter",
]

#: Where worker processes started by the server find what to serve (a JSON `Target`).
ENV: Final = "CROSSGATE_SERVE"
#: crossgate's own ASGI apps, which answer the lifespan scope themselves.
_ANSWERS_LIFESPAN: Final = (WSGIToASGI, LifespanShim, Dispatcher)


@dataclass(frozen=True)
class Target:
    """What to serve and how to wrap it; travels to worker processes as JSON."""

    spec: str
    app_dir: str
    interface: Literal["auto", "asgi", "wsgi"] = "auto"
    factory: bool = False
    #: The pool of a WSGI app on an ASGI server (None: the adapter's own default).
    threads: int | None = None
    root_path: str = ""
    log_level: str = "info"
    #: The server, whose log format crossgate's records take.
    server: str = "uvicorn"
    #: The --log-config file: the server applies it, so crossgate sets up no handler.
    log_config: str | None = None
    #: The trusted proxies, when crossgate (not the server) applies --proxy-headers.
    proxy: str | None = None
    #: --max-header-size, checked by crossgate on the ASGI servers.
    max_header_size: int | None = None
    #: --timeout-graceful-shutdown: also how long a WSGI app's requests are waited for.
    shutdown_timeout: int | None = None
    #: --loop: "trio" runs an ASGI app on a WSGI server on the trio portal.
    loop: str = "auto"

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> Target:
        raw = os.environ.get(ENV)
        if not raw:
            raise RuntimeError(f"{ENV} is not set: _served_app() runs under `crossgate serve`")
        return cls(**json.loads(raw))


# Per process: the application loaded once (the factory must not run twice), and the
# ASGI-to-WSGI adapter whose lifespan the WSGI servers start and stop.
loaded: tuple[int, Target, object, Interface] | None = None
adapter: ASGIToWSGI | None = None


def load(target: Target) -> tuple[object, Interface]:
    global loaded
    if loaded is not None and loaded[0] == os.getpid() and loaded[1] == target:
        return loaded[2], loaded[3]
    app = import_app(target.spec, app_dir=target.app_dir, factory=target.factory)
    if target.interface == "auto":
        interface = detect_interface(app, target.spec)
    else:
        interface = target.interface
    loaded = (os.getpid(), target, app, interface)
    return app, interface


def as_asgi(target: Target) -> ASGIApp:
    """The application as ASGI 3, for uvicorn and hypercorn."""
    app, interface = load(target)
    served: ASGIApp
    if interface == "wsgi":
        options: dict[str, Any] = {}
        if target.threads is not None:
            options["workers"] = target.threads
        if target.shutdown_timeout is not None:
            options["shutdown_timeout"] = target.shutdown_timeout
        served = wsgi_to_asgi(cast(WSGIApp, app), **options)
    elif isinstance(app, _ANSWERS_LIFESPAN):
        served = app
    else:
        # Apps that raise on the lifespan scope (Django's ASGIHandler) cost a line in the
        # log of every start: INFO "ASGI 'lifespan' protocol appears unsupported." on
        # uvicorn, a WARNING on hypercorn. The shim answers the lifespan itself and runs
        # the app's own, when it has one, inside; with no startup timeout, as the servers
        # set none.
        served = with_lifespan(_asgi3(app), startup_timeout=None)
    if target.max_header_size is not None:
        served = HeaderLimitASGI(served, target.max_header_size)
    if target.proxy is not None:
        served = ProxyHeadersASGI(served, Trusted.parse(target.proxy))
    return served


def _asgi3(app: object) -> ASGIApp:
    from asgiref.compatibility import guarantee_single_callable  # noqa: PLC0415

    # An ASGI 2 class (double callable) becomes ASGI 3; an ASGI 3 app is returned as is.
    return cast(ASGIApp, guarantee_single_callable(app))  # type: ignore[no-untyped-call]


def as_wsgi(target: Target) -> WSGIApp:
    """The application as WSGI, for gunicorn, waitress and wsgiref."""
    global adapter
    app, interface = load(target)
    wsgi: WSGIApp
    if interface == "asgi":
        adapter = asgi_to_wsgi(_asgi3(app), backend="trio" if target.loop == "trio" else "asyncio")
        wsgi = adapter
    else:
        wsgi = cast(WSGIApp, app)
    if target.root_path:
        wsgi = ScriptName(wsgi, target.root_path)
    if target.proxy is not None:
        wsgi = ProxyHeadersWSGI(wsgi, Trusted.parse(target.proxy))
    return wsgi


def served_app() -> ASGIApp:
    """The ASGI application a uvicorn or hypercorn worker process serves (a factory)."""
    target = Target.from_env()
    _logging.configure(target.server, target.log_level, target.log_config)
    return as_asgi(target)


def start_adapter() -> None:
    """Run an ASGI app's lifespan startup, on the WSGI servers that serve in this process."""
    if adapter is not None:
        adapter.start()


def stop_adapter() -> None:
    if adapter is not None:
        adapter.close()


class ScriptName:
    """``--root-path`` on WSGI servers: the app is mounted at ``root`` behind a proxy that
    strips the prefix, so ``SCRIPT_NAME`` gains it and ``PATH_INFO`` is left as received
    (what uvicorn's ``root_path`` means for an ASGI app).
    """

    def __init__(self, app: WSGIApp, root: str) -> None:
        self.app = app
        # PEP 3333: environ strings are "native strings" holding the bytes as latin-1.
        self.root = root.encode("utf-8").decode("latin-1")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ["SCRIPT_NAME"] = self.root + environ.get("SCRIPT_NAME", "")
        return self.app(environ, start_response)
