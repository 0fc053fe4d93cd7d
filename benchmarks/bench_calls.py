"""Per-call cost of crossgate's sync_to_async / async_to_sync against their peers, same run.

Workloads (the function called does nothing, so what is measured is the bridge itself):

* ``sync_to_async``, on asyncio's loop and on uvloop: crossgate's, asgiref's with
  ``thread_sensitive=False``, and the hand-written baseline
  ``await loop.run_in_executor(executor, contextvars.copy_context().run, fn)``;
* ``async_to_sync`` from plain sync code: crossgate's (the portal loop) and asgiref's;
* ``async_to_sync`` from inside ``sync_to_async`` (each library inside its own), on
  asyncio's loop and on uvloop.

Beside them, the floor of this machine: a two-thread ``threading.Lock`` ping-pong, the
cheapest possible round trip between two threads, which every cross-thread call pays.

Run: ``.venv/bin/python -m benchmarks.bench_calls [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import uvloop
from asgiref.sync import async_to_sync as asgiref_async_to_sync
from asgiref.sync import sync_to_async as asgiref_sync_to_async

from benchmarks.harness import Case, Row, bench, close_loops, print_table, run_async
from crossgate.adapters.calls import async_to_sync, sync_to_async

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def noop() -> None:
    return None


async def anoop() -> None:
    return None


# ---------------------------------------------------------------------------- the floor


FLOOR = "floor: threading.Lock ping-pong (not a peer)"


def lock_ping_pong(n: int) -> None:
    """``n`` round trips between two threads handing two locks back and forth."""
    ping_pong_us(n)


def ping_pong_us(n: int) -> float:
    """Mean cost of one round trip between two threads handing over two locks."""
    ping, pong = threading.Lock(), threading.Lock()
    ping.acquire()
    pong.acquire()

    def echo() -> None:
        for _ in range(n):
            ping.acquire()
            pong.release()

    thread = threading.Thread(target=echo)
    thread.start()
    start = time.perf_counter()
    for _ in range(n):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - start
    thread.join()
    return elapsed / n * 1e6


# ---------------------------------------------------------------------------- contenders


def sync_to_async_cases(loop_name: str, executor: ThreadPoolExecutor) -> list[Case]:
    make_loop = LOOPS[loop_name]
    # Like for like: any pool thread on both sides (bench_sensitive compares the
    # thread-sensitive modes).
    ours_fn = sync_to_async(noop, thread_sensitive=False)
    theirs_fn = asgiref_sync_to_async(noop, thread_sensitive=False)

    async def ours(n: int) -> None:
        for _ in range(n):
            await ours_fn()

    async def theirs(n: int) -> None:
        for _ in range(n):
            await theirs_fn()

    async def baseline(n: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(n):
            ctx = contextvars.copy_context()
            await loop.run_in_executor(executor, ctx.run, noop)

    return [
        Case(
            "crossgate sync_to_async(thread_sensitive=False)", run_async(make_loop, ours), ours=True
        ),
        Case("run_in_executor + context copy", run_async(make_loop, baseline)),
        Case("asgiref sync_to_async(thread_sensitive=False)", run_async(make_loop, theirs)),
    ]


def async_to_sync_plain_cases() -> list[Case]:
    ours_fn = async_to_sync(anoop)
    theirs_fn = asgiref_async_to_sync(anoop)

    def ours(n: int) -> None:
        for _ in range(n):
            ours_fn()

    def theirs(n: int) -> None:
        for _ in range(n):
            theirs_fn()

    return [
        Case("crossgate async_to_sync", ours, ours=True),
        Case("asgiref async_to_sync", theirs),
        Case(FLOOR, lock_ping_pong),
    ]


def async_to_sync_nested_cases(loop_name: str) -> list[Case]:
    make_loop = LOOPS[loop_name]
    ours_inner = async_to_sync(anoop)
    theirs_inner = asgiref_async_to_sync(anoop)

    def ours_sync(n: int) -> None:
        for _ in range(n):
            ours_inner()

    def theirs_sync(n: int) -> None:
        for _ in range(n):
            theirs_inner()

    ours_outer = sync_to_async(ours_sync, thread_sensitive=False)
    theirs_outer = asgiref_sync_to_async(theirs_sync, thread_sensitive=False)

    async def ours(n: int) -> None:
        await ours_outer(n)

    async def theirs(n: int) -> None:
        await theirs_outer(n)

    return [
        Case("crossgate async_to_sync in sync_to_async", run_async(make_loop, ours), ours=True),
        Case("asgiref async_to_sync in sync_to_async", run_async(make_loop, theirs)),
    ]


# ---------------------------------------------------------------------------- report


def _ratio(rows: list[Row], name_part: str) -> float:
    for row in rows:
        if name_part in row.name and row.ratio is not None:
            return row.ratio
    raise LookupError(name_part)


def _check(label: str, value: float, target: float, *, faster: bool) -> str:
    verdict = "met" if value >= target else "NOT met"
    how = f"{value:.2f}x faster" if faster else f"ratio {value:.2f}"
    return f"- {label}: {how} (target >= {target:g}) — **{verdict}**"


def main(argv: list[str] | None = None) -> None:
    """Run every workload and print the tables, then one line per target."""
    try:
        _main(argv)
    finally:
        close_loops()


def _main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_calls")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    args = parser.parse_args(argv)
    number, rounds = (50, 3) if args.quick else (3000, 9)
    slow_number = max(10, number // 10)  # asgiref's async_to_sync costs ~0.5 ms a call

    samples = [ping_pong_us(number) for _ in range(rounds)]
    floor = statistics.median(samples)
    print("\n## sync_to_async / async_to_sync, per call (µs)\n")
    print(
        f"Machine floor: two-thread `threading.Lock` ping-pong = {floor:.1f} µs per round trip "
        f"(median of {rounds}; min {min(samples):.1f}, max {max(samples):.1f})."
    )

    targets: list[str] = []
    executor = ThreadPoolExecutor(max_workers=40)
    try:
        for loop_name in LOOPS:
            rows = bench(
                f"sync_to_async [{loop_name}]",
                sync_to_async_cases(loop_name, executor),
                number=number,
                rounds=rounds,
                memory_number=number // 10,
            )
            print_table(rows, title=f"sync_to_async on {loop_name}")
            targets.append(
                _check(
                    f"sync_to_async vs run_in_executor + context copy [{loop_name}]",
                    _ratio(rows, "run_in_executor"),
                    0.9,
                    faster=False,
                )
            )
            targets.append(
                _check(
                    f"sync_to_async vs asgiref [{loop_name}]",
                    _ratio(rows, "asgiref"),
                    1.5,
                    faster=True,
                )
            )
    finally:
        executor.shutdown()

    rows = bench(
        "async_to_sync from sync code",
        async_to_sync_plain_cases(),
        number=slow_number,
        rounds=rounds,
        memory_number=slow_number // 2,
    )
    print_table(rows, title="async_to_sync from plain sync code")
    plain_ratio = _ratio(rows, "asgiref")
    targets.append(
        _check("async_to_sync from plain sync code vs asgiref", plain_ratio, 20, faster=True)
    )
    ours_us = next(row.per_op_us for row in rows if row.ratio == 1.0)
    floor_us = next(row.per_op_us for row in rows if row.name == FLOOR)
    targets.append(
        f"  (crossgate's call: {ours_us:.1f} µs = {ours_us / floor_us:.2f}x the lock ping-pong "
        f"floor of {floor_us:.1f} µs measured in the same rounds)"
    )

    for loop_name in LOOPS:
        rows = bench(
            f"async_to_sync in sync_to_async [{loop_name}]",
            async_to_sync_nested_cases(loop_name),
            number=number,
            rounds=rounds,
            memory_number=number // 10,
        )
        print_table(rows, title=f"async_to_sync from inside sync_to_async, on {loop_name}")

    print("\n### targets\n")
    for line in targets:
        print(line)


if __name__ == "__main__":
    main()
