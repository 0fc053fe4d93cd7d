"""The run: every round of every cell, one server at a time, into the results document.

Rounds alternate between the servers (the order rotates each round) so that a noisy
neighbour slows all of them alike; a cell's figures are the medians of its rounds. The
document (``benchmarks/results/servers.json`` with ``--write-docs``) holds every round's
figures, the settings, the machine and the versions: :mod:`.render` needs nothing else.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.integration.support import REPO

from benchmarks.servers.matrix import MIB, THREADS, Cell, Contender, Settings, plan, server_argv
from benchmarks.servers.measure import measure, summarize, wrk_path
from benchmarks.servers.processes import running_server
from benchmarks.servers.targets import compute_targets

__all__ = [
    "RESULTS",
    "SCHEMA",
    "cell_record",
    "estimate_seconds",
    "machine",
    "run",
    "write_results",
]

RESULTS = REPO / "benchmarks" / "results" / "servers.json"
#: The version of the results document's shape.
SCHEMA = 1


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


def write_results(results: dict[str, Any], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
