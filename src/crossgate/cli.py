"""``crossgate serve module:app``: serve a WSGI or ASGI application on the chosen server.

The application is imported (the current directory first on ``sys.path``, as uvicorn does),
detected as WSGI or ASGI, wrapped for the server's side (``wsgi_to_asgi`` for uvicorn and
hypercorn, ``asgi_to_wsgi`` for gunicorn, waitress and wsgiref) and served. ``--workers N``
scales out through the server's own process manager (uvicorn's supervisor, hypercorn's,
gunicorn's arbiter); crossgate manages no processes of its own.

Worker processes that the server starts itself (uvicorn and hypercorn spawn them fresh)
import :func:`_served_app` by name and read what to serve from the ``CROSSGATE_SERVE``
environment variable, so each one imports and wraps the application in its own process.

On uvicorn and hypercorn an ASGI app runs inside :func:`~crossgate.with_lifespan`, so an app
that raises on the lifespan scope (Django's ``ASGIHandler``) starts without a lifespan
warning or error in the log; on the WSGI servers ``asgi_to_wsgi`` runs the lifespan once
per process, before the first request (gunicorn: in each worker after fork).

A bad ``module:app`` or an option the server cannot honour is one line on stderr
(``crossgate serve: error: ...``) and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import signal
import socket
import socketserver
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Final, Literal, NoReturn, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from crossgate._types import ASGIApp, Environ, StartResponse, WSGIApp
from crossgate.adapters.asgi_to_wsgi import AsgiToWsgi, asgi_to_wsgi
from crossgate.adapters.wsgi_to_asgi import WsgiToAsgi, wsgi_to_asgi
from crossgate.middleware.dispatch import Dispatcher, is_asgi_app, is_wsgi_app
from crossgate.middleware.lifespan import LifespanShim, with_lifespan

__all__ = ["main"]

Interface = Literal["asgi", "wsgi"]

SERVERS: Final = ("uvicorn", "hypercorn", "gunicorn", "waitress", "wsgiref")
_ASGI_SERVERS: Final = frozenset({"uvicorn", "hypercorn"})
#: Threads per process on the WSGI servers that have a pool, when --threads is not given.
_DEFAULT_THREADS: Final = 4
#: Where worker processes started by the server find what to serve (a JSON `_Target`).
_ENV: Final = "CROSSGATE_SERVE"
_PROG: Final = "crossgate serve"
#: crossgate's own ASGI apps, which answer the lifespan scope themselves.
_ANSWERS_LIFESPAN: Final = (WsgiToAsgi, LifespanShim, Dispatcher)

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """A mistake on the command line: shown as one line, exit status 2."""


class _BindError(Exception):
    """The server could not listen: shown as one line, exit status 1 (as uvicorn's)."""


def _bind_error(options: _Options, exc: OSError) -> _BindError:
    where = _netloc(options.host, options.port)
    return _BindError(f"{options.server} cannot listen on {where}: {exc.strerror or exc}")


@dataclass(frozen=True)
class _Target:
    """What to serve and how to wrap it; travels to worker processes as JSON."""

    spec: str
    app_dir: str
    interface: Literal["auto", "asgi", "wsgi"] = "auto"
    factory: bool = False
    threads: int | None = None
    root_path: str = ""
    log_level: str = "info"

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> _Target:
        raw = os.environ.get(_ENV)
        if not raw:
            raise RuntimeError(f"{_ENV} is not set: _served_app() runs under `crossgate serve`")
        return cls(**json.loads(raw))


# --------------------------------------------------------------------------------------------
# Finding and recognising the application
# --------------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """One line: the exception and where it was raised (the user's file, usually)."""
    text = " ".join(str(exc).split())
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and not isinstance(exc, SyntaxError):  # a SyntaxError's text names its line
        frame = frames[-1]
        where = f" ({frame.filename}, line {frame.lineno})"
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def import_app(spec: str, *, app_dir: str = ".", factory: bool = False) -> object:
    """Import ``module:attr.path`` (``:app``, then ``:application``, when omitted).

    ``app_dir`` goes first on ``sys.path``. With ``factory`` the object found is called
    with no arguments and its result is the application. Every failure is a
    :class:`UsageError` with a one-line message.
    """
    module_name, _, attrs = spec.partition(":")
    if not module_name or ":" in attrs or attrs.startswith(".") or attrs.endswith("."):
        raise UsageError(f"{spec!r} is not of the form module:app (for example myproject:app)")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        raise UsageError(
            f"{module_name!r} is a file path; give a module name (package.module) and, if "
            "needed, --app-dir for the directory it lives in"
        )
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise UsageError(f"cannot import {module_name!r}: no module named {missing!r}") from exc
        raise UsageError(f"importing {module_name!r} failed: {_describe(exc)}") from exc
    except Exception as exc:
        raise UsageError(f"importing {module_name!r} failed: {_describe(exc)}") from exc

    obj: object = module
    if not attrs:
        for name in ("app", "application"):
            if hasattr(module, name):
                obj, attrs = getattr(module, name), name
                break
        else:
            raise UsageError(
                f"module {module_name!r} has no 'app' or 'application'; name the "
                f"application as {module_name}:NAME"
            )
    else:
        found = module_name
        for part in attrs.split("."):
            if not part.isidentifier():
                raise UsageError(f"{attrs!r} in {spec!r} is not a dotted attribute path")
            try:
                obj = getattr(obj, part)
            except AttributeError:
                owner = (
                    f"module {module_name!r}"
                    if obj is module
                    else f"{found} (a {type(obj).__name__})"
                )
                raise UsageError(f"{owner} has no attribute {part!r}") from None
            except Exception as exc:
                raise UsageError(f"getting {spec!r} failed: {_describe(exc)}") from exc
            found = f"{module_name}:{part}" if found == module_name else f"{found}.{part}"
    where = f"{module_name}:{attrs}"
    if factory:
        if not callable(obj):
            raise UsageError(f"{where} is a {type(obj).__name__}, not a factory (not callable)")
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError(f"the factory {where}() failed: {_describe(exc)}") from exc
    if not callable(obj):
        raise UsageError(
            f"{where} is a {type(obj).__name__}, not an ASGI or WSGI application (not callable)"
        )
    return obj


def detect_interface(app: object, name: str = "the app") -> Interface:
    """``"asgi"`` or ``"wsgi"`` as :func:`crossgate.is_asgi_app` and
    :func:`crossgate.is_wsgi_app` tell (an async callable is ASGI 3, a sync callable of two
    arguments WSGI, of one an ASGI 2 double callable); :class:`UsageError` when neither can.
    """
    if is_asgi_app(app):
        return "asgi"
    if is_wsgi_app(app):
        return "wsgi"
    raise UsageError(
        f"cannot tell whether {name} (a {type(app).__name__}) is an ASGI or a WSGI "
        "application; say which with --interface asgi or --interface wsgi"
    )


# Per process: the application loaded once (the factory must not run twice), and the
# ASGI-to-WSGI adapter whose lifespan the WSGI servers start and stop.
_loaded: tuple[int, _Target, object, Interface] | None = None
_adapter: AsgiToWsgi | None = None


def _load(target: _Target) -> tuple[object, Interface]:
    global _loaded
    if _loaded is not None and _loaded[0] == os.getpid() and _loaded[1] == target:
        return _loaded[2], _loaded[3]
    app = import_app(target.spec, app_dir=target.app_dir, factory=target.factory)
    if target.interface == "auto":
        interface = detect_interface(app, target.spec)
    else:
        interface = target.interface
    _loaded = (os.getpid(), target, app, interface)
    return app, interface


def _as_asgi(target: _Target) -> ASGIApp:
    """The application as ASGI 3, for uvicorn and hypercorn."""
    app, interface = _load(target)
    if interface == "wsgi":
        options: dict[str, Any] = {}
        if target.threads is not None:
            options["workers"] = target.threads
        return wsgi_to_asgi(cast(WSGIApp, app), **options)
    if isinstance(app, _ANSWERS_LIFESPAN):
        return app
    # Apps that raise on the lifespan scope (Django's ASGIHandler) cost a line in the log
    # of every start: INFO "ASGI 'lifespan' protocol appears unsupported." on uvicorn, a
    # WARNING on hypercorn. The shim answers the lifespan itself and runs the app's own,
    # when it has one, inside; with no startup timeout, as the servers set none.
    return with_lifespan(_asgi3(app), startup_timeout=None)


def _asgi3(app: object) -> ASGIApp:
    from asgiref.compatibility import guarantee_single_callable  # noqa: PLC0415

    # An ASGI 2 class (double callable) becomes ASGI 3; an ASGI 3 app is returned as is.
    return cast(ASGIApp, guarantee_single_callable(app))  # type: ignore[no-untyped-call]


def _as_wsgi(target: _Target) -> WSGIApp:
    """The application as WSGI, for gunicorn, waitress and wsgiref."""
    global _adapter
    app, interface = _load(target)
    wsgi: WSGIApp
    if interface == "asgi":
        _adapter = asgi_to_wsgi(_asgi3(app))
        wsgi = _adapter
    else:
        wsgi = cast(WSGIApp, app)
    if target.root_path:
        wsgi = _ScriptName(wsgi, target.root_path)
    return wsgi


def _served_app() -> ASGIApp:
    """The ASGI application a uvicorn or hypercorn worker process serves (a factory)."""
    target = _Target.from_env()
    _configure_logging(target.log_level)
    return _as_asgi(target)


class _ScriptName:
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


# --------------------------------------------------------------------------------------------
# The servers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    server: str
    host: str
    port: int
    workers: int
    reload: bool


def _configure_logging(level: str) -> None:
    """Show crossgate's records (and waitress's, which logs nothing without a handler) on
    stderr. The root logger is left to the app: servers that log through it (hypercorn)
    would print every line twice.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s: %(message)s"))
    for name in ("crossgate", "waitress"):
        log = logging.getLogger(name)
        if not log.handlers:
            log.addHandler(handler)
            log.propagate = False
        log.setLevel(level.upper())


def _raise_exit(signum: int, frame: FrameType | None) -> NoReturn:
    # SIGTERM ends the serving loop like Ctrl+C does, so lifespan shutdown still runs.
    raise SystemExit(0)


def _run_uvicorn(options: _Options, target: _Target) -> int:
    import uvicorn  # noqa: PLC0415

    # An import string, not the app object: uvicorn needs one for --workers and --reload,
    # and its spawned processes import and wrap the app themselves (_ENV says what).
    uvicorn.run(
        f"{__name__}:_served_app",
        factory=True,
        interface="asgi3",
        host=options.host,
        port=options.port,
        workers=options.workers,
        reload=options.reload,
        reload_dirs=[target.app_dir] if options.reload else None,
        root_path=target.root_path,
        # Every app handed over answers the lifespan scope (WsgiToAsgi, with_lifespan).
        lifespan="auto",
        log_level=target.log_level,
    )
    return 0


def _run_hypercorn(options: _Options, target: _Target) -> int:
    from hypercorn.config import Config  # noqa: PLC0415
    from hypercorn.run import run  # noqa: PLC0415

    config = Config()
    config.application_path = f"asgi:{__name__}:_served_app()"
    config.bind = [_netloc(options.host, options.port)]
    # workers=0 serves in this process; hypercorn's reloader needs its worker processes.
    config.workers = 0 if options.workers == 1 and not options.reload else options.workers
    config.use_reloader = options.reload
    config.root_path = target.root_path
    config.loglevel = target.log_level.upper()
    config.accesslog = "-"
    config.errorlog = "-"
    result: int = run(config)
    return result


def _gunicorn_post_worker_init(worker: object) -> None:
    # Lifespan startup in each worker, after fork and before its first request.
    if _adapter is not None:
        _adapter.start()


def _gunicorn_worker_exit(server: object, worker: object) -> None:
    if _adapter is not None:
        _adapter.close()


def _run_gunicorn(options: _Options, target: _Target) -> int:
    from gunicorn.app.base import BaseApplication  # noqa: PLC0415

    settings: dict[str, object] = {
        "bind": [_netloc(options.host, options.port)],
        "workers": options.workers,
        "worker_class": "gthread",
        "threads": target.threads or _DEFAULT_THREADS,
        "reload": options.reload,
        "loglevel": target.log_level,
        "proc_name": "crossgate",
        "post_worker_init": _gunicorn_post_worker_init,
        "worker_exit": _gunicorn_worker_exit,
        # gunicorn >= 25 opens a control socket at one path per user; two servers would
        # contend for it, and `crossgate serve` offers no gunicornc commands.
        "control_socket_disable": True,
    }

    class Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
        def load_config(self) -> None:
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            # In each worker, after fork (with --reload, the first import of the app).
            return _as_wsgi(target)

    Gunicorn().run()
    return 0


def _run_waitress(options: _Options, target: _Target) -> int:
    from waitress import create_server  # noqa: PLC0415

    app = _as_wsgi(target)
    try:
        server = create_server(
            app,
            host=options.host,
            port=options.port,
            threads=target.threads or _DEFAULT_THREADS,
            ident="crossgate",
        )
    except OSError as exc:
        raise _bind_error(options, exc) from exc
    signal.signal(signal.SIGTERM, _raise_exit)
    _start_adapter()
    try:
        server.run()  # returns on SIGTERM or Ctrl+C, once waitress has stopped its threads
    finally:
        server.close()
        _stop_adapter()
    return 0


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, logging through ``logging`` instead of bare stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger("crossgate.wsgiref").info("%s - %s", self.address_string(), format % args)


def _run_wsgiref(options: _Options, target: _Target) -> int:
    app = _as_wsgi(target)
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        address_family = family
        # One thread per request; daemon threads so a stuck request cannot block exit (the
        # ASGI adapter's close() still waits, bounded, for the app's work).
        daemon_threads = True
        allow_reuse_address = True

    try:
        server = make_server(options.host, options.port, app, Server, _Handler)
    except OSError as exc:
        raise _bind_error(options, exc) from exc
    signal.signal(signal.SIGTERM, _raise_exit)
    _start_adapter()
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        _stop_adapter()
    return 0


def _start_adapter() -> None:
    if _adapter is not None:
        _adapter.start()


def _stop_adapter() -> None:
    if _adapter is not None:
        _adapter.close()


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_RUNNERS: Final[dict[str, Callable[[_Options, _Target], int]]] = {
    "uvicorn": _run_uvicorn,
    "hypercorn": _run_hypercorn,
    "gunicorn": _run_gunicorn,
    "waitress": _run_waitress,
    "wsgiref": _run_wsgiref,
}


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def _default_server() -> str:
    return "uvicorn" if importlib.util.find_spec("uvicorn") is not None else "wsgiref"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``crossgate`` argument parser (subcommand ``serve``)."""
    from crossgate import __version__  # noqa: PLC0415 - the package root imports adapters

    parser = argparse.ArgumentParser(
        prog="crossgate",
        description="Translate between WSGI and ASGI; serve either kind of app on any server.",
    )
    parser.add_argument("--version", action="version", version=f"crossgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve a WSGI or ASGI application",
        description=(
            "Import APP, detect whether it is WSGI or ASGI, wrap it for the chosen server\n"
            "(wsgi_to_asgi for uvicorn and hypercorn, asgi_to_wsgi for gunicorn, waitress\n"
            "and wsgiref) and serve it."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  crossgate serve mysite.wsgi:application --server gunicorn --workers 4\n"
            "  crossgate serve main:app --reload\n"
            "  crossgate serve legacy:app --server uvicorn --root-path /legacy"
        ),
    )
    serve.add_argument(
        "app",
        metavar="APP",
        help="module:attribute, e.g. mysite.wsgi:application or main:app (the attribute "
        "defaults to 'app', then 'application'; dotted paths such as main:api.app work)",
    )
    serve.add_argument(
        "--server",
        choices=SERVERS,
        default=None,
        help="the server to run: uvicorn when installed, else wsgiref from the standard "
        "library (threads, no extra dependency)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        default=1,
        help="worker processes, run by the server's own process manager (uvicorn, "
        "hypercorn, gunicorn); waitress and wsgiref serve from one process",
    )
    serve.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        default=None,
        help=f"threads per process running WSGI code: gunicorn's gthread worker and "
        f"waitress (default {_DEFAULT_THREADS}), or crossgate's thread pool for a WSGI app "
        "on uvicorn or hypercorn; wsgiref starts one thread per request",
    )
    serve.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="the path prefix the app is mounted at behind a proxy that strips it "
        "(ASGI root_path, WSGI SCRIPT_NAME)",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart when the code changes (uvicorn, hypercorn, gunicorn; development only)",
    )
    serve.add_argument(
        "--interface",
        choices=("auto", "asgi", "wsgi"),
        default="auto",
        help="what APP is; auto (the default) takes an async callable as ASGI and any "
        "other callable as WSGI",
    )
    serve.add_argument(
        "--factory",
        action="store_true",
        help="APP is a factory: call it with no arguments to get the application",
    )
    serve.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory put first on sys.path to import APP from (default: the current one)",
    )
    serve.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="log level (default info)",
    )
    return parser


def _check_server(options: _Options, target: _Target) -> None:
    """Refuse, with a reason, what the chosen server cannot do (before importing APP)."""
    server = options.server
    if importlib.util.find_spec(server) is None:
        raise UsageError(f"--server {server}: {server} is not installed (pip install {server})")
    if options.workers > 1 and server == "waitress":
        raise UsageError(
            f"--workers {options.workers}: waitress has no process manager, it serves from "
            "one process (use --threads for concurrency, or --server gunicorn or uvicorn "
            "for several processes)"
        )
    if options.workers > 1 and server == "wsgiref":
        raise UsageError(
            f"--workers {options.workers}: wsgiref serves from one process, a thread per "
            "request (use --server gunicorn or uvicorn for several processes)"
        )
    if options.reload and server in ("waitress", "wsgiref"):
        raise UsageError(
            f"--reload: {server} cannot reload; use --server uvicorn, hypercorn or gunicorn"
        )
    if options.reload and options.workers > 1 and server != "gunicorn":
        raise UsageError(f"--reload runs one {server} worker; drop --workers")
    if target.threads is not None and server == "wsgiref":
        raise UsageError("--threads: wsgiref starts one thread per request, unbounded")
    if target.root_path and not target.root_path.startswith("/"):
        raise UsageError(f"--root-path {target.root_path!r} must start with '/'")


def _check_interface(options: _Options, target: _Target, interface: Interface) -> None:
    """Refuse the options that make no sense for this kind of app on this server."""
    if target.threads is not None and options.server in _ASGI_SERVERS and interface == "asgi":
        raise UsageError(
            f"--threads sizes the thread pool that runs WSGI code; an ASGI app on "
            f"{options.server} runs on the event loop and has none"
        )


def _load_in_child(target: _Target) -> Interface:
    """Import APP in a forked child and report its interface (or its one-line error).

    For gunicorn with --reload: its master forks every worker, so an app imported in the
    master would be inherited, and a worker restarted after a change would serve the old
    code. Like gunicorn without --preload, the master never imports the app.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe, then vanishes
        os.close(read_end)
        answer: dict[str, str]
        try:
            answer = {"interface": _load(target)[1]}
        except UsageError as exc:
            answer = {"error": str(exc)}
        except BaseException as exc:
            answer = {"error": f"importing {target.spec!r} failed: {_describe(exc)}"}
        with os.fdopen(write_end, "w", encoding="utf-8") as pipe:
            pipe.write(json.dumps(answer))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as pipe:
        raw = pipe.read()
    os.waitpid(pid, 0)
    report: dict[str, str] = (
        json.loads(raw) if raw else {"error": f"importing {target.spec!r} failed"}
    )
    if "error" in report:
        raise UsageError(report["error"])
    return "asgi" if report["interface"] == "asgi" else "wsgi"


def _serve(args: argparse.Namespace) -> int:
    options = _Options(
        server=args.server or _default_server(),
        host=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
    )
    target = _Target(
        spec=args.app,
        app_dir=os.path.abspath(args.app_dir),
        interface=args.interface,
        factory=args.factory,
        threads=args.threads,
        root_path=args.root_path.rstrip("/"),
        log_level=args.log_level,
    )
    _check_server(options, target)
    # APP is imported before any server starts, so that a bad one is one line and exit 2
    # (worker processes import it again, each for itself).
    if options.server == "gunicorn" and options.reload:
        interface = _load_in_child(target)
    else:
        interface = _load(target)[1]
    _check_interface(options, target, interface)
    _configure_logging(target.log_level)
    os.environ[_ENV] = target.to_env()

    asgi_server = options.server in _ASGI_SERVERS
    if interface == "wsgi":
        how = "through wsgi_to_asgi" if asgi_server else "as is"
    else:
        how = "as is" if asgi_server else "through asgi_to_wsgi"
    workers = f"{options.workers} worker{'s' if options.workers > 1 else ''}"
    url = f"http://{_netloc(options.host, options.port)}{target.root_path}/"
    logger.info(
        "serving %s (%s app, %s) on %s at %s (%s%s)",
        target.spec,
        interface.upper(),
        how,
        options.server,
        url,
        workers,
        ", reload" if options.reload else "",
    )
    return _RUNNERS[options.server](options, target)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``crossgate`` command: returns the exit status (2 for a usage error)."""
    args = build_parser().parse_args(argv)
    try:
        return _serve(args)
    except UsageError as exc:
        sys.stderr.write(f"{_PROG}: error: {exc}\n")
        return 2
    except _BindError as exc:
        sys.stderr.write(f"{_PROG}: error: {exc}\n")
        return 1
