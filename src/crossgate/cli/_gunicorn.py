"""Serving on gunicorn (gthread workers)."""

from __future__ import annotations

from crossgate._types import WSGIApp
from crossgate.cli import _app
from crossgate.cli._app import Target
from crossgate.cli._listen import where
from crossgate.cli._logging import read_log_config
from crossgate.cli._servers import Options

__all__ = ["post_worker_init", "run", "worker_exit"]


def post_worker_init(worker: object) -> None:
    # Lifespan startup in each worker, after fork and before its first request.
    _app.start_adapter()


def worker_exit(server: object, worker: object) -> None:
    _app.stop_adapter()


def run(options: Options, target: Target) -> int:
    from gunicorn.app.base import BaseApplication  # noqa: PLC0415

    settings: dict[str, object] = {
        "bind": [where(options)],
        "workers": options.workers,
        "worker_class": "gthread",
        "threads": options.effective_threads,
        "reload": options.reload,
        "loglevel": options.log_level,
        "proc_name": "crossgate",
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        # gunicorn >= 25 opens a control socket at one path per user; two servers would
        # contend for it, and `crossgate serve` offers no gunicornc commands.
        "control_socket_disable": True,
        # gunicorn trusts X-Forwarded-Proto from 127.0.0.1 by default; crossgate trusts no
        # one unless told (and then sets REMOTE_ADDR too, in the app: _app.as_wsgi).
        "forwarded_allow_ips": options.forwarded_allow_ips if options.proxy_headers else "",
        "accesslog": None if options.access_log is False else "-",
    }
    if options.timeout_keep_alive is not None:
        settings["keepalive"] = options.timeout_keep_alive
    if options.timeout_graceful_shutdown is not None:
        settings["graceful_timeout"] = options.timeout_graceful_shutdown
    if options.tls:
        settings.update(certfile=options.ssl_certfile, keyfile=options.ssl_keyfile)
    if options.max_header_size is not None:
        settings["limit_request_field_size"] = options.max_header_size
    if options.log_config is not None:
        log_config = read_log_config(options.log_config)
        if log_config.kind in ("json", "yaml"):
            # gunicorn merges its own defaults key by key: a file without "root" or
            # "loggers" would keep gunicorn's, which name handlers the file replaced.
            settings["logconfig_dict"] = {"root": {}, "loggers": {}, **log_config.content}
        else:
            settings["logconfig"] = log_config.path

    class Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
        def load_config(self) -> None:
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            # In each worker, after fork (with --reload, the first import of the app).
            return _app.as_wsgi(target)

    Gunicorn().run()
    return 0
