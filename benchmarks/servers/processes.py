"""One server process per (contender, workers): started, awaited, always stopped.

Starting, stopping and free ports are the integration tests' own helpers
(``tests/integration/support.py``), the one implementation of them; what is the
benchmark's own is waiting for an answer rather than a listening port.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.integration.support import free_port, start, stop

from benchmarks.servers.matrix import WORKLOADS, Contender, server_argv
from benchmarks.servers.measure import fetch

__all__ = ["running_server"]

#: Seconds a server may take to answer its first request, and to stop.
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


@contextlib.contextmanager
def running_server(contender: Contender, workers: int) -> Iterator[tuple[int, int, Path]]:
    """Start the server, wait until it answers, yield (port, pid, log); always stop it.

    The pid leads the server's session, whose processes :mod:`.measure` samples for RSS.
    """
    port = free_port()
    proc, log_path = start(server_argv(contender.server, contender.attr, port, workers))
    try:
        _wait_ready(proc, port, timeout=READY_TIMEOUT)
        yield port, proc.pid, log_path
    finally:
        # Workers left behind by a supervisor that died first belong to the same session:
        # killed too, so that none of them loads the machine during the next server's cells.
        stop(proc, STOP_TIMEOUT, kill_leftovers=True)
        log_path.unlink(missing_ok=True)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, *, timeout: float) -> None:
    # Multi-process servers bind before their workers import the app: wait for an answer.
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            status, _ = fetch(port, WORKLOADS["hello"], timeout=5.0)
        except OSError as exc:
            last = exc
            time.sleep(0.1)
            continue
        if status == 200:
            return
        last = RuntimeError(f"status {status}")
        time.sleep(0.1)
    raise TimeoutError(f"server on port {port} did not answer within {timeout} s ({last})")
