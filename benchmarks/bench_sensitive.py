"""Thread-sensitive calls from async code: crossgate against asgiref, same run.

A "request" is what a server's task does for one HTTP request of a Django-style app: open
a thread-sensitive context, make its calls, close it. crossgate's is
``async with crossgate.thread_sensitive(): await sync_to_async(fn)()`` (a lane borrowed
from the pool); asgiref's is ``async with ThreadSensitiveContext(): await
sync_to_async(fn)()`` (what Django's ``ASGIHandler`` does per request: an executor and its
thread per context). The function does nothing, so what is measured is the bridge.

Workloads, each on asyncio's loop and on uvloop, 32 requests in flight at all times:

* one call per request;
* 10 calls per request, one after the other (a view making 10 ORM queries);

and, beside them, one call at a time outside any context (crossgate's process-wide lane,
asgiref's single thread executor).

Per op is per request (per call for the last workload); the ratio is asgiref's time over
crossgate's. Run: ``.venv/bin/python -m benchmarks.bench_sensitive [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvloop
from asgiref.sync import ThreadSensitiveContext
from asgiref.sync import sync_to_async as asgiref_sync_to_async

from benchmarks.harness import Case, Row, bench, close_loops, print_table, run_async
from crossgate import sync_to_async, thread_sensitive

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
CONCURRENCY = 32
TARGET = 2.0  # asgiref's time per request over crossgate's


def noop() -> None:
    return None


def requests(
    context: Callable[[], AbstractAsyncContextManager[Any]],
    call: Callable[[], Awaitable[None]],
    calls: int,
) -> Callable[[int], Awaitable[None]]:
    """``n`` requests of ``calls`` calls each, CONCURRENCY of them in flight at all times."""

    async def request() -> None:
        async with context():
            for _ in range(calls):
                await call()

    async def worker(count: int) -> None:
        for _ in range(count):
            await request()

    async def run(n: int) -> None:
        shares = [n // CONCURRENCY + (i < n % CONCURRENCY) for i in range(CONCURRENCY)]
        await asyncio.gather(*(worker(share) for share in shares if share))

    return run


def request_cases(loop_name: str, calls: int) -> list[Case]:
    make_loop = LOOPS[loop_name]
    ours = requests(thread_sensitive, sync_to_async(noop), calls)
    theirs = requests(ThreadSensitiveContext, asgiref_sync_to_async(noop), calls)
    return [
        Case("crossgate thread_sensitive()", run_async(make_loop, ours), ours=True),
        Case("asgiref ThreadSensitiveContext()", run_async(make_loop, theirs)),
    ]


def outside_cases(loop_name: str) -> list[Case]:
    make_loop = LOOPS[loop_name]
    ours_fn = sync_to_async(noop)
    theirs_fn = asgiref_sync_to_async(noop)

    async def ours(n: int) -> None:
        for _ in range(n):
            await ours_fn()

    async def theirs(n: int) -> None:
        for _ in range(n):
            await theirs_fn()

    return [
        Case("crossgate sync_to_async (process-wide lane)", run_async(make_loop, ours), ours=True),
        Case("asgiref sync_to_async (single thread executor)", run_async(make_loop, theirs)),
    ]


def _ratio(rows: list[Row]) -> float:
    ratio = next(row.ratio for row in rows if not row.name.startswith("crossgate"))
    assert ratio is not None
    return ratio


def main(argv: list[str] | None = None) -> None:
    """Run every workload and print the tables, then one line per target."""
    try:
        _main(argv)
    finally:
        close_loops()


def _main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sensitive")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    args = parser.parse_args(argv)
    number, rounds = (64, 3) if args.quick else (1600, 7)

    print("\n## thread-sensitive calls from async code, crossgate vs asgiref\n")
    print(f"{CONCURRENCY} requests in flight; per op = one request (context + its calls).")
    targets: list[str] = []
    for loop_name in LOOPS:
        for calls in (1, 10):
            workload = f"{calls} call{'s' if calls > 1 else ''} per request [{loop_name}]"
            rows = bench(
                workload,
                request_cases(loop_name, calls),
                number=number if calls == 1 else max(CONCURRENCY, number // 4),
                rounds=rounds,
                memory_number=CONCURRENCY,
            )
            print_table(rows, title=workload)
            ratio = _ratio(rows)
            verdict = "met" if ratio >= TARGET else "NOT met"
            targets.append(
                f"- {workload}: {ratio:.2f}x asgiref's throughput "
                f"(target >= {TARGET:g}) — **{verdict}**"
            )
        rows = bench(
            f"one call at a time, outside any context [{loop_name}]",
            outside_cases(loop_name),
            number=number,
            rounds=rounds,
            memory_number=None,
        )
        print_table(rows, title=f"outside any context, on {loop_name}")

    print("\n### targets\n")
    for line in targets:
        print(line)


if __name__ == "__main__":
    main()
