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
crossgate's.

Then a real server: a Django async view making 4 ORM queries (SQLite) on uvicorn, loaded
by ``wrk -c32``, rounds alternating between the servers: asgiref's mode (Django's
``ASGIHandler``, queries through asgiref's ``sync_to_async``: an executor and its thread
per request), crossgate's calls inside Django's handler (they join its context), and
crossgate's mode (the handler mounted in ``crossgate.dispatch``: a pooled lane per
request, which Django's own thread-sensitive calls join too). The project is
tests/integration/apps_orm.

Run: ``.venv/bin/python -m benchmarks.bench_sensitive [--quick] [--no-server]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import uvloop
from asgiref.sync import ThreadSensitiveContext
from asgiref.sync import sync_to_async as asgiref_sync_to_async

from benchmarks.harness import Case, Row, bench, close_loops, print_table, run_async
from benchmarks.servers import run_wrk
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


# ---------------------------------------------------------------------------- real server

REPO = Path(__file__).resolve().parents[1]
ORM_APP = "tests.integration.apps_orm"
#: (label, uvicorn target, path): asgiref's mode first, crossgate's mode last.
SERVERS = [
    ("asgiref: Django ASGIHandler, asgiref sync_to_async", "asgi:application", "/orm-asgiref"),
    ("crossgate calls in Django's ASGIHandler", "asgi:application", "/orm"),
    ("crossgate: dispatch(ASGIHandler), crossgate sync_to_async", "asgi:dispatched", "/orm"),
]


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _uvicorn(target: str, env: dict[str, str]) -> Iterator[int]:
    """uvicorn serving ``target`` on 127.0.0.1 until the block ends (stopped by its PID)."""
    from tests.integration.support import wait_for_port  # noqa: PLC0415

    port = _free_port()
    argv = [sys.executable, "-m", "uvicorn", f"{ORM_APP}.{target}", "--port", str(port)]
    argv += ["--host", "127.0.0.1", "--lifespan", "off", "--log-level", "warning"]
    argv += ["--no-access-log"]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def django_on_uvicorn(seconds: int, rounds: int) -> float:
    """Requests/s of each server (medians of alternating rounds); returns crossgate's mode
    over asgiref's."""
    from tests.integration.apps_orm import ENV, SETTINGS  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            ENV["engine"]: "sqlite",
            ENV["name"]: str(Path(tmp) / "bench.sqlite3"),
        }
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--run-syncdb", "-v", "0"],
            cwd=REPO,
            env=env,
            check=True,
            timeout=120,
        )
        with contextlib.ExitStack() as stack:
            ports = [stack.enter_context(_uvicorn(target, env)) for _, target, _ in SERVERS]
            urls = [
                f"http://127.0.0.1:{port}{path}?calls=4"
                for port, (_, _, path) in zip(ports, SERVERS, strict=True)
            ]
            for url in urls:  # warm-up, and a check that every server answers
                _requests_per_s(url, 1)
            samples: list[list[float]] = [[] for _ in SERVERS]
            for _ in range(rounds):
                for index, url in enumerate(urls):
                    samples[index].append(_requests_per_s(url, seconds))
    medians = [statistics.median(values) for values in samples]
    print("\n### Django async view, 4 ORM queries (SQLite), uvicorn, wrk -c32\n")
    print("| server | requests/s (median) | vs asgiref's mode |")
    print("|---|---:|---:|")
    for (label, _, _), value in zip(SERVERS, medians, strict=True):
        print(f"| {label} | {value:,.0f} | {value / medians[0]:.2f}x |")
    return medians[-1] / medians[0]


def _requests_per_s(url: str, seconds: int) -> float:
    report = run_wrk(url, seconds=seconds, connections=CONCURRENCY, upload=0)
    errors = report["errors"]
    if any(errors.values()):
        raise RuntimeError(f"{url}: wrk saw errors {errors}: no figure is published")
    rate: float = report["requests"] / (report["duration_us"] / 1e6)
    return rate


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
    parser.add_argument("--no-server", action="store_true", help="skip the uvicorn part")
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

    if not args.no_server:
        seconds, server_rounds = (1, 1) if args.quick else (4, 5)
        ratio = django_on_uvicorn(seconds, server_rounds)
        verdict = "met" if ratio >= TARGET else "NOT met"
        targets.append(
            f"- Django async view on uvicorn, crossgate's mode vs asgiref's: {ratio:.2f}x "
            f"(target >= {TARGET:g}) — **{verdict}**"
        )

    print("\n### targets\n")
    for line in targets:
        print(line)


if __name__ == "__main__":
    main()
