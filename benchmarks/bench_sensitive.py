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

Then real servers: a Django async view (benchmarks/django_orm) making ORM queries on
uvicorn, loaded by ``wrk -c32``, one uvicorn per variant, the same project and view; only
the bridge differs:

* asgiref's mode: Django's ``ASGIHandler``, queries through asgiref's ``sync_to_async``
  (an executor and its thread per request);
* crossgate's calls inside Django's handler (they join its context);
* crossgate's mode: the handler mounted in ``crossgate.dispatch`` (a pooled lane per
  request, which Django's own thread-sensitive calls join too);
* the ceiling: every ``sync_to_async`` runs inline on the loop's thread
  (benchmarks/django_orm/inline.py): the same work with no hop, the ceiling of any bridge
  on SQLite, whose work holds the GIL nearly throughout.

Workloads: 4 ORM queries (the issue's), 4 raw SELECTs (cheap work per hop), none (Django's
handler alone), on SQLite, and with ``--postgres`` on PostgreSQL too (no ceiling there).
Rounds interleave across every server and workload; each records requests/s, the
server's CPU per request (its loop thread and the rest, from /proc) and the load average.
``--pin CPU`` runs every server a second time pinned to one CPU. Figures are medians;
ratios come from the same run; raw samples go to benchmarks/results/sensitive_django.json.

Run: ``.venv/bin/python -m benchmarks.bench_sensitive [--quick] [--no-server | --server-only]
[--postgres] [--pin CPU] [--rounds N] [--seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import uvloop
from asgiref.sync import ThreadSensitiveContext
from asgiref.sync import sync_to_async as asgiref_sync_to_async

from benchmarks.django_orm import ENV
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
APP = "benchmarks.django_orm"
RESULTS = REPO / "benchmarks" / "results" / "sensitive_django.json"


@dataclass(frozen=True)
class Server:
    label: str
    target: str  # module:attribute in APP
    bridge: str  # the view's route: which sync_to_async its queries go through


#: All on one uvicorn each (uvloop, httptools), the same app and view; only the bridge
#: differs. Django's own hops (request_started, response.close) go through asgiref's
#: sync_to_async in every server but the ceiling, into whichever context is current.
SERVERS = (
    Server("asgiref: Django's ASGIHandler, asgiref sync_to_async", "asgi:application", "asgiref"),
    Server("crossgate calls inside Django's ASGIHandler", "asgi:application", "crossgate"),
    Server(
        "crossgate: dispatch(ASGIHandler), crossgate sync_to_async",
        "asgi:dispatched",
        "crossgate",
    ),
    Server("ceiling: no thread hop at all (zero-cost bridge)", "inline:application", "inline"),
)
ASGIREF, CROSSGATE, CEILING = 0, 2, 3


@dataclass(frozen=True)
class Workload:
    label: str
    work: str  # the view's query kind (benchmarks/django_orm/views.py)
    calls: int


WORKLOADS = (
    Workload("4 ORM queries, filter(pk=...).first()", "filter", 4),
    Workload("4 raw SELECTs through Django's cursor", "raw", 4),
    Workload("no query: Django's handler alone", "filter", 0),
)
POSTGRES_WORKLOADS = WORKLOADS[:2]


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _uvicorn(
    target: str, env: dict[str, str], log: IO[bytes], cpu: int | None
) -> Iterator[tuple[int, int]]:
    """uvicorn serving ``target`` on 127.0.0.1 until the block ends (stopped by its PID),
    its stderr into ``log``, on CPU ``cpu`` alone if given; yields (port, pid)."""
    from tests.integration.support import wait_for_port  # noqa: PLC0415

    port = _free_port()
    argv = [sys.executable, "-m", "uvicorn", f"{APP}.{target}", "--port", str(port)]
    argv += ["--host", "127.0.0.1", "--lifespan", "off", "--log-level", "warning"]
    argv += ["--no-access-log"]
    if cpu is not None:  # taskset execs uvicorn: the PID stays the server's
        argv = ["taskset", "--cpu-list", str(cpu), *argv]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stderr=log, start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def _database(engine: str) -> Iterator[dict[str, str]]:
    """The environment naming a fresh database of ``engine``, seeded, until the block ends."""
    with contextlib.ExitStack() as stack:
        # The crossgate of this tree, even when the venv's is installed from another one.
        path = os.pathsep.join((str(REPO), str(REPO / "src")))
        env = {**os.environ, "PYTHONPATH": path, "DJANGO_SETTINGS_MODULE": f"{APP}.settings"}
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        if engine == "sqlite":
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            env |= {ENV["engine"]: "sqlite", ENV["name"]: str(Path(tmp) / "bench.sqlite3")}
        else:
            port = _free_port()
            started = subprocess.run(
                ["bash", "scripts/_postgres.sh", "start", str(port)],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            info = dict(item.split("=", 1) for item in started.stdout.split())
            stack.callback(
                subprocess.run,
                ["bash", "scripts/_postgres.sh", "stop", info["PGDIR"], info["PGPID"]],
                cwd=REPO,
                check=False,
                timeout=60,
            )
            env |= {
                ENV["engine"]: "postgresql",
                ENV["name"]: "postgres",
                ENV["port"]: info["PGPORT"],
                ENV["user"]: info["PGUSER"],
            }
        subprocess.run(
            [sys.executable, "-m", f"{APP}.seed"], cwd=REPO, env=env, check=True, timeout=120
        )
        yield env


def _cpu_us(pid: int) -> tuple[float, float]:
    """CPU time (user + system, µs) of process ``pid`` so far, and of its main thread (the
    event loop's): the rest ran on the bridge's worker threads."""
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")

    def read(path: str) -> float:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * tick_us  # utime, stime

    return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")


@dataclass
class Sample:
    error: str | None  # why the round published nothing (then the figures are 0)
    requests_per_s: float
    cpu_us: float  # per request, the whole server process
    loop_us: float  # per request, its event loop's thread
    loadavg: float


def _measure(url: str, pid: int, seconds: int) -> Sample:
    loadavg = os.getloadavg()[0]
    cpu0, loop0 = _cpu_us(pid)
    report = run_wrk(url, seconds=seconds, connections=CONCURRENCY, upload=0)
    cpu1, loop1 = _cpu_us(pid)
    errors = report["errors"]
    if any(errors.values()):
        return Sample(f"wrk saw errors {errors}", 0.0, 0.0, 0.0, loadavg)
    count = report["requests"]
    return Sample(
        error=None,
        requests_per_s=count / (report["duration_us"] / 1e6),
        cpu_us=(cpu1 - cpu0) / count,
        loop_us=(loop1 - loop0) / count,
        loadavg=loadavg,
    )


def _tail(log: IO[bytes], size: int = 4000) -> str:
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - size))
    return log.read().decode(errors="replace")


def _check(url: str, calls: int) -> None:
    """One request: the answer must be right before any figure is taken."""
    with urllib.request.urlopen(url, timeout=30) as response:
        answer = json.load(response)
    if answer != {"found": calls, "connections": min(calls, 1)}:
        raise RuntimeError(f"{url}: wrong answer {answer}")


def django_on_uvicorn(
    engine: str, workloads: tuple[Workload, ...], seconds: int, rounds: int, pin: int | None
) -> dict[str, Any]:
    """Every (workload, server) cell, rounds interleaved across all of them (A B C D A B C
    D ...) so that a neighbour's load hits every variant alike; the raw samples. With
    ``pin``, every server runs twice: free on all cores, and pinned to CPU ``pin``.

    No ceiling on PostgreSQL: a loop that blocks on the server's round trips idles, so it
    bounds nothing, and on the loop's thread Django keeps a connection per request task
    that only the garbage collector closes (they reached ``max_connections``).
    """
    servers = SERVERS if engine == "sqlite" else SERVERS[:CEILING]
    conditions = [None] if pin is None else [None, pin]
    variants = [(server, cpu) for cpu in conditions for server in servers]
    samples: dict[tuple[int, int], list[Sample]] = {}
    with _database(engine) as env, contextlib.ExitStack() as stack:
        log = stack.enter_context(tempfile.TemporaryFile())
        running = {
            key: stack.enter_context(_uvicorn(key[0], env, log, key[1]))
            for key in dict.fromkeys((server.target, cpu) for server, cpu in variants)
        }
        cells = []
        for w, workload in enumerate(workloads):
            for v, (server, cpu) in enumerate(variants):
                port, pid = running[server.target, cpu]
                url = f"http://127.0.0.1:{port}/{server.bridge}/{workload.work}"
                url += f"?calls={workload.calls}"
                _check(url, workload.calls)
                run_wrk(url, seconds=1, connections=CONCURRENCY, upload=0)  # warm-up
                cells.append(((w, v), url, pid))
                samples[w, v] = []
        for _ in range(rounds):
            for key, url, pid in cells:
                sample = _measure(url, pid, seconds)
                if sample.error is not None:
                    print(f"{url}: {sample.error}; the servers said:\n{_tail(log)}")
                samples[key].append(sample)
    return {
        "engine": engine,
        "workloads": [vars(workload) for workload in workloads],
        "variants": [{**vars(server), "cpu": cpu} for server, cpu in variants],
        "samples": {f"{w}/{v}": [vars(x) for x in xs] for (w, v), xs in samples.items()},
    }


def report_django(result: dict[str, Any]) -> list[float]:
    """Print one table per workload and CPU condition; returns crossgate's mode over
    asgiref's with free CPUs, by workload."""
    engine = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[result["engine"]]
    variants = result["variants"]
    ratios = []
    for w, workload in enumerate(result["workloads"]):
        for cpu in dict.fromkeys(variant["cpu"] for variant in variants):
            group = [v for v, variant in enumerate(variants) if variant["cpu"] == cpu]
            where = "free on all CPUs" if cpu is None else f"each pinned to CPU {cpu}"
            print(f"\n### Django async view, {workload['label']} ({engine}), uvicorn ({where})\n")
            ratio = _report_group(result, w, group)
            if cpu is None:
                ratios.append(ratio)
    return ratios


def _report_group(result: dict[str, Any], w: int, group: list[int]) -> float:
    """One table: the servers of ``group`` (asgiref's mode first, crossgate's third, the
    ceiling fourth when there is one) on workload ``w``; returns crossgate's over asgiref's."""
    raw = [result["samples"][f"{w}/{v}"] for v in group]
    failed = sum(x["error"] is not None for cell in raw for x in cell)
    cells = [[x for x in cell if x["error"] is None] for cell in raw]
    rate = [statistics.median(x["requests_per_s"] for x in cell) for cell in cells]
    cpu = [statistics.median(x["cpu_us"] for x in cell) for cell in cells]
    loop = [statistics.median(x["loop_us"] for x in cell) for cell in cells]
    has_ceiling = len(group) > CEILING
    print(
        "| server | requests/s (median) | vs asgiref's mode | vs the ceiling "
        "| CPU µs/request | on the loop thread | on other threads | over the ceiling's CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s, v in enumerate(group):
        versus = f"{rate[s] / rate[CEILING]:.2f}x" if has_ceiling else "—"
        over = f"{cpu[s] - cpu[CEILING]:+,.0f}" if has_ceiling else "—"
        print(
            f"| {result['variants'][v]['label']} | {rate[s]:,.0f} "
            f"| {rate[s] / rate[ASGIREF]:.2f}x | {versus} | {cpu[s]:,.0f} | {loop[s]:,.0f} "
            f"| {cpu[s] - loop[s]:,.0f} | {over} |"
        )
    per_round = [  # rounds where both published a figure
        ours["requests_per_s"] / theirs["requests_per_s"]
        for ours, theirs in zip(raw[CROSSGATE], raw[ASGIREF], strict=True)
        if ours["error"] is None and theirs["error"] is None
    ]
    load = [x["loadavg"] for cell in raw for x in cell]
    print(
        "\ncrossgate's mode over asgiref's, per round: "
        f"{', '.join(f'{r:.2f}x' for r in per_round)}; load average "
        f"{min(load):.2f}-{max(load):.2f} during the runs"
        + (f"; {failed} round(s) failed and were left out." if failed else ".")
    )
    ours: float = rate[CROSSGATE] / rate[ASGIREF]
    if has_ceiling:
        # The zero-hop server's rate, and the rate its CPU per request allows on one core
        # (the process's Python code holds the GIL: one core is about all it can use).
        cpu_bound = 1e6 / cpu[CEILING]
        ceiling = rate[CEILING] / rate[ASGIREF]
        reach = "within reach" if ceiling >= TARGET else "out of reach of any bridge"
        print(
            f"Amdahl: a bridge that cost nothing gives {ceiling:.2f}x asgiref's throughput "
            f"here ({cpu_bound / rate[ASGIREF]:.2f}x if its {cpu[CEILING]:,.0f} µs of CPU per "
            f"request filled one core), so 2x is {reach}; crossgate's mode gets {ours:.2f}x."
        )
    return ours


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
    parser.add_argument("--server-only", action="store_true", help="only the uvicorn part")
    parser.add_argument(
        "--postgres", action="store_true", help="the uvicorn part on PostgreSQL too"
    )
    parser.add_argument(
        "--pin",
        type=int,
        metavar="CPU",
        help="run every server a second time, pinned to this CPU (taskset)",
    )
    parser.add_argument("--rounds", type=int, help="rounds of the uvicorn part (default 5)")
    parser.add_argument("--seconds", type=int, help="seconds of wrk per round (default 4)")
    args = parser.parse_args(argv)
    number, rounds = (64, 3) if args.quick else (1600, 7)

    targets: list[str] = []
    if not args.server_only:
        print("\n## thread-sensitive calls from async code, crossgate vs asgiref\n")
        print(f"{CONCURRENCY} requests in flight; per op = one request (context + its calls).")
        _in_process(number, rounds, targets)

    if not args.no_server:
        seconds, server_rounds = (1, 1) if args.quick else (4, 5)
        seconds = args.seconds or seconds
        server_rounds = args.rounds or server_rounds
        plan: list[tuple[str, tuple[Workload, ...]]] = [("sqlite", WORKLOADS)]
        if args.postgres:
            plan.append(("postgresql", POSTGRES_WORKLOADS))
        results = []
        for engine, workloads in plan:
            result = django_on_uvicorn(engine, workloads, seconds, server_rounds, args.pin)
            results.append(result)
            if not args.quick:  # each engine's figures kept as soon as they exist
                RESULTS.write_text(json.dumps(results, indent=1) + "\n")
            ratios = report_django(result)
            ratio = ratios[0]
            verdict = "met" if ratio >= TARGET else "NOT met"
            targets.append(
                f"- Django async view ({result['engine']}, "
                f"{result['workloads'][0]['label']}) on uvicorn, crossgate's mode vs "
                f"asgiref's: {ratio:.2f}x (target >= {TARGET:g}) — **{verdict}**"
            )

    print("\n### targets\n")
    for line in targets:
        print(line)


def _in_process(number: int, rounds: int, targets: list[str]) -> None:
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


if __name__ == "__main__":
    main()
