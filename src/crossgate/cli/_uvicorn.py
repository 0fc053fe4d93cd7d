"""Serving on uvicorn."""

from __future__ import annotations

from typing import Any

from crossgate.cli._app import Target
from crossgate.cli._servers import Options

__all__ = ["run"]


def run(options: Options, target: Target) -> int:
    import uvicorn  # noqa: PLC0415

    settings: dict[str, Any] = {
        "factory": True,
        "interface": "asgi3",
        "workers": options.workers,
        "reload": options.reload,
        "reload_dirs": [target.app_dir] if options.reload else None,
        "root_path": target.root_path,
        # Every app handed over answers the lifespan scope (WSGIToASGI, with_lifespan).
        "lifespan": "auto",
        "log_level": options.log_level,
        # uvicorn trusts 127.0.0.1 by default; crossgate trusts no one unless told.
        "proxy_headers": options.proxy_headers,
        "forwarded_allow_ips": options.forwarded_allow_ips if options.proxy_headers else None,
        "access_log": options.access_log is not False,
        "timeout_graceful_shutdown": options.timeout_graceful_shutdown,
        "ssl_keyfile": options.ssl_keyfile,
        "ssl_certfile": options.ssl_certfile,
    }
    if options.loop != "auto":
        settings["loop"] = options.loop
    if options.uds:
        settings["uds"] = options.uds
    else:
        settings.update(host=options.host, port=options.port)
    if options.timeout_keep_alive is not None:
        settings["timeout_keep_alive"] = options.timeout_keep_alive
    if options.log_config is not None:
        settings["log_config"] = options.log_config
    if options.max_header_size is not None:
        # Bounds h11's buffer of an unfinished head; the limit itself is crossgate's.
        settings["h11_max_incomplete_event_size"] = options.max_header_size
    # An import string, not the app object: uvicorn needs one for --workers and --reload,
    # and its spawned processes import and wrap the app themselves (_app.ENV says what).
    uvicorn.run("crossgate.cli:_served_app", **settings)
    return 0
