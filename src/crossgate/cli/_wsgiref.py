"""Serving on the standard library's wsgiref (a development server: a warning at start)."""

from __future__ import annotations

import logging
import socket
import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from crossgate.cli import _app
from crossgate.cli._app import Target
from crossgate.cli._listen import bind_error, exit_on_sigterm
from crossgate.cli._servers import Options

__all__ = ["run"]

logger = logging.getLogger(__name__)


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, logging through ``logging`` instead of bare stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s - %s", self.address_string(), format % args)


class _QuietHandler(_Handler):
    """--no-access-log: requests go unlogged; errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def run(options: Options, target: Target) -> int:
    app = _app.as_wsgi(target)
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        address_family = family
        # One thread per request; daemon threads so a stuck request cannot block exit (the
        # ASGI adapter's close() still waits, bounded, for the app's work).
        daemon_threads = True
        allow_reuse_address = True

    handler = _QuietHandler if options.access_log is False else _Handler
    try:
        server = make_server(options.host, options.port, app, Server, handler)
    except OSError as exc:
        raise bind_error(options, exc) from exc
    exit_on_sigterm()
    _app.start_adapter()
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        _app.stop_adapter()
    return 0
