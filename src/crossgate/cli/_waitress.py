"""Serving on waitress (one process, a pool of threads)."""

from __future__ import annotations

from typing import Any

from crossgate.cli import _app
from crossgate.cli._app import Target
from crossgate.cli._listen import bind_error, exit_on_sigterm
from crossgate.cli._servers import Options

__all__ = ["run"]


def run(options: Options, target: Target) -> int:
    from waitress import create_server  # noqa: PLC0415

    app = _app.as_wsgi(target)
    settings: dict[str, Any] = {"threads": options.effective_threads, "ident": "crossgate"}
    if options.uds:
        settings["unix_socket"] = options.uds
    else:
        settings.update(host=options.host, port=options.port)
    if options.proxy_headers:
        settings.update(
            trusted_proxy=options.forwarded_allow_ips.strip(),
            trusted_proxy_count=1,
            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"},
        )
    if options.timeout_keep_alive is not None:
        # waitress looks for idle connections every cleanup_interval (30 s) only.
        settings["channel_timeout"] = options.timeout_keep_alive
        settings["cleanup_interval"] = max(1, min(30, options.timeout_keep_alive))
    if options.max_header_size is not None:
        settings["max_request_header_size"] = options.max_header_size
    try:
        server = create_server(app, **settings)
    except OSError as exc:
        raise bind_error(options, exc) from exc
    if not options.uds:
        server.print_listen("Serving on http://{}:{}")  # what waitress.serve() says
    exit_on_sigterm()
    _app.start_adapter()
    try:
        server.run()  # returns on SIGTERM or Ctrl+C, once waitress has stopped its threads
    finally:
        server.close()
        _app.stop_adapter()
    return 0
