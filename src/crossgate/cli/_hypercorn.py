"""Serving on hypercorn."""

from __future__ import annotations

from crossgate.cli._app import Target
from crossgate.cli._listen import where
from crossgate.cli._logging import read_log_config
from crossgate.cli._servers import Options

__all__ = ["run"]


def run(options: Options, target: Target) -> int:
    from hypercorn.config import Config  # noqa: PLC0415
    from hypercorn.run import run  # noqa: PLC0415

    config = Config()
    config.application_path = "asgi:crossgate.cli:_served_app()"
    config.bind = [where(options)]
    if options.loop != "auto":
        config.worker_class = options.loop
    # workers=0 serves in this process; hypercorn's reloader needs its worker processes,
    # and its trio worker handles no signal of its own: SIGTERM reaches the master, which
    # shuts the worker down (lifespan included), where a lone trio worker would just die.
    alone = options.workers == 1 and not options.reload and options.loop != "trio"
    config.workers = 0 if alone else options.workers
    config.use_reloader = options.reload
    config.root_path = target.root_path
    config.loglevel = options.log_level.upper()
    config.accesslog = None if options.access_log is False else "-"
    config.errorlog = "-"
    if options.timeout_keep_alive is not None:
        config.keep_alive_timeout = options.timeout_keep_alive
    if options.timeout_graceful_shutdown is not None:
        config.graceful_timeout = options.timeout_graceful_shutdown
    if options.tls:
        config.certfile = options.ssl_certfile
        config.keyfile = options.ssl_keyfile
    if options.max_header_size is not None:
        config.h11_max_incomplete_size = options.max_header_size
    if options.log_config is not None:
        log_config = read_log_config(options.log_config)
        if log_config.kind == "json":
            config.logconfig = f"json:{log_config.path}"
        elif log_config.kind == "yaml":
            config.logconfig_dict = log_config.content
        else:
            config.logconfig = log_config.path
    result: int = run(config)
    return result
