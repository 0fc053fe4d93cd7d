"""Side-by-side benchmark harness: crossgate and its peers in the same process and run.

Rounds alternate between the contenders (A B C A B C ...) so that a noisy neighbour on a
shared machine slows all of them alike; each contender's figure is the median of its
rounds. The ratio column is ``peer time / crossgate time``: above 1.0, crossgate is faster.
Peak memory is measured in a separate, untimed pass under :mod:`tracemalloc`.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Case", "Row", "bench", "close_loops", "print_table", "run_async"]

#: A contender: a callable that performs ``n`` operations (sync) and returns nothing.
Body = Callable[[int], None]


@dataclass
class Case:
    """One contender: ``run(n)`` performs the workload ``n`` times."""

    name: str
    run: Body
    #: Marks the crossgate contender that ratios are computed against.
    ours: bool = False


@dataclass
class Row:
    """Medians for one contender of one workload."""

    workload: str
    name: str
    per_op_us: float
    rounds_us: list[float] = field(repr=False)
    peak_kib: float | None = None
    ratio: float | None = None  # peer / crossgate (per-op time): > 1 means crossgate wins


def _time_round(case: Case, n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    case.run(n)
    return (time.perf_counter() - start) / n * 1e6


def _peak(case: Case, n: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        case.run(n)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1024


def bench(
    workload: str,
    cases: list[Case],
    *,
    number: int,
    rounds: int = 7,
    warmup: int = 1,
    memory_number: int | None = 1,
) -> list[Row]:
    """Time every case, alternating rounds; return one row per case with ratios."""
    for case in cases:
        for _ in range(warmup):
            case.run(max(1, number // 10))
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            samples[case.name].append(_time_round(case, number))
    rows = [
        Row(workload, case.name, statistics.median(samples[case.name]), samples[case.name])
        for case in cases
    ]
    if memory_number:
        for case, row in zip(cases, rows, strict=True):
            row.peak_kib = _peak(case, memory_number)
    ours = [row for case, row in zip(cases, rows, strict=True) if case.ours]
    if ours:
        base = ours[0].per_op_us
        for row in rows:
            row.ratio = row.per_op_us / base if base else None
    return rows


def run_async(
    make_loop: Callable[[], asyncio.AbstractEventLoop], fn: Callable[[int], Awaitable[None]]
) -> Body:
    """A sync body that runs ``await fn(n)`` on a loop kept for the whole benchmark."""
    loop = make_loop()
    _loops.append(loop)

    def body(n: int) -> None:
        loop.run_until_complete(fn(n))

    return body


#: Every loop made by run_async, so that close_loops() can close them.
_loops: list[asyncio.AbstractEventLoop] = []


def close_loops() -> None:
    """Close the loops :func:`run_async` made (call once a benchmark's cases are done)."""
    while _loops:
        loop = _loops.pop()
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()


def print_table(rows: list[Row], *, title: str | None = None) -> None:
    """Print rows as a Markdown table (crossgate first in each workload)."""
    if title:
        print(f"\n### {title}\n")
    print(
        "| workload | implementation | per op (µs, median) | peer / crossgate | peak traced KiB |"
    )
    print("|---|---|---:|---:|---:|")
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}x"
        peak = "—" if row.peak_kib is None else f"{row.peak_kib:,.0f}"
        print(f"| {row.workload} | {row.name} | {row.per_op_us:,.1f} | {ratio} | {peak} |")
