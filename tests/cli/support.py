"""Run `crossgate serve` for a test, on a TCP port or a unix socket, and always stop it."""

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
from dataclasses import dataclass
from pathlib import Path

from tests.integration.support import REPO

__all__ = ["Running", "running", "wait_for"]


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        wait_for(lambda: self.text().count(text) >= count, timeout, self.text)

    def stop(self, timeout: float = 15.0) -> float:
        """SIGTERM to the server's process group; the seconds it took to exit."""
        start = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        took = time.monotonic() - start
        with contextlib.suppress(ProcessLookupError):  # workers left behind, if any
            os.killpg(self.proc.pid, signal.SIGKILL)
        return took


def wait_for(
    check: Callable[[], bool], timeout: float, show: Callable[[], str] | None = None
) -> None:
    """Poll ``check`` until true (bounded); the failure shows ``show()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s" + (f":\n{show()}" if show else ""))


def _accepts(port: int | None, uds: str | None) -> bool:
    family = socket.AF_UNIX if uds else socket.AF_INET
    with socket.socket(family) as sock, contextlib.suppress(OSError):
        sock.settimeout(0.5)
        sock.connect(uds or ("127.0.0.1", port))
        return True
    return False


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    *,
    port: int | None = None,
    uds: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[Running]:
    """``python -m crossgate serve *argv`` until the block ends, ready on ``port`` or ``uds``.

    The log (stdout and stderr) is printed when the block raises.
    """
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
    for name in ("PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
        if name not in (env or {}):
            full_env.pop(name, None)
    with tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False) as log:
        server = Running(
            subprocess.Popen(
                [sys.executable, "-m", "crossgate", "serve", *argv],
                cwd=REPO,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
            Path(log.name),
        )
    try:
        deadline = time.monotonic() + timeout
        while not _accepts(port, uds):
            if server.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {server.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"serve did not listen within {timeout} s")
            time.sleep(0.05)
        yield server
    except BaseException:
        server.stop()
        sys.stderr.write(server.text())
        raise
    else:
        server.stop()
    finally:
        server.log.unlink(missing_ok=True)
