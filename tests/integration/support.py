"""Start real servers on 127.0.0.1 for integration tests, and always stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = ["REPO", "free_port", "gunicorn_argv", "serve", "uvicorn_argv", "wait_for_port"]

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, *, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until something accepts connections on ``port``, or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {HOST}:{port} within {timeout} s")


def uvicorn_argv(target: str, port: int, *extra: str) -> list[str]:
    """The ``python -m`` argv of uvicorn serving ``target`` on 127.0.0.1:``port``."""
    return ["uvicorn", target, "--host", HOST, "--port", str(port), *extra]


def gunicorn_argv(
    target: str,
    port: int,
    *,
    workers: int = 1,
    worker_class: str = "gthread",
    threads: int = 2,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``python -m`` argv of gunicorn serving ``target`` on 127.0.0.1:``port``."""
    return [
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads),
        "--graceful-timeout",
        "5",
        # gunicorn >= 25 opens a control socket at one path per user, which two servers
        # running at once would contend for.
        "--no-control-socket",
        *extra,
        target,
    ]


@contextlib.contextmanager
def serve(
    argv: Sequence[str],
    port: int,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
    stop_timeout: float = 10.0,
    module: bool = True,
    stop_group: bool = True,
    after_stop: Callable[[], None] | None = None,
) -> Iterator[Path]:
    """Run ``python -m <argv>`` until the block ends; yield the path of its log file.

    With ``module=False``, ``argv`` is a command of its own (``uwsgi``, ``mod_wsgi-express``).
    With ``stop_group=False``, SIGTERM goes to the server's own process alone (a master that
    stops its workers itself, as a supervisor signalling its main process has it).
    ``after_stop`` runs once the server has stopped: checks of what it did on its way out,
    shown with the server's log when they fail.

    The server runs with the repository on ``PYTHONPATH`` (so ``tests.…`` apps import),
    receives SIGTERM at the end (SIGKILL if it lingers), and its log is printed when the
    block raises, so a failing test shows what the server said.
    """
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
    with tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        proc = subprocess.Popen(
            [sys.executable, "-m", *argv] if module else list(argv),
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=timeout, proc=proc)
        yield log_path
    except BaseException:
        _stop(proc, stop_timeout, stop_group)
        sys.stderr.write(log_path.read_text(errors="replace"))
        raise
    else:
        _stop(proc, stop_timeout, stop_group)
        if after_stop is not None:
            try:
                after_stop()
            except BaseException:
                sys.stderr.write(log_path.read_text(errors="replace"))
                raise
    finally:
        log_path.unlink(missing_ok=True)


def _stop(proc: subprocess.Popen[bytes], timeout: float, group: bool = True) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    if not group:  # whatever the main process left behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
