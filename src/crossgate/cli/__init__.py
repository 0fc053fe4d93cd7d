"""``crossgate serve module:app``: serve a WSGI or ASGI application on the chosen server.

The application is imported (the current directory first on ``sys.path``, as uvicorn does),
detected as WSGI or ASGI, wrapped for the server's side (``wsgi_to_asgi`` for uvicorn and
hypercorn, ``asgi_to_wsgi`` for gunicorn, waitress and wsgiref) and served. ``--workers N``
scales out through the server's own process manager (uvicorn's supervisor, hypercorn's,
gunicorn's arbiter); crossgate manages no processes of its own.

On uvicorn and hypercorn an ASGI app runs inside :func:`~crossgate.with_lifespan`, so an app
that raises on the lifespan scope (Django's ``ASGIHandler``) starts without a lifespan
warning or error in the log; on the WSGI servers ``asgi_to_wsgi`` runs the lifespan once
per process, before the first request (gunicorn: in each worker after fork).

The package, along its concerns: ``_import`` finds APP and tells WSGI from ASGI;
``_servers`` is the table of what each server can do, which the checks, the runners and
``docs/serve.md`` read; ``_parser`` turns the command line and the environment into
``Options``; ``_app`` loads and wraps APP in each serving process; ``_listen``,
``_logging`` and ``_proxy`` do one thing each; ``_uvicorn`` ... ``_wsgiref`` run one server.

Exit status: 2 for a usage error (a bad option, APP that cannot be imported, an option the
server cannot honour), 3 when the server cannot listen; each is one line on stderr,
``crossgate serve: error: ...``, never a traceback (``--log-level debug`` adds the
traceback of an error raised by the app's own code).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Final

from crossgate.cli import _app, _logging
from crossgate.cli._app import Target
from crossgate.cli._import import Interface, UsageError, describe, detect_interface, import_app
from crossgate.cli._listen import LISTEN_FAILED, BindError, check_listen, netloc
from crossgate.cli._parser import build_parser, options_from
from crossgate.cli._servers import SERVERS, Options, Server, check_interface, check_server, run

__all__ = [
    "LISTEN_FAILED",
    "SERVERS",
    "USAGE_ERROR",
    "UsageError",
    "build_parser",
    "detect_interface",
    "import_app",
    "main",
]

#: The exit status of a usage error: a bad option or APP, an option the server lacks.
USAGE_ERROR: Final = 2
_PROG: Final = "crossgate serve"

logger = logging.getLogger(__name__)

#: What uvicorn's and hypercorn's worker processes import: ``crossgate.cli:_served_app``.
_served_app = _app.served_app


def _load_in_child(target: Target) -> Interface:
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
            answer = {"interface": _app.load(target)[1]}
        except UsageError as exc:
            _show_cause(exc, target.log_level)
            answer = {"error": str(exc)}
        except BaseException as exc:
            answer = {"error": f"importing {target.spec!r} failed: {describe(exc)}"}
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


def _threads(server: Server, options: Options, interface: Interface) -> str:
    """What runs WSGI code, for the start line: the pool's size and where it came from."""
    if server.name == "wsgiref":
        return "a thread per request"
    if server.serves == "asgi" and interface == "asgi":
        return "no thread pool"
    default = " (default)" if options.threads is None else ""
    where = " for the WSGI app" if server.serves == "asgi" else ""
    return f"{options.effective_threads} threads{where}{default}"


def _serve(args: argparse.Namespace) -> int:
    options, warnings = options_from(args)
    server = check_server(options)
    if options.log_config is not None:
        _logging.read_log_config(options.log_config)  # a bad file is a usage error, now
    if options.proxy_headers:
        from crossgate.cli._proxy import Trusted  # noqa: PLC0415

        try:
            Trusted.parse(options.forwarded_allow_ips)
        except ValueError as exc:
            raise UsageError(f"--forwarded-allow-ips: {exc}") from None
    target = Target(
        spec=args.app,
        app_dir=os.path.abspath(args.app_dir),
        interface=args.interface,
        factory=args.factory,
        threads=options.effective_threads,
        root_path=options.root_path,
        log_level=options.log_level,
        server=server.name,
        log_config=options.log_config,
        proxy=(
            options.forwarded_allow_ips
            if options.proxy_headers and server.proxy_by_crossgate
            else None
        ),
        max_header_size=options.max_header_size if server.serves == "asgi" else None,
        shutdown_timeout=options.timeout_graceful_shutdown,
        loop=options.loop,
    )
    # APP is imported before any server starts, so that a bad one is one line and exit 2
    # (worker processes import it again, each for itself).
    if server.name == "gunicorn" and options.reload:
        interface = _load_in_child(target)
    else:
        interface = _app.load(target)[1]
    check_interface(server, options, interface)
    check_listen(options)
    _logging.configure(server.name, options.log_level, options.log_config)
    os.environ[_app.ENV] = target.to_env()
    if server.serves == "wsgi" and options.loop in ("asyncio", "uvloop"):
        os.environ["CROSSGATE_LOOP"] = options.loop  # the portal's loop, in every worker

    if interface == "wsgi":
        how = "through wsgi_to_asgi" if server.serves == "asgi" else "as is"
    else:
        how = "as is" if server.serves == "asgi" else "through asgi_to_wsgi"
    workers = f"{options.workers} worker{'s' if options.workers > 1 else ''}"
    if options.uds:
        url = f"unix:{options.uds}"
    else:
        scheme = "https" if options.tls else "http"
        url = f"{scheme}://{netloc(options.host, options.port)}{options.root_path}/"
    logger.info(
        "serving %s (%s app, %s) on %s at %s (%s, %s%s)",
        target.spec,
        interface.upper(),
        how,
        server.name,
        url,
        workers,
        _threads(server, options, interface),
        ", reload" if options.reload else "",
    )
    if server.name == "wsgiref":
        logger.warning(
            "wsgiref is a development server (a thread per request, no limits): "
            "use --server uvicorn, gunicorn or waitress in production"
        )
    for warning in warnings:
        logger.warning("%s", warning)
    return run(options, target)


def _show_cause(exc: UsageError, log_level: str) -> None:
    """With --log-level debug, the traceback of what the app's code raised."""
    cause = exc.__cause__
    if log_level == "debug" and cause is not None:
        traceback.print_exception(cause, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``crossgate`` command: returns the exit status (2 for a usage error, 3 when the
    server cannot listen)."""
    args = build_parser().parse_args(argv)
    try:
        return _serve(args)
    except UsageError as exc:
        _show_cause(exc, args.log_level)
        sys.stderr.write(f"{_PROG}: error: {exc}\n")
        return USAGE_ERROR
    except BindError as exc:
        sys.stderr.write(f"{_PROG}: error: {exc}\n")
        return LISTEN_FAILED
