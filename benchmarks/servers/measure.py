"""Measuring one round of one cell on a running server, and the medians of rounds.

Before the load, one response's body is checked and the server is warmed up; then
``wrk -t1`` (with ``benchmarks/wrk/report.lua``) loads it for a few seconds while the RSS
of the server's session is sampled from /proc. A round whose wrk run saw socket errors or
non-2xx/3xx responses is invalid: no speed is published from failing responses.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration.support import HOST, REPO

from benchmarks.bench_calls import ping_pong_us
from benchmarks.servers.matrix import Cell, Settings, Workload

__all__ = [
    "RssSampler",
    "fetch",
    "measure",
    "rss_kib",
    "run_wrk",
    "session_pids",
    "summarize",
    "wrk_path",
]

LUA = REPO / "benchmarks" / "wrk" / "report.lua"
#: Round trips of the two-thread lock ping-pong measured before each cell.
FLOOR_TRIPS = 500


# --- requests ----------------------------------------------------------------------------


def fetch(
    port: int,
    workload: Workload,
    *,
    timeout: float = 30.0,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """One request of the workload; returns (status, body)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if workload.upload:
            body = b"u" * workload.upload
            headers = {"Content-Type": "application/octet-stream"}
            conn.request("POST", workload.path, body=body, headers=headers)
        else:
            conn.request("GET", workload.path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def _warm_up(port: int, workload: Workload, seconds: float, connections: int) -> None:
    """Keep a few connections busy for ``seconds``: thread pools and lazy paths start."""
    deadline = time.monotonic() + seconds

    def loop() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30.0)
        try:
            while time.monotonic() < deadline:
                fetch(port, workload, conn=conn)
        except (OSError, http.client.HTTPException):
            pass  # the measured run reports failures; warming up only has to try
        finally:
            conn.close()

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(min(4, connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)


# --- memory ------------------------------------------------------------------------------


def session_pids(sid: int) -> list[int]:
    """Processes of the session the server leads: the server and its workers."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == sid:  # state ppid pgrp session ...
            pids.append(int(entry))
    return pids


def rss_kib(sid: int) -> int:
    """Resident memory of every process of the session, summed (KiB)."""
    total = 0
    for pid in session_pids(sid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            total += int(match.group(1))
    return total


class RssSampler:
    """Samples the session's summed RSS in a thread while the block runs; keeps the peak."""

    def __init__(self, sid: int, interval: float = 0.05) -> None:
        self.sid = sid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.sid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.peak = max(self.peak, rss_kib(self.sid))


# --- wrk and one round -------------------------------------------------------------------


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: `apt-get install wrk` (scripts/bench installs it for you)"
        )
    return path


def run_wrk(url: str, *, seconds: int, connections: int, upload: int) -> dict[str, Any]:
    """One wrk run; returns the JSON the Lua ``done()`` prints (see benchmarks/wrk)."""
    argv = [wrk_path(), "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=30s"]
    argv += ["-s", str(LUA), url]
    env = {**os.environ, "CROSSGATE_WRK_BODY_BYTES": str(upload)}
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=seconds + 90, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("CROSSGATE_WRK "):
            report: dict[str, Any] = json.loads(line.removeprefix("CROSSGATE_WRK "))
            return report
    raise RuntimeError(f"wrk exited with {proc.returncode}: {proc.stderr.strip() or proc.stdout}")


def measure(cell: Cell, port: int, pid: int, settings: Settings) -> dict[str, Any]:
    """Check one answer, warm up, load the server with wrk; one round's record."""
    record: dict[str, Any] = {"valid": False, "loadavg": os.getloadavg()[0]}
    try:
        status, body = fetch(port, cell.workload)
    except (OSError, http.client.HTTPException) as exc:
        record["reason"] = f"check request failed: {exc!r}"
        return record
    if status != 200 or not cell.workload.check(body):
        record["reason"] = f"wrong answer to the check request: {status}, {body[:80]!r}"
        return record
    # This machine's thread wake-up latency swings between modes (see docs/performance.md): every
    # adapter's figure swings with it, so each round records it beside its figures.
    record["floor_us"] = round(ping_pong_us(FLOOR_TRIPS), 1)
    _warm_up(port, cell.workload, settings.warmup, cell.connections)
    record["rss_before_kib"] = rss_kib(pid)
    url = f"http://{HOST}:{port}{cell.workload.path}"
    with RssSampler(pid) as sampler:
        try:
            report = run_wrk(
                url,
                seconds=settings.duration,
                connections=cell.connections,
                upload=cell.workload.upload,
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            record["reason"] = str(exc)
            return record
    seconds = report["duration_us"] / 1e6
    errors = report["errors"]
    record.update(
        requests=report["requests"],
        seconds=round(seconds, 3),
        rps=round(report["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=round(report["latency_us"]["p50"] / 1000, 3),
        p99_ms=round(report["latency_us"]["p99"] / 1000, 3),
        errors=errors,
        peak_rss_kib=sampler.peak,
        rss_samples=sampler.samples,
    )
    failures = sum(errors.values())
    if report["requests"] == 0:
        record["reason"] = "no request completed"
    elif failures:
        # Timeouts, socket errors and statuses >= 400 (wrk's "Non-2xx or 3xx responses"):
        # a speed measured on failing responses is not published.
        record["reason"] = "wrk errors: " + ", ".join(f"{k} {v}" for k, v in errors.items() if v)
    else:
        record["valid"] = True
    return record


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds; a cell with any invalid round is invalid as a whole."""
    valid = [r for r in rounds if r.get("valid")]
    summary: dict[str, Any] = {
        "valid": bool(rounds) and len(valid) == len(rounds),
        "rounds": len(rounds),
    }
    if not summary["valid"]:
        failed = next(r for r in rounds if not r.get("valid"))
        summary["reason"] = failed.get("reason", "")
        if failed.get("server_log"):
            # The last line a server logs about a failure is the exception, usually.
            summary["server_said"] = failed["server_log"].splitlines()[-1]
        return summary
    summary["rps"] = round(statistics.median(r["rps"] for r in valid), 1)
    summary["p99_ms"] = round(statistics.median(r["p99_ms"] for r in valid), 3)
    summary["peak_rss_mib"] = round(max(r["peak_rss_kib"] for r in valid) / 1024, 1)
    return summary
