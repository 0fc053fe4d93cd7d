"""Where the server listens, and the one error for an address it cannot have."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from types import FrameType
from typing import Final, NoReturn

from crossgate.cli._servers import Options

__all__ = ["LISTEN_FAILED", "BindError", "check_listen", "netloc", "raise_exit", "where"]

#: The exit status when the server cannot listen (address in use, no permission), on
#: every server; uvicorn's own for a failed startup is the same.
LISTEN_FAILED: Final = 3


class BindError(Exception):
    """The server cannot listen: shown as one line, exit status :data:`LISTEN_FAILED`."""


def netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def where(options: Options) -> str:
    """The address as the servers spell a bind: ``host:port`` or ``unix:PATH``."""
    return f"unix:{options.uds}" if options.uds else netloc(options.host, options.port)


def bind_error(options: Options, exc: OSError) -> BindError:
    return BindError(f"{options.server} cannot listen on {where(options)}: {exc.strerror or exc}")


def check_listen(options: Options) -> None:
    """Fail before any server starts (or any app's startup runs) when the address is taken.

    Each server reports it differently (hypercorn with a traceback, gunicorn after five
    retries, uvicorn after the app's lifespan startup), so the address is tried here
    first; the server then binds it itself, moments later.
    """
    if options.uds:
        if os.path.exists(options.uds):
            with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
                probe.settimeout(1)
                probe.connect(options.uds)
                raise BindError(
                    f"{options.server} cannot listen on {where(options)}: "
                    "a server is listening there"
                )
        return
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    with socket.socket(family) as probe:
        # As the servers do: an address left in TIME_WAIT is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((options.host, options.port))
        except OSError as exc:
            raise bind_error(options, exc) from exc


def raise_exit(signum: int, frame: FrameType | None) -> NoReturn:
    # SIGTERM ends the serving loop like Ctrl+C does, so lifespan shutdown still runs.
    raise SystemExit(0)


def exit_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, raise_exit)
