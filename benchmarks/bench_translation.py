"""How the cost of translating one request grows with its size: crossgate's
``build_environ`` (scope -> environ) and ``build_scope`` (environ -> scope) against the
peers' translation functions, from 1 to 100,000 request headers.

Workloads (one request each, built once, translated ``number`` times per round):

* ``repeated``: n copies of one 20-byte header plus n ``Cookie: a=1`` lines, the header
  flood a hostile client sends (uvicorn accepts a request of 50,000 of them);
* ``distinct``: n different header names (``x-h0``, ``x-h1``...), which defeat the
  header-name caches.

The table gives the median per request and per header: a linear translation keeps the
per-header cost flat as n grows. A peer whose translation would take more than
``--budget`` seconds at the next size is not run at it (quadratic joins: marked "skipped").

Run: ``.venv/bin/python -m benchmarks.bench_translation [--quick]``
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from a2wsgi.asgi import build_scope as a2wsgi_build_scope
from a2wsgi.wsgi import build_environ as a2wsgi_build_environ
from uvicorn.middleware.wsgi import build_environ as uvicorn_build_environ

from crossgate.adapters.environ import build_environ, build_scope

SIZES = [1, 10, 100, 1_000, 10_000, 100_000]
QUICK_SIZES = [1, 100, 10_000]


def scope_with(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


def repeated(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"x-flood", b"0123456789abcdefghij")] * n + [(b"cookie", b"a=1")] * n


def distinct(n: int) -> list[tuple[bytes, bytes]]:
    return [(f"x-h{i}".encode(), b"v") for i in range(n)]


def environ_of(scope: dict[str, Any]) -> dict[str, Any]:
    environ = build_environ(scope)
    environ.update({"wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http"})
    return environ


def contenders() -> dict[str, dict[str, Callable[[dict[str, Any]], object]]]:
    """direction -> implementation -> translate(scope or environ)."""
    return {
        "build_environ": {
            "crossgate": build_environ,
            "a2wsgi": lambda scope: a2wsgi_build_environ(scope, None),  # type: ignore[arg-type]
            "uvicorn": lambda scope: uvicorn_build_environ(
                scope,  # type: ignore[arg-type]
                {"type": "http.request", "body": b"", "more_body": False},
                io.BytesIO(),
            ),
        },
        "build_scope": {
            "crossgate": build_scope,
            "a2wsgi": a2wsgi_build_scope,
        },
    }


def time_one(translate: Callable[[Any], object], subject: Any, budget: float) -> float:
    """Median seconds of one translation over a few rounds within ``budget`` seconds."""
    samples: list[float] = []
    spent = 0.0
    while len(samples) < 5 and (spent < budget or not samples):
        start = time.perf_counter()
        translate(subject)
        took = time.perf_counter() - start
        samples.append(took)
        spent += took
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_translation")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--budget", type=float, default=2.0, help="seconds a peer may take per size"
    )
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    print("\n### Translation cost by request size (one request, median of up to 5 runs)\n")
    print(
        "| direction | headers | workload | implementation | per request (µs) | per header (µs) |"
    )
    print("|---|---:|---|---|---:|---:|")
    for direction, implementations in contenders().items():
        for workload, make in (("repeated", repeated), ("distinct", distinct)):
            skipped: set[str] = set()
            last: dict[str, tuple[int, float]] = {}
            for n in sizes:
                scope = scope_with(make(n))
                subject = scope if direction == "build_environ" else environ_of(scope)
                count = 2 * n if workload == "repeated" else n
                for name, translate in implementations.items():
                    if name in skipped:
                        print(f"| {direction} | {count:,} | {workload} | {name} | skipped | |")
                        continue
                    seconds = time_one(translate, subject, args.budget)
                    print(
                        f"| {direction} | {count:,} | {workload} | {name} | "
                        f"{seconds * 1e6:,.1f} | {seconds * 1e6 / count:,.3f} |"
                    )
                    previous = last.get(name)
                    last[name] = (n, seconds)
                    if previous is not None and n != sizes[-1]:
                        # Projected from how this size grew on the last one: skip a peer
                        # whose next size would blow the budget (a quadratic one does).
                        growth = seconds / previous[1] if previous[1] else 1.0
                        if seconds * growth > args.budget:
                            skipped.add(name)


if __name__ == "__main__":
    main()
