"""The ``crossgate`` argument parser, and the options it yields after the environment."""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Callable, Mapping
from typing import Final, Literal

from crossgate.cli._import import UsageError
from crossgate.cli._servers import DEFAULT_THREADS, LOOPS, SERVERS, TABLE, Options

__all__ = ["build_parser", "default_server", "options_from"]

_DEFAULT_HOST: Final = "127.0.0.1"
_DEFAULT_PORT: Final = 8000


def default_server() -> str:
    return "uvicorn" if importlib.util.find_spec("uvicorn") is not None else "wsgiref"


def _whole(text: str, minimum: int, what: str = "a whole number") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} is not at least {minimum}")
    return value


def _positive(text: str) -> int:
    return _whole(text, 1)


def _seconds(text: str) -> int:
    return _whole(text, 0, "a whole number of seconds")


def _port(text: str) -> int:
    value = _whole(text, 0, "a port number")
    if value > 65535:
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
            "and wsgiref) and serve it. An option the server cannot honour is refused\n"
            "(exit status 2); an address that cannot be had is exit status 3."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "environment:\n"
            "  PORT               the default for --port\n"
            "  WEB_CONCURRENCY    the default for --workers (ignored, with a warning, by\n"
            "                     the servers that serve from one process)\n"
            "  FORWARDED_ALLOW_IPS  the default for --forwarded-allow-ips\n"
            "\n"
            "examples:\n"
            "  crossgate serve mysite.wsgi:application --server gunicorn --workers 4\n"
            "  crossgate serve main:app --reload\n"
            "  crossgate serve legacy:app --server uvicorn --root-path /legacy\n"
            "  crossgate serve mysite.wsgi --bind unix:/run/mysite.sock --proxy-headers"
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
        "library (a development server)",
    )
    where = serve.add_argument_group("where to listen")
    where.add_argument("--host", default=None, help=f"address to bind (default {_DEFAULT_HOST})")
    where.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"port to bind (default $PORT, else {_DEFAULT_PORT})",
    )
    where.add_argument(
        "--bind",
        default=None,
        metavar="ADDRESS",
        help="HOST:PORT or unix:PATH, gunicorn's spelling (instead of --host/--port/--uds)",
    )
    where.add_argument("--uds", default=None, metavar="PATH", help="listen on a unix socket")
    where.add_argument("--ssl-certfile", default=None, metavar="FILE", help="TLS certificate")
    where.add_argument("--ssl-keyfile", default=None, metavar="FILE", help="TLS private key")
    scale = serve.add_argument_group("processes and threads")
    scale.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        default=None,
        help="worker processes, run by the server's own process manager (uvicorn, "
        "hypercorn, gunicorn; default $WEB_CONCURRENCY, else 1); waitress and wsgiref "
        "serve from one process",
    )
    scale.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        default=None,
        help=f"threads per process running WSGI code (default {DEFAULT_THREADS} on every "
        "server that has a pool): gunicorn's gthread worker, waitress, or crossgate's pool "
        "for a WSGI app on uvicorn or hypercorn; wsgiref starts one thread per request",
    )
    scale.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="the event loop: uvicorn's (asyncio, uvloop), hypercorn's worker class "
        "(asyncio, uvloop, trio), or on gunicorn, waitress and wsgiref that of an ASGI "
        "app (trio: asgi_to_wsgi(backend='trio')); default auto, the server's own",
    )
    proxy = serve.add_argument_group("behind a proxy")
    proxy.add_argument(
        "--proxy-headers",
        action="store_true",
        help="take the client's address and the scheme from X-Forwarded-For and "
        "X-Forwarded-Proto, sent by a peer in --forwarded-allow-ips (off by default)",
    )
    proxy.add_argument(
        "--forwarded-allow-ips",
        default=None,
        metavar="IPS",
        help="comma-separated addresses or networks of trusted proxies, or '*' (implies "
        "--proxy-headers; default $FORWARDED_ALLOW_IPS, else 127.0.0.1)",
    )
    proxy.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="the path prefix the app is mounted at behind a proxy that strips it "
        "(ASGI root_path, WSGI SCRIPT_NAME)",
    )
    limits = serve.add_argument_group("timeouts and limits")
    limits.add_argument(
        "--timeout-keep-alive",
        type=_seconds,
        default=None,
        metavar="S",
        help="close an idle kept-alive connection after S seconds (default: the server's)",
    )
    limits.add_argument(
        "--timeout-graceful-shutdown",
        type=_seconds,
        default=None,
        metavar="S",
        help="on SIGTERM, wait at most S seconds for running requests (default: the server's)",
    )
    limits.add_argument(
        "--max-header-size",
        type=_positive,
        default=None,
        metavar="BYTES",
        help="refuse requests whose headers are larger (default: the server's)",
    )
    logs = serve.add_argument_group("logging")
    logs.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="log level (default info); debug also shows the traceback of an import error",
    )
    logs.add_argument(
        "--log-config",
        default=None,
        metavar="FILE",
        help="logging configuration: dictConfig in .json (or .yaml with PyYAML), else "
        "fileConfig INI; crossgate's loggers are under 'crossgate'",
    )
    logs.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log each request (default: on where the server has an access log)",
    )
    app = serve.add_argument_group("the application")
    app.add_argument(
        "--reload",
        action="store_true",
        help="restart when the code changes (uvicorn, hypercorn, gunicorn; development only)",
    )
    app.add_argument(
        "--interface",
        choices=("auto", "asgi", "wsgi"),
        default="auto",
        help="what APP is; auto (the default) takes an async callable as ASGI and any "
        "other callable as WSGI",
    )
    app.add_argument(
        "--factory",
        action="store_true",
        help="APP is a factory: call it with no arguments to get the application",
    )
    app.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory put first on sys.path to import APP from (default: the current one)",
    )
    return parser


def _from_env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _env_int(environ: Mapping[str, str], name: str, check: Callable[[str], int]) -> int | None:
    text = _from_env(environ, name)
    if text is None:
        return None
    try:
        value = check(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"${name}: {exc}") from None
    return value


def _split_bind(bind: str) -> tuple[str | None, int | None, str | None]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``unix:PATH`` as (host, port, uds)."""
    if bind.startswith("unix:"):
        path = bind[len("unix:") :]
        if not path:
            raise UsageError(f"--bind {bind}: unix: needs a path")
        return None, None, path
    host, port_text = bind, ""
    if bind.startswith("["):
        end = bind.find("]")
        if end < 0 or bind[end + 1 : end + 2] not in ("", ":"):
            raise UsageError(f"--bind {bind}: not HOST:PORT, [IPv6]:PORT or unix:PATH")
        host, port_text = bind[1:end], bind[end + 2 :]
    elif bind.count(":") == 1:
        host, _, port_text = bind.partition(":")
    elif ":" in bind:
        raise UsageError(f"--bind {bind}: an IPv6 address goes in brackets, [::1]:8000")
    if not host:
        raise UsageError(f"--bind {bind}: no host")
    port = None
    if port_text:
        try:
            port = _port(port_text)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--bind {bind}: {exc}") from None
    return host, port, None


def options_from(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> tuple[Options, list[str]]:
    """The options asked for, with the environment's defaults; and warnings to show."""
    warnings: list[str] = []
    server = args.server or default_server()
    host, port, uds = args.host, args.port, args.uds
    if args.bind is not None:
        flags = (("--host", host), ("--port", port), ("--uds", uds))
        given = [flag for flag, value in flags if value is not None]
        if given:
            raise UsageError(f"--bind says where to listen; drop {' and '.join(given)}")
        host, port, uds = _split_bind(args.bind)
    if uds is not None and (host is not None or port is not None):
        raise UsageError("--uds listens on a unix socket; drop --host and --port")
    if port is None and uds is None:
        port = _env_int(environ, "PORT", _port)
    workers: int | None = args.workers
    workers_from: Literal["option", "env", "default"] = "option"
    if workers is None:
        workers, workers_from = _env_int(environ, "WEB_CONCURRENCY", _positive), "env"
        if workers is None:
            workers, workers_from = 1, "default"
        elif workers > 1 and "--workers" in TABLE[server].refused:
            warnings.append(f"WEB_CONCURRENCY={workers} ignored: {server} serves from one process")
            workers = 1
    allow = args.forwarded_allow_ips
    proxy_headers = bool(args.proxy_headers or allow is not None)
    if allow is None:
        allow = _from_env(environ, "FORWARDED_ALLOW_IPS") or "127.0.0.1"
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together: give both")
    for flag, path in (("--ssl-certfile", args.ssl_certfile), ("--ssl-keyfile", args.ssl_keyfile)):
        if path is not None and not os.path.isfile(path):
            raise UsageError(f"{flag} {path}: no such file")
    root_path = args.root_path
    if root_path and not root_path.startswith("/"):
        raise UsageError(f"--root-path {root_path!r} must start with '/'")
    options = Options(
        server=server,
        host=host if host is not None else _DEFAULT_HOST,
        port=port if port is not None else _DEFAULT_PORT,
        uds=os.path.abspath(uds) if uds is not None else None,
        workers=workers,
        workers_from=workers_from,
        threads=args.threads,
        reload=args.reload,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=allow,
        log_config=os.path.abspath(args.log_config) if args.log_config else None,
        access_log=args.access_log,
        timeout_keep_alive=args.timeout_keep_alive,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        ssl_keyfile=os.path.abspath(args.ssl_keyfile) if args.ssl_keyfile else None,
        ssl_certfile=os.path.abspath(args.ssl_certfile) if args.ssl_certfile else None,
        max_header_size=args.max_header_size,
        root_path=root_path.rstrip("/"),
        log_level=args.log_level,
        loop=args.loop,
    )
    return options, warnings
