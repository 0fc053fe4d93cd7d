"""What each server can do: one record per server, read by the checks, the runners and the
documentation (``docs/serve.md`` holds :func:`render_table`, checked by a test).

Adding a server to ``serve``: a record here (each option either mapped or refused with a
reason) and a runner module beside this one with ``run(options, target) -> int``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from crossgate.cli._import import Interface, UsageError

__all__ = [
    "DEFAULT_THREADS",
    "LOOPS",
    "OPTIONS",
    "SERVERS",
    "TABLE",
    "Options",
    "Server",
    "check_server",
    "render_table",
]

#: Threads per process running WSGI code, when --threads is not given: waitress's own
#: default, and the same on every server that has a pool (see docs/serve.md).
DEFAULT_THREADS: Final = 4

#: The options a server may not support, in the order the documentation lists them.
OPTIONS: Final = (
    "--workers",
    "--threads",
    "--reload",
    "--uds",
    "--proxy-headers",
    "--log-config",
    "--access-log",
    "--timeout-keep-alive",
    "--timeout-graceful-shutdown",
    "--ssl-certfile",
    "--max-header-size",
    "--loop",
)

#: The event loops ``--loop`` names (auto: the server's own choice).
LOOPS: Final = ("auto", "asyncio", "uvloop", "trio")

# The error log format gunicorn and hypercorn share; crossgate uses it for waitress and
# wsgiref too, which have none of their own.
_FORMAT: Final = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
_DATEFMT: Final = "[%Y-%m-%d %H:%M:%S %z]"


def _plain_formatter() -> logging.Formatter:
    return logging.Formatter(_FORMAT, _DATEFMT)


def _uvicorn_formatter() -> logging.Formatter:
    from uvicorn.logging import DefaultFormatter  # noqa: PLC0415

    # What uvicorn's own LOGGING_CONFIG gives its "default" handler.
    formatter: logging.Formatter = DefaultFormatter("%(levelprefix)s %(message)s")
    return formatter


@dataclass(frozen=True)
class Options:
    """Everything ``serve`` was asked, after defaults and the environment are applied."""

    server: str
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    workers: int = 1
    #: Where ``workers`` came from: the command line, $WEB_CONCURRENCY, or the default.
    workers_from: Literal["option", "env", "default"] = "default"
    #: As given (None: not given, the default applies).
    threads: int | None = None
    reload: bool = False
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    log_config: str | None = None
    #: None: the server's usual (on where it has an access log).
    access_log: bool | None = None
    timeout_keep_alive: int | None = None
    timeout_graceful_shutdown: int | None = None
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    max_header_size: int | None = None
    root_path: str = ""
    log_level: str = "info"
    #: The event loop: the server's (uvicorn, hypercorn), or that of an ASGI app's portal
    #: on a WSGI server; auto: the server's default.
    loop: str = "auto"

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None

    @property
    def effective_threads(self) -> int:
        return self.threads if self.threads is not None else DEFAULT_THREADS

    def given(self) -> dict[str, str]:
        """The table's options that were asked for, each as the user would spell it."""
        asked: dict[str, str | None] = {
            "--workers": f"--workers {self.workers}" if self.workers > 1 else None,
            "--threads": f"--threads {self.threads}" if self.threads is not None else None,
            "--reload": "--reload" if self.reload else None,
            "--uds": f"--uds {self.uds}" if self.uds else None,
            "--proxy-headers": "--proxy-headers" if self.proxy_headers else None,
            "--log-config": f"--log-config {self.log_config}" if self.log_config else None,
            "--access-log": "--access-log" if self.access_log else None,
            "--timeout-keep-alive": (
                f"--timeout-keep-alive {self.timeout_keep_alive}"
                if self.timeout_keep_alive is not None
                else None
            ),
            "--timeout-graceful-shutdown": (
                f"--timeout-graceful-shutdown {self.timeout_graceful_shutdown}"
                if self.timeout_graceful_shutdown is not None
                else None
            ),
            "--ssl-certfile": "--ssl-certfile" if self.tls else None,
            "--max-header-size": (
                f"--max-header-size {self.max_header_size}"
                if self.max_header_size is not None
                else None
            ),
            "--loop": f"--loop {self.loop}" if self.loop != "auto" else None,
        }
        return {option: text for option, text in asked.items() if text is not None}


@dataclass(frozen=True)
class Server:
    """One server: what it serves, and for each option its own setting or why it has none."""

    name: str
    #: The interface the server speaks; the app is wrapped to it when it is the other one.
    serves: Interface
    #: The module (beside this one) whose ``run(options, target)`` serves.
    runner: str
    #: What ``--threads`` sizes on this server, and its default, for the start line and docs.
    threads: str
    #: option -> the server's own setting it becomes (shown in docs/serve.md).
    settings: Mapping[str, str]
    #: option -> why the server cannot do it (the one-line error, after the option).
    refused: Mapping[str, str]
    #: crossgate applies --proxy-headers in the app (the server has no setting, or its
    #: setting leaves the client's address the proxy's).
    proxy_by_crossgate: bool
    formatter: Callable[[], logging.Formatter] = field(default=_plain_formatter, repr=False)
    #: Checks of option values this server alone cannot take.
    check: Callable[[Options], None] | None = field(default=None, repr=False)
    #: --loop values the server cannot run -> why (the one-line error, after the option).
    loops_refused: Mapping[str, str] = field(default_factory=dict)

    def installed(self) -> bool:
        return importlib.util.find_spec(self.name) is not None


def _waitress_check(options: Options) -> None:
    if options.proxy_headers and (
        "," in options.forwarded_allow_ips or "/" in options.forwarded_allow_ips
    ):
        raise UsageError(
            f"--forwarded-allow-ips {options.forwarded_allow_ips}: waitress trusts one proxy "
            "address (trusted_proxy), or '*'"
        )


_ONE_PROCESS_WAITRESS = (
    "waitress has no process manager, it serves from one process (use --threads for "
    "concurrency, or --server gunicorn or uvicorn for several processes)"
)
_ONE_PROCESS_WSGIREF = (
    "wsgiref serves from one process, a thread per request (use --server gunicorn or "
    "uvicorn for several processes)"
)
_DEV = "wsgiref is a development server; use --server uvicorn, hypercorn, gunicorn or waitress"
_PORTAL_LOOP = (
    "for an ASGI app, the loop of crossgate's portal: trio is "
    "`asgi_to_wsgi(backend='trio')`, asyncio or uvloop `CROSSGATE_LOOP` (default: uvloop "
    "when installed); a WSGI app runs no loop"
)

TABLE: Final[Mapping[str, Server]] = {
    server.name: server
    for server in (
        Server(
            name="uvicorn",
            serves="asgi",
            runner="_uvicorn",
            threads=f"crossgate's pool for a WSGI app (`wsgi_to_asgi(workers=N)`), "
            f"default {DEFAULT_THREADS}; an ASGI app runs on the event loop",
            settings={
                "--workers": "`workers` (uvicorn's supervisor)",
                "--threads": "`wsgi_to_asgi(workers=N)` for a WSGI app",
                "--reload": "`reload`, `reload_dirs=[--app-dir]`",
                "--uds": "`uds`",
                "--proxy-headers": "`proxy_headers`, `forwarded_allow_ips`",
                "--log-config": "`log_config` (.json, .yaml, .ini)",
                "--access-log": "`access_log`",
                "--timeout-keep-alive": "`timeout_keep_alive` (default 5)",
                "--timeout-graceful-shutdown": "`timeout_graceful_shutdown` (default: "
                "none), and `wsgi_to_asgi(shutdown_timeout=S)` (default 30)",
                "--ssl-certfile": "`ssl_certfile`, `ssl_keyfile`",
                "--max-header-size": "crossgate answers 431; and "
                "`h11_max_incomplete_event_size` (with h11: the buffer of an unfinished head)",
                "--loop": "`loop` (asyncio, uvloop; default: uvloop when installed); refused: trio",
            },
            refused={},
            proxy_by_crossgate=False,
            formatter=_uvicorn_formatter,
            loops_refused={
                "trio": "uvicorn runs asyncio or uvloop; hypercorn runs trio "
                "(--server hypercorn --loop trio)",
            },
        ),
        Server(
            name="hypercorn",
            serves="asgi",
            runner="_hypercorn",
            threads=f"crossgate's pool for a WSGI app (`wsgi_to_asgi(workers=N)`), "
            f"default {DEFAULT_THREADS}; an ASGI app runs on the event loop",
            settings={
                "--workers": "`workers`",
                "--threads": "`wsgi_to_asgi(workers=N)` for a WSGI app",
                "--reload": "`use_reloader`",
                "--uds": "`bind = ['unix:PATH']`",
                "--proxy-headers": "crossgate (hypercorn's `ProxyFixMiddleware` counts hops, "
                "it does not check the peer)",
                "--log-config": "`logconfig` (`json:PATH`, or INI), `logconfig_dict` (YAML)",
                "--access-log": "`accesslog = '-'`",
                "--timeout-keep-alive": "`keep_alive_timeout` (default 5)",
                "--timeout-graceful-shutdown": "`graceful_timeout` (default 3), and "
                "`wsgi_to_asgi(shutdown_timeout=S)` (default 30)",
                "--ssl-certfile": "`certfile`, `keyfile`",
                "--max-header-size": "crossgate answers 431; and `h11_max_incomplete_size` "
                "(the buffer of an unfinished head)",
                "--loop": "`worker_class` (asyncio, uvloop, trio; default asyncio); trio "
                "runs under hypercorn's master process, which handles SIGTERM for it",
            },
            refused={},
            proxy_by_crossgate=True,
        ),
        Server(
            name="gunicorn",
            serves="wsgi",
            runner="_gunicorn",
            threads=f"`threads` of the gthread worker, default {DEFAULT_THREADS}",
            settings={
                "--workers": "`workers` (gunicorn's arbiter)",
                "--threads": "`threads` (`worker_class = 'gthread'`)",
                "--reload": "`reload` (the app is imported in a child, never in the arbiter)",
                "--uds": "`bind = ['unix:PATH']`",
                "--proxy-headers": "`forwarded_allow_ips` (the scheme), and crossgate "
                "(`REMOTE_ADDR`, which gunicorn leaves the proxy's)",
                "--log-config": "`logconfig_dict` (JSON, YAML; `root` and `loggers` "
                "default to empty, not to gunicorn's), `logconfig` (INI)",
                "--access-log": "`accesslog = '-'`",
                "--timeout-keep-alive": "`keepalive` (default 2)",
                "--timeout-graceful-shutdown": "`graceful_timeout` (default 30)",
                "--ssl-certfile": "`certfile`, `keyfile`",
                "--max-header-size": "`limit_request_field_size`: each header line, not "
                "the total (default 8190)",
                "--loop": _PORTAL_LOOP,
            },
            refused={},
            proxy_by_crossgate=True,
        ),
        Server(
            name="waitress",
            serves="wsgi",
            runner="_waitress",
            threads=f"`threads`, default {DEFAULT_THREADS}",
            settings={
                "--threads": "`threads`",
                "--uds": "`unix_socket`",
                "--proxy-headers": "`trusted_proxy` (one address, or '*'), "
                "`trusted_proxy_headers`, `trusted_proxy_count = 1`",
                "--log-config": "applied by crossgate (waitress logs through `logging`)",
                "--timeout-keep-alive": "`channel_timeout`: any idle connection (default "
                "120), looked for every `cleanup_interval = min(S, 30)`",
                "--max-header-size": "`max_request_header_size` (default 262144)",
                "--loop": _PORTAL_LOOP,
            },
            refused={
                "--workers": _ONE_PROCESS_WAITRESS,
                "--reload": "waitress cannot reload; use --server uvicorn, hypercorn or gunicorn",
                "--access-log": "waitress writes no access log (put one in the proxy in "
                "front, or use --server gunicorn or uvicorn)",
                "--timeout-graceful-shutdown": "waitress has no graceful shutdown timeout "
                "(it waits up to 5 s for running requests)",
                "--ssl-certfile": "waitress has no TLS; put a proxy that terminates TLS in "
                "front, or use --server uvicorn, hypercorn or gunicorn",
            },
            proxy_by_crossgate=False,
            check=_waitress_check,
        ),
        Server(
            name="wsgiref",
            serves="wsgi",
            runner="_wsgiref",
            threads="one thread per request, unbounded",
            settings={
                "--proxy-headers": "crossgate",
                "--log-config": "applied by crossgate",
                "--access-log": "crossgate's `crossgate.cli._wsgiref` logger",
                "--loop": _PORTAL_LOOP,
            },
            refused={
                "--workers": _ONE_PROCESS_WSGIREF,
                "--threads": "wsgiref starts one thread per request, unbounded",
                "--reload": "wsgiref cannot reload; use --server uvicorn, hypercorn or gunicorn",
                "--uds": f"{_DEV} to listen on a unix socket",
                "--timeout-keep-alive": "wsgiref speaks HTTP/1.0, one request per connection",
                "--timeout-graceful-shutdown": f"wsgiref stops at once; {_DEV}",
                "--ssl-certfile": f"wsgiref has no TLS; {_DEV}",
                "--max-header-size": "wsgiref's limits are fixed (64 KiB a line, 100 "
                f"header lines); {_DEV}",
            },
            proxy_by_crossgate=True,
        ),
    )
}

SERVERS: Final = tuple(TABLE)


def check_server(options: Options) -> Server:
    """The chosen server's record, once it is installed and can do all that was asked."""
    server = TABLE[options.server]
    if not server.installed():
        raise UsageError(
            f"--server {server.name}: {server.name} is not installed (pip install {server.name})"
        )
    for option, text in options.given().items():
        reason = server.refused.get(option)
        if reason is not None:
            raise UsageError(f"{text}: {reason}")
    if options.reload and options.workers > 1 and server.name != "gunicorn":
        raise UsageError(f"--reload runs one {server.name} worker; drop --workers")
    reason = server.loops_refused.get(options.loop)
    if reason is not None:
        raise UsageError(f"--loop {options.loop}: {reason}")
    if server.check is not None:
        server.check(options)
    return server


def check_interface(server: Server, options: Options, interface: Interface) -> None:
    """Refuse the options that make no sense for this kind of app on this server."""
    if options.threads is not None and server.serves == "asgi" and interface == "asgi":
        raise UsageError(
            f"--threads sizes the thread pool that runs WSGI code; an ASGI app on "
            f"{server.name} runs on the event loop and has none"
        )
    if options.loop != "auto" and server.serves == "wsgi" and interface == "wsgi":
        raise UsageError(
            f"--loop {options.loop}: a WSGI app on {server.name} runs on no event loop "
            "(--loop picks an ASGI app's)"
        )


def render_table() -> str:
    """The capability table as Markdown: an option per row, a server per column."""
    names = list(TABLE)
    lines = [
        "| option | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for option in OPTIONS:
        label = "`--ssl-certfile`, `--ssl-keyfile`" if option == "--ssl-certfile" else f"`{option}`"
        cells = []
        for name in names:
            server = TABLE[name]
            if option in server.settings:
                cells.append(server.settings[option])
            else:
                cells.append(f"refused: {server.refused[option]}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| threads | " + " | ".join(TABLE[name].threads for name in names) + " |")
    return "\n".join(lines) + "\n"


def run(options: Options, target: object) -> int:
    """Serve with the chosen server's runner."""
    module = importlib.import_module(f"crossgate.cli.{TABLE[options.server].runner}")
    result: int = module.run(options, target)
    return result
