"""Start real servers on 127.0.0.1 for integration tests, and always stop them.

The one implementation of these process helpers: the benchmarks on real servers
(``benchmarks/servers``, ``bench_soak``, ``hostile``) import them from here too. ``start``
and ``stop`` are the pieces; ``serve`` composes them for a test.
"""

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

__all__ = [
    "HOST",
    "REPO",
    "free_port",
    "gunicorn_argv",
    "serve",
    "start",
    "stop",
    "uvicorn_argv",
    "wait_for_port",
]

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


def start(
    argv: Sequence[str], *, env: dict[str, str] | None = None, module: bool = True
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``python -m <argv>`` (``module=False``: the command ``argv``) in a session of
    its own, its output to a new log file; return the process and the log's path.

    The server runs from the repository with it on ``PYTHONPATH`` (so ``tests.…`` and
    ``benchmarks.…`` apps import) and unbuffered output; ``env`` adds to the environment.
    Its own session makes it the leader of a process group holding its workers, which
    :func:`stop` signals. The caller deletes the log.
    """
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
    with tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", *argv] if module else list(argv),
                cwd=REPO,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            log_path.unlink(missing_ok=True)
            raise
    return proc, log_path


def stop(
    proc: subprocess.Popen[bytes],
    timeout: float,
    *,
    group: bool = True,
    kill_leftovers: bool | None = None,
) -> None:
    """Stop a server :func:`start` started, by its PID: SIGTERM, then SIGKILL to its whole
    group if the main process outlives ``timeout``; return once the main process is gone.

    ``group=False`` sends SIGTERM to the main process alone (a master that stops its
    workers itself, as a supervisor signalling its main process has it). Then
    ``kill_leftovers`` SIGKILLs whatever is still in the group; by default only after
    ``group=False``: a group that got SIGTERM is left to finish its exit, whose effects
    tests check.
    """
    if kill_leftovers is None:
        kill_leftovers = not group
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
    if kill_leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


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
    proc, log_path = start(argv, env=env, module=module)
    try:
        wait_for_port(port, timeout=timeout, proc=proc)
        yield log_path
    except BaseException:
        stop(proc, stop_timeout, group=stop_group)
        sys.stderr.write(log_path.read_text(errors="replace"))
        raise
    else:
        stop(proc, stop_timeout, group=stop_group)
        if after_stop is not None:
            try:
                after_stop()
            except BaseException:
                sys.stderr.write(log_path.read_text(errors="replace"))
                raise
    finally:
        log_path.unlink(missing_ok=True)
