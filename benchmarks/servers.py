"""Real-server benchmarks: crossgate and its peers behind real servers, loaded by ``wrk``.

On 127.0.0.1, one server at a time, each cell is one (server, app, workload, workers):

* a WSGI app on uvicorn (uvloop, httptools) through crossgate, a2wsgi, asgiref, uvicorn's
  ``_WSGIMiddleware`` and hypercorn's ``AsyncioWSGIMiddleware``; beside it the equivalent
  native ASGI app on uvicorn (the ceiling) and the same WSGI app natively on gunicorn
  gthread; the same WSGI app through crossgate and a2wsgi on granian's ASGI interface,
  beside granian's own WSGI interface;
* an ASGI app on gunicorn gthread and on waitress through crossgate and a2wsgi, beside the
  equivalent native WSGI app on the same server (the ceiling).

Workloads (``benchmarks/server_apps.py``): hello-world, a 20 KiB page, a 4 MiB download,
a 1 MiB upload, a real Flask (WSGI) or FastAPI (ASGI) app and a real Django view, each
rendering a template. Before each cell one response's body is checked and the server is
warmed up; then ``wrk -t1`` loads it for a few seconds while the server's processes' RSS
is sampled from /proc. A cell whose wrk run saw socket errors or non-2xx/3xx responses is
marked invalid: no speed is published from failing responses. Rounds alternate between
the servers so a noisy neighbour slows all of them alike; figures are medians of rounds.

``python -m benchmarks.servers [--quick] [--only REGEX] [--workers 1,2] [--write-docs]``;
``--from-json`` re-renders ``docs/benchmarks.md`` and ``docs/benchmarks.png`` from
``benchmarks/results/servers.json`` without running anything.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bench_calls import ping_pong_us

__all__ = [
    "CONTENDERS",
    "PANELS",
    "WORKLOADS",
    "Cell",
    "Settings",
    "add_options",
    "compute_targets",
    "main",
    "plan",
    "render_chart",
    "render_docs",
    "render_markdown",
    "run",
    "run_from_args",
]

REPO = Path(__file__).resolve().parents[1]
APPS = "benchmarks.server_apps"
LUA = REPO / "benchmarks" / "wrk" / "report.lua"
RESULTS = REPO / "benchmarks" / "results" / "servers.json"
DOC = REPO / "docs" / "benchmarks.md"
CHART = REPO / "docs" / "benchmarks.png"
HOST = "127.0.0.1"
SCHEMA = 1

KIB = 1024
MIB = 1024 * KIB
#: crossgate's default byte budget per request: what a streamed request may hold.
BUDGET = 1 * MIB
#: Round trips of the two-thread lock ping-pong measured before each cell.
FLOOR_TRIPS = 500
#: Server threads per worker (gunicorn gthread, waitress): one per wrk connection.
THREADS = 16


# --- workloads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One request shape, and how to recognise its correct answer."""

    name: str
    path: str
    label: str
    check: Callable[[bytes], bool] = field(compare=False)
    upload: int = 0  # request body bytes: a POST when > 0
    streamed: bool = False  # RSS must stay flat: bounded by the budget, not the body


HELLO = b"Hello, world!"
PAGE_SIZE = 20 * KIB
DOWNLOAD_SIZE = 4 * MIB
UPLOAD_SIZE = 1 * MIB
#: A cell of the last row of the template every real app renders (server_apps.TEMPLATE).
TEMPLATE_MARKER = b"<td>item-19</td>"

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("hello", "/hello", "hello-world", lambda b: b == HELLO),
        Workload(
            "page",
            "/page",
            "20 KiB page",
            lambda b: len(b) == PAGE_SIZE and b.startswith(b"<!doctype html>"),
        ),
        Workload("flask", "/flask", "Flask + Jinja", lambda b: TEMPLATE_MARKER in b),
        Workload("fastapi", "/fastapi", "FastAPI + Jinja", lambda b: TEMPLATE_MARKER in b),
        Workload("django", "/django", "Django view", lambda b: TEMPLATE_MARKER in b),
        Workload(
            "download",
            "/download",
            "4 MiB download",
            lambda b: len(b) == DOWNLOAD_SIZE and b.count(b"d") == DOWNLOAD_SIZE,
            streamed=True,
        ),
        Workload(
            "upload",
            "/upload",
            "1 MiB upload",
            lambda b: b == str(UPLOAD_SIZE).encode(),
            upload=UPLOAD_SIZE,
            streamed=True,
        ),
    )
}
#: What each native app answers (the wrapped apps answer what the app they wrap does).
APP_WORKLOADS = {
    "wsgi": ("hello", "page", "flask", "django", "download", "upload"),
    "asgi": ("hello", "page", "fastapi", "django", "download", "upload"),
}
QUICK_WORKLOADS = ("hello", "download")
#: Run with 2 workers too by default: the cheapest request and a real app.
SCALING_WORKLOADS = ("hello", "django")


# --- contenders and panels ---------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One app on one server: ``server`` runs ``benchmarks.server_apps:<attr>``."""

    server: str  # uvicorn | gunicorn | waitress | granian-asgi | granian-wsgi
    attr: str
    app: str  # "wsgi" or "asgi": the native app behind it, which sets its workloads
    max_workers: int = 8

    @property
    def key(self) -> str:
        return f"{self.server}/{self.attr}"


CONTENDERS: dict[str, Contender] = {
    c.key: c
    for c in (
        Contender("uvicorn", "crossgate_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "a2wsgi_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "asgiref_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "uvicorn_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "hypercorn_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "asgi_app", "asgi"),
        Contender("gunicorn", "wsgi_app", "wsgi"),
        Contender("granian-asgi", "crossgate_wsgi_to_asgi", "wsgi"),
        Contender("granian-asgi", "a2wsgi_wsgi_to_asgi", "wsgi"),
        Contender("granian-wsgi", "wsgi_app", "wsgi"),
        Contender("gunicorn", "crossgate_asgi_to_wsgi", "asgi"),
        Contender("gunicorn", "a2wsgi_asgi_to_wsgi", "asgi"),
        # waitress has no process manager of its own: one process, threads only.
        Contender("waitress", "crossgate_asgi_to_wsgi", "asgi", max_workers=1),
        Contender("waitress", "a2wsgi_asgi_to_wsgi", "asgi", max_workers=1),
        Contender("waitress", "wsgi_app", "wsgi", max_workers=1),
    )
}

OURS, PEER, CEILING, ALTERNATIVE = "ours", "peer", "ceiling", "alternative"


@dataclass(frozen=True)
class Member:
    contender: str  # a CONTENDERS key
    label: str
    role: str


@dataclass(frozen=True)
class Panel:
    """One comparison: crossgate, its peers, and what they are measured against."""

    key: str
    title: str
    app: str  # the app the adapters wrap: its workloads are the panel's rows
    members: tuple[Member, ...]

    @property
    def ours(self) -> Member:
        return next(m for m in self.members if m.role == OURS)


PANELS: tuple[Panel, ...] = (
    Panel(
        "wsgi-uvicorn",
        "WSGI app on uvicorn (uvloop, httptools)",
        "wsgi",
        (
            Member("uvicorn/crossgate_wsgi_to_asgi", "crossgate", OURS),
            Member("uvicorn/a2wsgi_wsgi_to_asgi", "a2wsgi", PEER),
            Member("uvicorn/asgiref_wsgi_to_asgi", "asgiref", PEER),
            Member("uvicorn/uvicorn_wsgi_to_asgi", "uvicorn's", PEER),
            Member("uvicorn/hypercorn_wsgi_to_asgi", "hypercorn's", PEER),
            Member("uvicorn/asgi_app", "native ASGI app", CEILING),
            Member("gunicorn/wsgi_app", "native on gunicorn gthread", ALTERNATIVE),
        ),
    ),
    Panel(
        "wsgi-granian",
        "WSGI app on granian (ASGI interface)",
        "wsgi",
        (
            Member("granian-asgi/crossgate_wsgi_to_asgi", "crossgate", OURS),
            Member("granian-asgi/a2wsgi_wsgi_to_asgi", "a2wsgi", PEER),
            Member("granian-wsgi/wsgi_app", "granian's WSGI interface", ALTERNATIVE),
        ),
    ),
    Panel(
        "asgi-gunicorn",
        "ASGI app on gunicorn gthread",
        "asgi",
        (
            Member("gunicorn/crossgate_asgi_to_wsgi", "crossgate", OURS),
            Member("gunicorn/a2wsgi_asgi_to_wsgi", "a2wsgi", PEER),
            Member("gunicorn/wsgi_app", "native WSGI app", CEILING),
        ),
    ),
    Panel(
        "asgi-waitress",
        "ASGI app on waitress",
        "asgi",
        (
            Member("waitress/crossgate_asgi_to_wsgi", "crossgate", OURS),
            Member("waitress/a2wsgi_asgi_to_wsgi", "a2wsgi", PEER),
            Member("waitress/wsgi_app", "native WSGI app", CEILING),
        ),
    ),
)


def server_argv(server: str, attr: str, port: int, workers: int) -> list[str]:
    """The ``python -m ...`` command line that serves ``attr`` on ``port``."""
    target = f"{APPS}:{attr}"
    if server == "uvicorn":
        return [
            "uvicorn",
            target,
            f"--host={HOST}",
            f"--port={port}",
            "--loop=uvloop",
            "--http=httptools",
            "--no-access-log",
            "--log-level=warning",
            f"--workers={workers}",
        ]
    if server == "gunicorn":
        return [
            "gunicorn",
            "-k",
            "gthread",
            f"--threads={THREADS}",
            f"--workers={workers}",
            f"--bind={HOST}:{port}",
            "--log-level=warning",
            target,
        ]
    if server == "waitress":
        return ["waitress", f"--listen={HOST}:{port}", f"--threads={THREADS}", target]
    if server in ("granian-asgi", "granian-wsgi"):
        interface = server.removeprefix("granian-")
        argv = ["granian", f"--interface={interface}", f"--host={HOST}", f"--port={port}"]
        argv += [f"--workers={workers}", "--no-access-log", "--log-level=warning"]
        if interface == "asgi":
            argv.append("--loop=uvloop")
        return [*argv, target]
    raise ValueError(f"unknown server {server!r}")


# --- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    rounds: int = 3
    duration: int = 2  # seconds of wrk per cell (wrk takes whole seconds)
    warmup: float = 0.5
    workers: tuple[int, ...] = (1, 2)
    workloads: tuple[str, ...] | None = None  # None: every workload of each app
    scaling_workloads: tuple[str, ...] = SCALING_WORKLOADS
    connections: int = 16  # per server worker
    only: str | None = None
    quick: bool = False
    note: str = ""


QUICK = Settings(
    rounds=1, duration=1, workers=(1,), workloads=QUICK_WORKLOADS, scaling_workloads=(), quick=True
)


@dataclass(frozen=True)
class Cell:
    contender: Contender
    workload: Workload
    workers: int
    connections: int

    @property
    def id(self) -> str:
        return f"{self.contender.key}/{self.workload.name}/w{self.workers}"


def plan(settings: Settings) -> list[Cell]:
    """Every cell the settings select, grouped by (contender, workers) in a stable order."""
    only = re.compile(settings.only) if settings.only else None
    cells = []
    for contender in CONTENDERS.values():
        for workers in settings.workers:
            if workers > contender.max_workers:
                continue
            for name in APP_WORKLOADS[contender.app]:
                if settings.workloads is not None and name not in settings.workloads:
                    continue
                if workers > 1 and name not in settings.scaling_workloads:
                    continue
                cell = Cell(contender, WORKLOADS[name], workers, settings.connections * workers)
                if only is None or only.search(cell.id):
                    cells.append(cell)
    return cells


# --- running one server ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(contender: Contender, workers: int) -> Iterator[tuple[int, int, Path]]:
    """Start the server, wait until it answers, yield (port, pid, log); always stop it."""
    port = free_port()
    argv = [sys.executable, "-m", *server_argv(contender.server, contender.attr, port, workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    with tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(proc, port, timeout=90.0)
        yield port, proc.pid, log_path
    finally:
        _stop(proc)
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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)
    # Workers left behind by a supervisor that died first belong to the same session.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


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


# --- one cell ----------------------------------------------------------------------------


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
    # This machine's thread wake-up latency swings between modes (see the README): every
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


# --- the run -----------------------------------------------------------------------------


def _groups(cells: Sequence[Cell]) -> list[tuple[Contender, int, list[Cell]]]:
    groups: dict[tuple[str, int], tuple[Contender, int, list[Cell]]] = {}
    for cell in cells:
        key = (cell.contender.key, cell.workers)
        groups.setdefault(key, (cell.contender, cell.workers, []))[2].append(cell)
    return list(groups.values())


def estimate_seconds(cells: Sequence[Cell], settings: Settings) -> float:
    per_cell = settings.duration + settings.warmup + 0.5
    return settings.rounds * (len(cells) * per_cell + len(_groups(cells)) * 3.0)


def run(
    settings: Settings, cells: Sequence[Cell] | None = None, *, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run every round of every cell; return the results document (see ``write_results``)."""
    cells = list(plan(settings) if cells is None else cells)
    wrk_path()
    groups = _groups(cells)
    rounds: dict[str, list[dict[str, Any]]] = {cell.id: [] for cell in cells}
    results = _document(settings)
    results["conditions"]["loadavg_start"] = list(os.getloadavg())
    started = time.monotonic()
    for index in range(settings.rounds):
        # Rotate the order each round: a slow spell of the machine lands on other servers.
        shift = index * len(groups) // max(1, settings.rounds)
        for contender, workers, group in groups[shift:] + groups[:shift]:
            try:
                with running_server(contender, workers) as (port, pid, server_log):
                    for cell in group:
                        seen = server_log.stat().st_size
                        record = measure(cell, port, pid, settings)
                        if not record["valid"]:
                            record["server_log"] = _log_tail(server_log, seen)
                        rounds[cell.id].append(record)
                        log(_line(cell, index, record))
            except (RuntimeError, TimeoutError, OSError) as exc:
                for cell in group:
                    if len(rounds[cell.id]) <= index:
                        record = {"valid": False, "reason": f"server: {exc}"}
                        rounds[cell.id].append(record)
                        log(_line(cell, index, record))
    results["conditions"]["loadavg_end"] = list(os.getloadavg())
    results["conditions"]["elapsed_s"] = round(time.monotonic() - started, 1)
    results["cells"].extend(cell_record(cell, rounds[cell.id]) for cell in cells)
    results["targets"] = compute_targets(results)
    return results


def cell_record(cell: Cell, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell of the results JSON: what ran, every round's figures and their medians."""
    return {
        "id": cell.id,
        "server": cell.contender.server,
        "app": cell.contender.attr,
        "workload": cell.workload.name,
        "workers": cell.workers,
        "connections": cell.connections,
        "argv": server_argv(cell.contender.server, cell.contender.attr, 0, cell.workers),
        "rounds": rounds,
        "median": summarize(rounds),
    }


def _log_tail(path: Path, offset: int, lines: int = 4) -> str:
    """The last lines the server logged since ``offset``: why its cell failed, usually."""
    with path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def _line(cell: Cell, index: int, record: dict[str, Any]) -> str:
    if not record.get("valid"):
        text = f"{cell.id:<52} r{index + 1}  INVALID: {record.get('reason', '')}"
        if record.get("server_log"):
            text += "\n    " + record["server_log"].replace("\n", "\n    ")
        return text
    return (
        f"{cell.id:<52} r{index + 1}  {record['rps']:>9,.0f} req/s  "
        f"p99 {record['p99_ms']:>8.2f} ms  rss {record['peak_rss_kib'] / 1024:>6.1f} MiB  "
        f"floor {record['floor_us']:>4.0f} µs"
    )


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, memory, kernel, Python, wrk."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError):
        match = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_kib = int(match.group(1)) if match else 0
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        wrk_version = (out.stdout or out.stderr).splitlines()[0].strip() if out else ""
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / MIB, 1),
        "system": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "wrk": wrk_version,
    }


PACKAGES = (
    "crossgate",
    "a2wsgi",
    "asgiref",
    "uvicorn",
    "uvloop",
    "httptools",
    "hypercorn",
    "gunicorn",
    "waitress",
    "granian",
    "flask",
    "jinja2",
    "django",
    "fastapi",
    "starlette",
    "matplotlib",
)


def _document(settings: Settings) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "settings": {
            "rounds": settings.rounds,
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "workers": list(settings.workers),
            "connections_per_worker": settings.connections,
            "server_threads": THREADS,
            "wrk_threads": 1,
            "only": settings.only,
            "quick": settings.quick,
        },
        "machine": machine(),
        "versions": {name: _version(name) for name in PACKAGES},
        "conditions": {"note": settings.note},
        "cells": [],
    }


# --- targets -----------------------------------------------------------------------------


def _medians(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cell["id"]: summarize(cell["rounds"]) for cell in results["cells"]}


def _rps(medians: dict[str, dict[str, Any]], key: str) -> float | None:
    summary = medians.get(key)
    return summary["rps"] if summary and summary["valid"] else None


def _ratio_target(
    medians: dict[str, dict[str, Any]], name: str, ours: str, other: str, minimum: float
) -> dict[str, Any]:
    a, b = _rps(medians, ours), _rps(medians, other)
    target: dict[str, Any] = {"name": name, "want": f">= {minimum:g}x"}
    if a is None or b is None:
        missing = ours if a is None else other
        target.update(status="n/a", got=f"{missing}: not measured or invalid")
    else:
        ratio = a / b
        target.update(
            status="pass" if ratio >= minimum else "fail",
            got=f"{ratio:.2f}x ({a:,.0f} vs {b:,.0f} req/s)",
            ratio=round(ratio, 3),
        )
    return target


def compute_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what was measured and pass, fail or n/a."""
    medians = _medians(results)
    targets = [
        _ratio_target(
            medians,
            "uvicorn + crossgate wsgi_to_asgi vs uvicorn + a2wsgi, hello-world",
            "uvicorn/crossgate_wsgi_to_asgi/hello/w1",
            "uvicorn/a2wsgi_wsgi_to_asgi/hello/w1",
            2.0,
        ),
        _ratio_target(
            medians,
            "uvicorn + crossgate wsgi_to_asgi vs the native ASGI app on uvicorn, hello-world",
            "uvicorn/crossgate_wsgi_to_asgi/hello/w1",
            "uvicorn/asgi_app/hello/w1",
            0.5,
        ),
        _ratio_target(
            medians,
            "gunicorn gthread + crossgate asgi_to_wsgi vs a2wsgi, hello-world",
            "gunicorn/crossgate_asgi_to_wsgi/hello/w1",
            "gunicorn/a2wsgi_asgi_to_wsgi/hello/w1",
            1.4,
        ),
        _ratio_target(
            medians,
            "gunicorn gthread + crossgate asgi_to_wsgi vs the native WSGI app, hello-world",
            "gunicorn/crossgate_asgi_to_wsgi/hello/w1",
            "gunicorn/wsgi_app/hello/w1",
            0.75,
        ),
    ]
    # No workload where a peer beats crossgate (requests/s, same server, same workers).
    losses, compared = [], 0
    for panel in PANELS:
        for workload, workers in _rows(results, panel):
            ours = _rps(medians, f"{panel.ours.contender}/{workload}/w{workers}")
            for member in panel.members:
                if member.role != PEER:
                    continue
                theirs = _rps(medians, f"{member.contender}/{workload}/w{workers}")
                if theirs is None:
                    continue
                compared += 1
                if ours is None or theirs > ours:
                    ratio = f"{theirs / ours:.2f}x" if ours else "crossgate invalid"
                    losses.append(f"{panel.key} {workload} w{workers}: {member.label} {ratio}")
    targets.append(
        {
            "name": "no workload where a peer beats crossgate (requests/s)",
            "want": "none lost",
            "status": "n/a" if not compared else ("pass" if not losses else "fail"),
            "got": f"{len(losses)} of {compared} comparisons lost"
            + (": " + "; ".join(losses) if losses else ""),
        }
    )
    # Streamed workloads: what a streamed request adds to the server's peak RSS (over its
    # hello-world peak) may exceed what it adds with the native app on the same server by
    # the byte budget per connection at most; buffering bodies would cost 4 MiB each.
    growths, over = [], []
    for panel in PANELS:
        reference = _reference(panel)
        for streamed_workload in WORKLOADS.values():
            if not streamed_workload.streamed:
                continue
            for workers in results["settings"]["workers"]:
                ours = _growth(medians, panel.ours.contender, streamed_workload.name, workers)
                if ours is None:
                    continue
                native = None
                if reference is not None:
                    native = _growth(medians, reference.contender, streamed_workload.name, workers)
                conns = results["settings"]["connections_per_worker"] * workers
                label = f"{panel.key} {streamed_workload.name} w{workers}: {ours:+.0f} MiB"
                label += f" (native {native:+.0f})" if native is not None else " (no native)"
                growths.append(label)
                if ours - (native or 0.0) > conns * BUDGET / MIB:
                    over.append(label)
    targets.append(
        {
            "name": "streamed workloads with server RSS flat: crossgate's peak RSS over its "
            "hello-world peak, beyond the native app's on the same server",
            "want": "<= connections x 1 MiB budget",
            "status": "n/a" if not growths else ("pass" if not over else "fail"),
            "got": "; ".join(growths) if growths else "not measured",
        }
    )
    return targets


def _reference(panel: Panel) -> Member | None:
    """What crossgate is held against besides its peers: the ceiling, else the alternative."""
    for role in (CEILING, ALTERNATIVE):
        for member in panel.members:
            if member.role == role:
                return member
    return None


def _growth(
    medians: dict[str, dict[str, Any]], contender: str, workload: str, workers: int
) -> float | None:
    """Peak RSS (MiB) of a workload's cell over the same server's hello-world cell."""
    base = medians.get(f"{contender}/hello/w{workers}")
    cell = medians.get(f"{contender}/{workload}/w{workers}")
    if not (base and cell and base["valid"] and cell["valid"]):
        return None
    growth: float = cell["peak_rss_mib"] - base["peak_rss_mib"]
    return growth


# --- rendering ---------------------------------------------------------------------------


def _rows(results: dict[str, Any], panel: Panel) -> list[tuple[str, int]]:
    """(workload, workers) pairs measured for any member of the panel, in plan order."""
    seen = {
        (cell["workload"], cell["workers"])
        for cell in results["cells"]
        if any(cell["id"].startswith(m.contender + "/") for m in panel.members)
    }
    order = APP_WORKLOADS[panel.app]
    return sorted(
        (pair for pair in seen if pair[0] in order), key=lambda p: (p[1], order.index(p[0]))
    )


def _cell_text(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "—"
    if not summary["valid"]:
        return "invalid"
    return (
        f"{summary['rps']:,.0f}/s · {summary['p99_ms']:.1f} ms · {summary['peak_rss_mib']:.0f} MiB"
    )


def _panel_table(results: dict[str, Any], panel: Panel, medians: dict[str, Any]) -> list[str]:
    head = ["workload", "w"] + [
        m.label + (f" ({m.role})" if m.role in (CEILING, ALTERNATIVE) else "")
        for m in panel.members
    ]
    reference = _reference(panel)
    head += ["crossgate / best peer", f"crossgate / {reference.label if reference else 'native'}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    invalid: list[str] = []
    for workload, workers in _rows(results, panel):
        texts, values = [], {}
        for member in panel.members:
            key = f"{member.contender}/{workload}/w{workers}"
            summary = medians.get(key)
            text = _cell_text(summary)
            if summary is not None and summary["valid"]:
                values[member] = summary["rps"]
            elif summary is not None:
                said = (
                    f" (server log: `{summary['server_said']}`)" if "server_said" in summary else ""
                )
                invalid.append(f"`{key}`: {summary.get('reason', '')}{said}")
            texts.append(f"**{text}**" if member.role == OURS and summary else text)
        ours = values.get(panel.ours)
        peers = [(v, m.label) for m, v in values.items() if m.role == PEER]
        best = max(peers) if peers else None
        native = values.get(reference) if reference else None
        vs_peer = f"{ours / best[0]:.2f}x ({best[1]})" if ours and best else "—"
        vs_native = f"{ours / native:.2f}x" if ours and native else "—"
        label = WORKLOADS[workload].label
        lines.append("| " + " | ".join([label, str(workers), *texts, vs_peer, vs_native]) + " |")
    scaling = _scaling(results, panel, medians)
    if scaling:
        lines += ["", "Scaling from 1 to 2 workers (requests/s, w2 / w1): " + "; ".join(scaling)]
    if invalid:
        lines += ["", "Invalid cells (no speed published): " + "; ".join(invalid)]
    return lines


def _scaling(results: dict[str, Any], panel: Panel, medians: dict[str, Any]) -> list[str]:
    """``workload: member ratio, ...`` for each workload measured with 1 and 2 workers."""
    out = []
    rows = set(_rows(results, panel))
    for workload in APP_WORKLOADS[panel.app]:
        if (workload, 1) not in rows or (workload, 2) not in rows:
            continue
        ratios = []
        for member in panel.members:
            one = _rps(medians, f"{member.contender}/{workload}/w1")
            two = _rps(medians, f"{member.contender}/{workload}/w2")
            if one and two:
                ratios.append(f"{member.label} {two / one:.2f}x")
        if ratios:
            out.append(f"{WORKLOADS[workload].label}: " + ", ".join(ratios))
    return out


def noise(results: dict[str, Any]) -> float | None:
    """Median over valid cells of (max - min) / median of their rounds' requests/s."""
    spreads = []
    for cell in results["cells"]:
        values = [r["rps"] for r in cell["rounds"] if r.get("valid")]
        if len(values) > 1 and len(values) == len(cell["rounds"]):
            spreads.append((max(values) - min(values)) / statistics.median(values))
    return statistics.median(spreads) if spreads else None


def render_markdown(results: dict[str, Any], chart_name: str = "benchmarks.png") -> str:
    """``docs/benchmarks.md`` from the results document."""
    medians = _medians(results)
    targets = compute_targets(results)
    settings, mach, cond = results["settings"], results["machine"], results["conditions"]
    out = [
        "# Benchmarks on real servers",
        "",
        "<!-- Generated by `scripts/bench servers --write-docs` from "
        "benchmarks/results/servers.json; edit benchmarks/servers.py, not this file. -->",
        "",
        "crossgate and its peers behind real servers on 127.0.0.1, loaded by `wrk`, one "
        "server at a time. Each cell is the median of "
        f"{settings['rounds']} round(s) of {settings['duration_s']} s "
        f"(`wrk -t1 -c{settings['connections_per_worker']}` per server worker, "
        f"{settings['warmup_s']} s of warm-up before each), rounds alternating between "
        "servers. Figures: requests/s · p99 latency · peak RSS of the server's processes "
        "(summed over the server and its workers, sampled every 50 ms from /proc). "
        "Ratios: crossgate's requests/s over the other's (above 1.00x crossgate is faster).",
        "",
        f"![requests/s per workload and adapter, 1 worker]({chart_name})",
        "",
        "## Targets",
        "",
        "| target | wanted | measured | |",
        "|---|---|---|---|",
    ]
    marks = {"pass": "pass", "fail": "**FAIL**", "n/a": "n/a"}
    out += [f"| {t['name']} | {t['want']} | {t['got']} | {marks[t['status']]} |" for t in targets]
    out += [
        "",
        "## Conditions",
        "",
        f"- Machine: {mach['cpu'] or 'unknown CPU'}, {mach['cpus']} CPUs, "
        f"{mach['memory_gib']} GiB; {mach['system']}; {mach['python']}; {mach['wrk']}.",
        "- The server and wrk share the machine's cores and nothing is pinned: wrk runs one "
        "thread, the server the rest. On a 2-core machine a server with 2 workers competes "
        "with wrk for the same cores, so the 2-worker rows show the scaling through the "
        "server's own process manager, not a second free core.",
        f"- Load average (1 min) at the start and the end of the run: "
        f"{_load(cond.get('loadavg_start'))} and {_load(cond.get('loadavg_end'))}; "
        f"the run took {cond.get('elapsed_s', '?')} s.",
    ]
    floors = [r["floor_us"] for c in results["cells"] for r in c["rounds"] if "floor_us" in r]
    if floors:
        out.append(
            "- Thread wake-up floor (a two-thread `threading.Lock` ping-pong, measured before "
            f"each cell): median {statistics.median(floors):.0f} µs per round trip, from "
            f"{min(floors):.0f} to {max(floors):.0f} µs. Every adapter hands each request "
            "between threads, so its figures move with this floor."
        )
    spread = noise(results)
    if spread is not None:
        out.append(
            f"- Noise: the rounds of one cell differ by {spread:.0%} (the median over cells of "
            "(max - min) / median requests/s): ratios nearer 1.00x than that are a draw."
        )
    if cond.get("note"):
        out.append(f"- {cond['note']}")
    out += [
        f"- Servers: uvicorn with uvloop and httptools; gunicorn `-k gthread "
        f"--threads {settings['server_threads']}`; waitress `--threads "
        f"{settings['server_threads']}` (one process: no 2-worker row); granian with its "
        "defaults (ASGI interface on uvloop). Adapters with their defaults.",
        "- granian's own WSGI interface serves the WSGI app without any adapter: a user who "
        "only needs speed on granian would pick it instead of an adapter; it is there for "
        "that comparison, not as a peer.",
        "- The real apps render the same 20-row template: Flask (Jinja) and Django behind "
        "the WSGI adapters; FastAPI (Jinja) and Django's ASGI handler behind the ASGI ones. "
        "Flask has no ASGI form and FastAPI no WSGI form, so those rows have no ceiling.",
        "- hypercorn's WSGI wrapper answers 400 to request bodies over 64 KiB by default "
        "(it buffers the whole body); it is given `max_body_size=2 MiB` so that it can take "
        "the 1 MiB upload.",
        "- A cell is invalid (no speed published) when the check of one response's body "
        "failed, or wrk saw a socket error, a timeout or a status >= 400 in any round.",
        "",
    ]
    for panel in PANELS:
        rows = _rows(results, panel)
        if not rows:
            continue
        out += [f"## {panel.title}", ""]
        out += _panel_table(results, panel, medians)
        out.append("")
    out += [
        "## Versions",
        "",
        ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v) + ".",
        "",
        "## Reproduce",
        "",
        "```console",
        "$ scripts/bench servers --write-docs   # the full run (about 20 min): rewrites "
        "benchmarks/results/servers.json, this page and its chart",
        "$ scripts/bench servers --quick        # about 2 min: 1 round of 1 s, hello-world "
        "and the download, 1 worker; prints the tables",
        "$ scripts/bench servers --only 'uvicorn/.*/hello/w1'   # a subset (regex on cell ids)",
        "$ .venv/bin/python -m benchmarks.servers --from-json   # re-render this page and "
        "the chart from the JSON",
        "```",
        "",
        "`scripts/bench` installs `wrk` (Debian's package) when it is missing. Cell ids are "
        "`server/app/workload/wN`; the apps are in `benchmarks/server_apps.py`, the wrk "
        "script in `benchmarks/wrk/report.lua`, every round's raw figures in "
        "`benchmarks/results/servers.json`.",
        "",
    ]
    return "\n".join(out)


def _load(values: Any) -> str:
    return f"{values[0]:.2f}" if values else "?"


#: Colours: crossgate stands out, the peers are muted.
_COLOURS = {"crossgate": "#d62728"}
_PEER_COLOURS = ["#1f77b4", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd"]


def render_chart(results: dict[str, Any], path: Path) -> None:
    """Grouped bars, one panel per comparison: requests/s per workload per adapter
    (1 worker), the ceiling marked as a black line and the alternative as a dashed one."""
    # Imported here: running the benchmark needs no matplotlib, only rendering does.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    medians = _medians(results)
    panels = [p for p in PANELS if any(w == 1 for _, w in _rows(results, p))]
    cols = 2 if len(panels) > 1 else 1
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 4.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        workloads = [w for w, n in _rows(results, panel) if n == 1]
        bars = [m for m in panel.members if m.role in (OURS, PEER)]
        lines = [m for m in panel.members if m.role in (CEILING, ALTERNATIVE)]
        width = 0.8 / len(bars)
        peer_colours = iter(_PEER_COLOURS)
        top = 1.0
        for i, member in enumerate(bars):
            xs, heights = [], []
            for j, workload in enumerate(workloads):
                key = f"{member.contender}/{workload}/w1"
                rps = _rps(medians, key)
                x = j + (i - (len(bars) - 1) / 2) * width
                xs.append(x)
                heights.append(rps if rps is not None else 0.0)
                top = max(top, rps or 0.0)
                if rps is None and key in medians:
                    # Measured but invalid (failing responses): say so where the bar would be.
                    ax.text(
                        x,
                        0.01,
                        "invalid",
                        transform=ax.get_xaxis_transform(),
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
            colour = _COLOURS.get(member.label) or next(peer_colours)
            ax.bar(xs, heights, width, label=member.label, color=colour)
        for member in lines:
            style = "-" if member.role == CEILING else "--"
            labelled = False
            for j, workload in enumerate(workloads):
                rps = _rps(medians, f"{member.contender}/{workload}/w1")
                if rps is None:
                    continue
                top = max(top, rps)
                ax.hlines(
                    rps,
                    j - 0.45,
                    j + 0.45,
                    colors="black",
                    linestyles=style,
                    linewidth=1.6,
                    label=None if labelled else f"{member.label} ({member.role})",
                )
                labelled = True
        ax.set_yscale("log")
        ax.set_ylim(top=top * 6)  # headroom for the legend above the tallest bar
        ax.set_xticks(range(len(workloads)), [WORKLOADS[w].label for w in workloads], fontsize=8)
        ax.set_ylabel("requests/s (log scale)")
        ax.set_title(panel.title, fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper right", ncols=2)
    fig.suptitle(
        "crossgate beside its peers on real servers (1 worker; higher is better)", fontsize=11
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def render_docs(results: dict[str, Any], md_path: Path = DOC, png_path: Path = CHART) -> None:
    """Write the page and its chart, both from the results document alone."""
    render_chart(results, png_path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(render_markdown(results, chart_name=png_path.name))


def write_results(results: dict[str, Any], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")


# --- command line ------------------------------------------------------------------------


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part for part in text.split(",") if part)
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown workload {', '.join(unknown)}")
    return names


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of this benchmark (``--quick`` aside): ``python -m benchmarks`` shares them."""
    group = parser.add_argument_group("real-server benchmark (servers)")
    group.add_argument("--only", metavar="REGEX", help="cells whose id matches (re.search)")
    group.add_argument("--workers", type=_ints, help="server worker counts (default 1,2)")
    group.add_argument("--rounds", type=int, help="rounds per cell (default 3)")
    group.add_argument("--duration", type=int, help="whole seconds of wrk per cell (default 2)")
    group.add_argument("--workloads", type=_names, help=f"any of {','.join(WORKLOADS)}")
    group.add_argument(
        "--scaling-workloads",
        type=_names,
        help=f"workloads run with more than 1 worker too (default {','.join(SCALING_WORKLOADS)})",
    )
    group.add_argument("--note", help="a sentence on the run's conditions, for the page")
    group.add_argument(
        "--write-docs",
        action="store_true",
        help="write benchmarks/results/servers.json, docs/benchmarks.md and docs/benchmarks.png",
    )
    group.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    group.add_argument(
        "--from-json",
        nargs="?",
        const=str(RESULTS),
        metavar="PATH",
        help="run nothing: re-render the docs from this JSON (default: the committed one)",
    )


#: The destinations of add_options, for callers that check whether any was given.
OPTION_NAMES = (
    "only",
    "workers",
    "rounds",
    "duration",
    "workloads",
    "scaling_workloads",
    "note",
    "write_docs",
    "json",
    "from_json",
)


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Do what the parsed options of :func:`add_options` (and ``--quick``) ask."""
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        render_docs(results)
        print(f"wrote {DOC.relative_to(REPO)} and {CHART.relative_to(REPO)} from {args.from_json}")
        return
    base = QUICK if args.quick else Settings()

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    settings = Settings(
        rounds=pick(args.rounds, base.rounds),
        duration=pick(args.duration, base.duration),
        warmup=base.warmup,
        workers=pick(args.workers, base.workers),
        workloads=pick(args.workloads, base.workloads),
        scaling_workloads=pick(args.scaling_workloads, base.scaling_workloads),
        only=args.only,
        quick=args.quick,
        note=args.note or "",
    )
    cells = plan(settings)
    if not cells:
        parser.error("no real-server cell matches the selection")
    print(
        f"## servers: {len(cells)} cells x {settings.rounds} round(s), "
        f"about {estimate_seconds(cells, settings) / 60:.0f} min",
        flush=True,
    )
    results = run(settings, cells, log=lambda line: print(line, flush=True))
    print()
    print(render_markdown(results))
    if args.json:
        write_results(results, args.json)
    if args.write_docs:
        write_results(results)
        render_docs(results)
        print(
            f"wrote {RESULTS.relative_to(REPO)}, {DOC.relative_to(REPO)}, {CHART.relative_to(REPO)}"
        )
    failed = [t for t in results["targets"] if t["status"] == "fail"]
    if failed:
        print(f"{len(failed)} target(s) missed: " + "; ".join(t["name"] for t in failed))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.servers",
        description="crossgate and its peers on real servers, loaded by wrk",
    )
    parser.add_argument(
        "--quick", action="store_true", help="about 2 min: 1 round of 1 s, hello+download, w1"
    )
    add_options(parser)
    run_from_args(parser.parse_args(argv), parser)


if __name__ == "__main__":
    main()
