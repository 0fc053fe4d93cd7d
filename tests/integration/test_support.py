"""The process helpers the integration tests and the real-server benchmarks share.

A main process that exits on SIGTERM leaves behind a child of its session that ignores
SIGTERM: what a supervisor that dies before its workers leaves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.support import start, stop

pytestmark = pytest.mark.integration

#: Forks a child that ignores SIGTERM and says its pid once it does, then waits.
LEAVES_A_CHILD = """
import os, signal, time
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("child", os.getpid(), flush=True)
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def _child_pid(log: Path, proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("child "):
                return int(line.split()[1])
        assert proc.poll() is None, log.read_text()
        time.sleep(0.02)
    raise AssertionError(f"the child never said its pid: {log.read_text()!r}")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it has stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def leaves_a_child() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    proc, log = start([sys.executable, "-c", LEAVES_A_CHILD], module=False)
    try:
        child = _child_pid(log, proc)
        yield proc, child
    finally:
        # Whatever a test left running, without the helper under test: nothing outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        log.unlink(missing_ok=True)


@pytest.mark.timeout(30)
def test_stop_kills_what_the_main_process_leaves_when_asked(
    leaves_a_child: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, child = leaves_a_child
    stop(proc, 5, kill_leftovers=True)
    assert proc.returncode == -signal.SIGTERM
    assert _gone(child)


@pytest.mark.timeout(30)
def test_stop_leaves_a_group_that_got_sigterm_to_finish_its_exit(
    leaves_a_child: tuple[subprocess.Popen[bytes], int],
) -> None:
    """serve()'s default: what the workers do on their way out is the tests' to check."""
    proc, child = leaves_a_child
    stop(proc, 5)
    assert proc.returncode == -signal.SIGTERM
    assert not _gone(child, timeout=0.5)


@pytest.mark.timeout(30)
def test_stop_after_sigterm_to_the_main_process_alone_kills_the_rest(
    leaves_a_child: tuple[subprocess.Popen[bytes], int],
) -> None:
    """serve(stop_group=False): a master signalled alone; its group is swept after it."""
    proc, child = leaves_a_child
    stop(proc, 5, group=False)
    assert proc.returncode == -signal.SIGTERM
    assert _gone(child)
