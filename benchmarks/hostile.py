"""Hostile clients against a WSGI app served through each adapter on a real ASGI server.

For each server (uvicorn with httptools and uvloop, one worker; hypercorn, asyncio worker,
one worker; ``--servers hypercorn-trio`` adds hypercorn's trio worker, where only crossgate
runs) and each contender (``benchmarks/hostile_apps.py``: crossgate's
``wsgi_to_asgi``, a2wsgi, uvicorn's own ``_WSGIMiddleware``, asgiref's ``WsgiToAsgi``,
hypercorn's WSGI wrapper, all with their default options, and a native ASGI app as the
reference), one server process serves the app on 127.0.0.1 and the attacks run one after
another against it:

* ``header-flood``: one request carrying ``flood_lines`` copies of a 26-byte header line
  (``X-Flood: aaaaaaaaaaaaaaa``; 50,000 copies are 1.3 MB, which uvicorn's httptools
  parser accepts; hypercorn's h11 takes a head of at most 16 KiB, so there the flood is
  sized to fit), sent three times, each with an ordinary request beside it;
* ``cookie-flood``: the same with ``Cookie: a=1`` lines;
* ``stalled-uploads``: clients send the head of ``POST /upload`` (Content-Length: 1000)
  and one byte of its body, then hold the connection;
* ``stalled-downloads``: clients ask for a 64 MiB download with a 4 KiB receive buffer and
  never read;
* ``event-streams``: clients read the ``/events`` stream (an event every 100 ms);
* ``large-uploads``: clients each upload 32 MiB at once;
* ``resets``: bursts of clients that send a request (half uploads, half downloads) and
  reset the connection (SO_LINGER 0) mid-way;
* ``pipelined``: one connection sends 100 ``GET /hello?n=i`` at once; all must be answered
  in order.

While each attack runs, a prober (a thread with its own loop) opens a new connection every
100 ms for an ordinary ``GET /hello`` and records its latency (no answer within 5 s: a lost
probe). A sampler reads the server process's VmRSS and Threads from /proc every 50 ms.
After the attack, its clients leave, the server gets a cool-down (5 s), and then three
ordinary requests must each be answered within 1 s (healthy). An attack **passes** when
every probe was answered within 1 s, the attack's own requests were served (floods
answered within 1 s, every event stream got events, every large upload answered with its
length, the pipelined answers whole and in order), the server is healthy after the
cool-down and its threads are back within the contender's pool size (threads at start plus
the pool's bound: no growth from one attack to the next). A server found unhealthy is
restarted before the next attack, and the row says so.

``python -m benchmarks.hostile [--quick] [--only REGEX] [--servers uvicorn,hypercorn]
[--contenders crossgate,...] [--json PATH]`` prints Markdown tables (REGEX is matched against
``server/contender/attack``); ``HOSTILE_CROSSGATE_SRC=DIR`` serves the crossgate in DIR
(e.g. a ``git archive`` of a commit's ``src/``) instead of the working tree's. ``--quick``
keeps the counts that exceed the pools (60 stalled clients, 120 streams) but shortens the
holds and shrinks the uploads. ``--from-json PATH`` renders the tables of a ``--json`` file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final

from tests.integration.support import REPO, free_port, serve

from benchmarks.bench_soak import Conn, open_conn, read_head, read_response, run_async

__all__ = [
    "ATTACKS",
    "CONTENDERS",
    "FULL",
    "QUICK",
    "SERVERS",
    "TRIO_SERVER",
    "Flood",
    "Result",
    "Scale",
    "Served",
    "Target",
    "main",
    "render",
    "reset_mid_download",
    "run_attack",
    "run_matrix",
    "send_floods",
    "serving",
]

HOST: Final = "127.0.0.1"
KIB: Final = 1024
MIB: Final = 1024 * KIB
APPS: Final = "benchmarks.hostile_apps"
SERVERS: Final = ("uvicorn", "hypercorn")
#: hypercorn's trio worker: crossgate (and only it: the peers run on asyncio alone) on trio.
TRIO_SERVER: Final = "hypercorn-trio"
CONTENDERS: Final = ("crossgate", "a2wsgi", "uvicorn", "asgiref", "hypercorn", "native")
#: Seconds between two probes, the most a probe may take to pass, and the most it is
#: waited for (beyond that it is lost).
PROBE_INTERVAL: Final = 0.1
PROBE_LIMIT: Final = 1.0
PROBE_TIMEOUT: Final = 5.0
#: Seconds between two samples of the server's /proc/<pid>/status.
SAMPLE_INTERVAL: Final = 0.05
#: hypercorn's h11 buffers at most this much of a request head (``h11_max_incomplete_size``).
H11_HEAD_LIMIT: Final = 16 * KIB
FLOOD_LINE: Final = b"X-Flood: aaaaaaaaaaaaaaa\r\n"
COOKIE_LINE: Final = b"Cookie: a=1\r\n"
#: Flood requests per flood attack (each with an ordinary request beside it).
FLOOD_REPEATS: Final = 3
#: Receive buffer of the clients that never read a download.
STALLED_RCVBUF: Final = 4 * KIB
STALLED_DOWNLOAD: Final = 64 * MIB
#: Connections opened at once while an attack sets up (hypercorn listens with a backlog of
#: 100: a larger burst of SYNs would only be retried a second later).
OPEN_AT_ONCE: Final = 20
#: An environment variable: a directory put ahead of the repository on the servers'
#: PYTHONPATH, to attack another crossgate (``git archive HEAD src | tar -x -C DIR``, then
#: ``DIR/src``) than the working tree's.
CROSSGATE_SRC_ENV: Final = "HOSTILE_CROSSGATE_SRC"
#: Threads each contender's pool may hold at most, beyond those the server had at start.
#: crossgate: its ``workers`` (threads beyond them, for jobs waiting on the network, end
#: when idle); a2wsgi and uvicorn's middleware: a ThreadPoolExecutor of 10; asgiref: one
#: thread (``sync_to_async``, thread-sensitive); hypercorn: the loop's default executor.
POOL_BOUNDS: Final = {
    "crossgate": 40,
    "a2wsgi": 10,
    "uvicorn": 10,
    "asgiref": 1,
    "hypercorn": min(32, (os.cpu_count() or 1) + 4),
    "native": 0,
}


@dataclass(frozen=True)
class Scale:
    """How hard each attack pushes, and for how long."""

    flood_lines: int = 50_000
    stalled_uploads: int = 60
    stalled_downloads: int = 60
    streams: int = 120
    uploads: int = 16
    upload_size: int = 32 * MIB
    resets: int = 200
    reset_bursts: int = 4
    pipelined: int = 100
    hold: float = 6.0  # seconds each attack lasts at least (holding attacks: exactly)
    cooldown: float = 5.0  # seconds between the clients leaving and the health check
    timeout: float = 120.0  # seconds the attack's own requests may take beyond ``hold``


FULL: Final = Scale()
QUICK: Final = Scale(
    uploads=8, upload_size=8 * MIB, resets=100, hold=2.5, cooldown=2.0, timeout=30.0
)


# ------------------------------------------------------------------------------------------
# The server process: which pid, its RSS and threads
# ------------------------------------------------------------------------------------------


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def listener_pid(port: int) -> int:
    """The pid of the process that serves ``port``: of those holding its listening socket,
    the one whose parent holds it too (hypercorn's worker, beside its master), else the
    only one."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    holders: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in targets for fd in fds):
                holders.append(int(entry))
    if not holders:
        raise RuntimeError(f"no process of this user listens on port {port}")
    workers = [pid for pid in holders if _ppid(pid) in holders]
    return (workers or holders)[0]


def proc_status(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, Threads) of ``pid``."""
    rss = threads = -1
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


class Sampler:
    """Samples a process's RSS and threads in a thread of its own; keeps the peaks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_peak = self.threads_peak = 0
        self.alive = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        try:
            rss, threads = proc_status(self.pid)
        except OSError:
            self.alive = False
            return
        self.rss_peak = max(self.rss_peak, rss)
        self.threads_peak = max(self.threads_peak, threads)

    def _run(self) -> None:
        while self.alive and not self._stop.wait(SAMPLE_INTERVAL):
            self._sample()


# ------------------------------------------------------------------------------------------
# Probes: an ordinary request every 100 ms, each on a new connection
# ------------------------------------------------------------------------------------------

_HELLO = f"GET /hello HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()


async def hello(port: int, timeout: float = PROBE_TIMEOUT) -> float | None:
    """Seconds an ordinary ``GET /hello`` took on a new connection; None if it was not
    answered ``hello`` within ``timeout``."""
    start = time.perf_counter()
    conn: Conn | None = None
    try:
        async with asyncio.timeout(timeout):
            conn = await open_conn(port)
            conn.writer.write(_HELLO)
            parts: list[bytes] = []
            response = await read_response(conn.reader, parts.append)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        return None
    finally:
        if conn is not None:
            conn.close(reset=False)
    if response.status != 200 or b"".join(parts) != b"hello":
        return None
    return time.perf_counter() - start


class Prober:
    """Sends an ordinary request every ``PROBE_INTERVAL`` seconds, in a thread with a loop
    of its own (so that the attack's clients do not delay it), until the block ends."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: run_async(self._main), name="hostile-prober", daemon=True
        )

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(PROBE_TIMEOUT + 5)

    async def _probe(self) -> None:
        self.latencies.append(await hello(self.port))

    async def _main(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        due = time.perf_counter()
        while not self._stop.is_set():
            task = asyncio.create_task(self._probe())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            due += PROBE_INTERVAL
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if tasks:
            await asyncio.gather(*tasks)


# ------------------------------------------------------------------------------------------
# The attacks: each returns (its own requests were served, what it saw)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    port: int
    server: str
    scale: Scale


Outcome = tuple[bool, str]
Attack = Callable[[Context], Awaitable[Outcome]]


def _ms(seconds: float | None) -> str:
    return "lost" if seconds is None else f"{seconds * 1000:.0f} ms"


async def _open_many(port: int, count: int, rcvbuf: int | None = None) -> list[Conn]:
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def one() -> Conn:
        async with gate:
            return await open_conn(port, rcvbuf)

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _close_all(conns: Sequence[Conn]) -> None:
    for conn in conns:
        conn.close()  # a reset: the server sees the client gone at its next read or write


def flood_lines(ctx: Context, line: bytes) -> int:
    """How many copies of ``line`` the flood sends: ``scale.flood_lines``, or as many as
    fit in h11's head limit on hypercorn."""
    if ctx.server.startswith("hypercorn"):
        return min(ctx.scale.flood_lines, (H11_HEAD_LIMIT - 256) // len(line))
    return ctx.scale.flood_lines


async def _timed_request(port: int, request: bytes) -> tuple[float | None, int]:
    start = time.perf_counter()
    conn = await open_conn(port)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            conn.writer.write(request)
            response = await read_response(conn.reader, lambda _: None)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        return None, -1
    finally:
        conn.close(reset=False)
    return time.perf_counter() - start, response.status


@dataclass(frozen=True)
class Flood:
    """What ``FLOOD_REPEATS`` flood requests saw: each one's latency (None: not answered)
    and status, and the latency of the ordinary request sent beside each."""

    lines: int
    size: int
    floods: list[tuple[float | None, int]]
    besides: list[float | None]

    @property
    def answered(self) -> bool:
        return all(t is not None and t <= PROBE_LIMIT for t, _ in self.floods)

    def describe(self) -> str:
        statuses = sorted({status for _, status in self.floods})
        return (
            f"{self.lines:,} lines, {self.size / MIB:.2f} MiB: status {statuses}, "
            f"in {' / '.join(_ms(t) for t, _ in self.floods)}; "
            f"beside it: {' / '.join(_ms(t) for t in self.besides)}"
        )


async def send_floods(port: int, line: bytes, lines: int) -> Flood:
    """Send ``FLOOD_REPEATS`` requests of ``lines`` copies of ``line``, half a second apart,
    each with an ordinary request sent beside it (once the flood is on its way)."""
    request = (
        f"GET /hello?n=flood HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n".encode()
        + line * lines
        + b"\r\n"
    )
    floods: list[tuple[float | None, int]] = []
    besides: list[float | None] = []
    for _ in range(FLOOD_REPEATS):
        flood = asyncio.create_task(_timed_request(port, request))
        await asyncio.sleep(0.005)
        besides.append(await hello(port))
        floods.append(await flood)
        await asyncio.sleep(0.5)
    return Flood(lines, len(request), floods, besides)


async def _flood(ctx: Context, line: bytes) -> Outcome:
    flood = await send_floods(ctx.port, line, flood_lines(ctx, line))
    return flood.answered, flood.describe()


async def header_flood(ctx: Context) -> Outcome:
    return await _flood(ctx, FLOOD_LINE)


async def cookie_flood(ctx: Context) -> Outcome:
    return await _flood(ctx, COOKIE_LINE)


async def stalled_uploads(ctx: Context) -> Outcome:
    conns = await _open_many(ctx.port, ctx.scale.stalled_uploads)
    head = f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000\r\n\r\n".encode()
    try:
        for conn in conns:
            conn.writer.write(head + b"x")
        await asyncio.sleep(ctx.scale.hold)
    finally:
        _close_all(conns)
    return True, f"{len(conns)} clients held {ctx.scale.hold:g} s"


async def stalled_downloads(ctx: Context) -> Outcome:
    conns = await _open_many(ctx.port, ctx.scale.stalled_downloads, rcvbuf=STALLED_RCVBUF)
    request = f"GET /download?size={STALLED_DOWNLOAD} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    try:
        for conn in conns:
            conn.writer.write(request)
        await asyncio.sleep(ctx.scale.hold)
    finally:
        _close_all(conns)
    return True, f"{len(conns)} clients held {ctx.scale.hold:g} s"


async def event_streams(ctx: Context) -> Outcome:
    conns = await _open_many(ctx.port, ctx.scale.streams)
    request = f"GET /events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    events = [0] * len(conns)

    async def read(index: int, conn: Conn) -> None:
        conn.writer.write(request)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            await read_head(conn.reader)
            while data := await conn.reader.read(64 * KIB):
                events[index] += data.count(b"data: ")

    readers = [asyncio.create_task(read(i, conn)) for i, conn in enumerate(conns)]
    try:
        await asyncio.sleep(ctx.scale.hold)
    finally:
        _close_all(conns)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    served = sum(1 for n in events if n)
    detail = (
        f"{served}/{len(conns)} streams got events in {ctx.scale.hold:g} s "
        f"(median {statistics.median(events):.0f} events each)"
    )
    return served == len(conns), detail


async def large_uploads(ctx: Context) -> Outcome:
    size = ctx.scale.upload_size
    payload = memoryview(b"u" * size)
    head = f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {size}\r\n\r\n".encode()
    start = time.perf_counter()

    async def upload() -> bool:
        conn = await open_conn(ctx.port)
        try:
            conn.writer.write(head)
            for offset in range(0, size, MIB):
                conn.writer.write(payload[offset : offset + MIB])
                await conn.writer.drain()
            parts: list[bytes] = []
            response = await read_response(conn.reader, parts.append)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            return False
        finally:
            conn.close(reset=False)
        return response.status == 200 and b"".join(parts) == str(size).encode()

    results = await asyncio.gather(*(upload() for _ in range(ctx.scale.uploads)))
    took = time.perf_counter() - start
    ok = sum(results)
    return ok == len(results), f"{ok}/{len(results)} x {size // MIB} MiB answered in {took:.1f} s"


async def _reset_upload(port: int) -> None:
    conn = await open_conn(port)
    try:
        conn.writer.write(
            f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {8 * MIB}\r\n\r\n".encode()
            + b"r" * (256 * KIB)
        )
        async with asyncio.timeout(2):
            await conn.writer.drain()
        await asyncio.sleep(0.05)
    finally:
        conn.close()


async def reset_mid_download(port: int, target: str, timeout: float = 2.0) -> None:
    """``GET target`` with a small receive buffer, read 128 KiB of it, then reset."""
    conn = await open_conn(port, rcvbuf=16 * KIB)
    try:
        conn.writer.write(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        async with asyncio.timeout(timeout):
            got = 0
            while got < 128 * KIB and (data := await conn.reader.read(64 * KIB)):
                got += len(data)
    finally:
        conn.close()


async def _reset_download(port: int) -> None:
    await reset_mid_download(port, f"/download?size={STALLED_DOWNLOAD}")


async def resets(ctx: Context) -> Outcome:
    per_burst = max(1, ctx.scale.resets // ctx.scale.reset_bursts)
    sent = 0
    for _ in range(ctx.scale.reset_bursts):
        clients = [
            (_reset_upload if i % 2 == 0 else _reset_download)(ctx.port) for i in range(per_burst)
        ]
        await asyncio.gather(*clients, return_exceptions=True)
        sent += per_burst
        await asyncio.sleep(0.5)
    return True, f"{sent} resets in {ctx.scale.reset_bursts} bursts"


async def pipelined(ctx: Context) -> Outcome:
    count = ctx.scale.pipelined
    start = time.perf_counter()
    conn = await open_conn(ctx.port)
    answers: list[bytes] = []
    try:
        conn.writer.write(
            b"".join(
                f"GET /hello?n={i} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode() for i in range(count)
            )
        )
        async with asyncio.timeout(30):
            for _ in range(count):
                parts: list[bytes] = []
                await read_response(conn.reader, parts.append)
                answers.append(b"".join(parts))
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        error = f", then {type(exc).__name__}"
    else:
        error = ""
    finally:
        conn.close(reset=False)
    took = time.perf_counter() - start
    expected = [f"hello {i}".encode() for i in range(count)]
    in_order = answers == expected
    if not in_order and answers != expected[: len(answers)]:
        error += f"; out of order from {next(i for i, a in enumerate(answers) if a != expected[i])}"
    return (
        in_order,
        f"{len(answers)}/{count} answered{' in order' if in_order else ''}{error} in {took:.2f} s",
    )


ATTACKS: Final[dict[str, Attack]] = {
    "header-flood": header_flood,
    "cookie-flood": cookie_flood,
    "stalled-uploads": stalled_uploads,
    "stalled-downloads": stalled_downloads,
    "event-streams": event_streams,
    "large-uploads": large_uploads,
    "resets": resets,
    "pipelined": pipelined,
}


# ------------------------------------------------------------------------------------------
# One server, one contender: attacks in a row
# ------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What one attack did to one contender on one server."""

    server: str
    contender: str
    attack: str
    attack_ok: bool
    detail: str
    latencies: list[float | None]
    rss_before_kib: int
    rss_peak_kib: int
    threads_start: int  # the server's threads before its first request
    threads_before: int
    threads_peak: int
    threads_after: int  # as the attack's clients left
    threads_cool: int  # after the cool-down
    pool_bound: int
    healthy: bool
    restarted: bool = False  # the server was found unhealthy and restarted after this

    @property
    def answered(self) -> list[float]:
        return sorted(t for t in self.latencies if t is not None)

    @property
    def lost(self) -> int:
        return sum(1 for t in self.latencies if t is None)

    @property
    def slow(self) -> int:
        """Probes answered, but later than ``PROBE_LIMIT``."""
        return sum(1 for t in self.answered if t > PROBE_LIMIT)

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile of the probes' latencies, a lost probe counting as infinite
        (None when no probe was sent)."""
        ranked = [*self.answered, *[float("inf")] * self.lost]
        if not ranked:
            return None
        return ranked[min(len(ranked) - 1, round(q * (len(ranked) - 1)))]

    @property
    def rss_growth_mib(self) -> float:
        return (self.rss_peak_kib - self.rss_before_kib) / KIB

    @property
    def threads_ok(self) -> bool:
        return 0 <= self.threads_cool <= self.threads_start + self.pool_bound

    @property
    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.latencies:
            found.append("no probe was sent")
        if self.lost:
            found.append(f"{self.lost}/{len(self.latencies)} probes lost")
        if self.slow:
            found.append(f"{self.slow}/{len(self.latencies)} probes over {PROBE_LIMIT:g} s")
        if not self.attack_ok:
            found.append(f"attack's requests not served: {self.detail}")
        if not self.healthy:
            found.append("unhealthy after the cool-down")
        if not self.threads_ok:
            found.append(
                f"{self.threads_cool} threads after the cool-down "
                f"(> {self.threads_start} + pool {self.pool_bound})"
            )
        return found

    @property
    def passed(self) -> bool:
        return not self.problems

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            passed=self.passed,
            problems=self.problems,
            p50=self.percentile(0.5),
            p99=self.percentile(0.99),
            max=self.percentile(1.0),
        )
        return data


@dataclass(frozen=True)
class Target:
    """One contender on one server."""

    server: str
    contender: str

    def argv(self, port: int) -> list[str]:
        if self.server == "uvicorn":
            return [
                "uvicorn",
                f"{APPS}:{self.contender}",
                "--host",
                HOST,
                "--port",
                str(port),
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--lifespan",
                "off",
                "--no-access-log",
                "--log-level",
                "warning",
            ]
        if self.server in ("hypercorn", TRIO_SERVER):
            # hypercorn's own WSGI wrapper: hypercorn finds a WSGI app and wraps it.
            own = self.contender == "hypercorn"
            config = ["--config", f"python:{APPS}.HypercornWSGIConfig"] if own else []
            attr = "wsgi_app" if own else f"build({self.contender!r})"
            return [
                "hypercorn",
                *config,
                "--bind",
                f"{HOST}:{port}",
                "--worker-class",
                "trio" if self.server == TRIO_SERVER else "asyncio",
                "--log-level",
                "warning",
                f"{APPS}:{attr}",
            ]
        raise ValueError(f"unknown server {self.server!r}")

    @property
    def key(self) -> str:
        return f"{self.server}/{self.contender}"


class Served:
    """A running server for one target, restartable; ``close()`` stops it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._stack = contextlib.ExitStack()
        self.port = self.pid = self.threads_start = 0
        self.log = Path()
        self.start()

    def start(self) -> None:
        self.port = free_port()
        env = {}
        src = os.environ.get(CROSSGATE_SRC_ENV)
        if src:  # another crossgate (a checkout's src/) ahead of this one
            env["PYTHONPATH"] = os.pathsep.join([src, str(REPO)])
        self.log = self._stack.enter_context(
            serve(self.target.argv(self.port), self.port, env=env, timeout=30, stop_timeout=5)
        )
        self.pid = listener_pid(self.port)
        self.threads_start = proc_status(self.pid)[1]
        self._warm_up()

    def _warm_up(self) -> None:
        async def warm() -> None:
            for _ in range(5):
                if await hello(self.port) is None:
                    raise RuntimeError(f"{self.target.key} does not answer /hello")

        run_async(warm)

    def restart(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.start()

    def close(self) -> None:
        self._stack.close()

    def healthy(self) -> bool:
        async def check() -> bool:
            for _ in range(3):
                took = await hello(self.port)
                if took is None or took > PROBE_LIMIT:
                    return False
            return True

        try:
            proc_status(self.pid)
        except OSError:
            return False
        return run_async(check)


def run_attack(served: Served, name: str, scale: Scale) -> Result:
    """Run attack ``name`` on ``served`` with the prober and sampler on; cool down; check
    health (and restart the server if it is not healthy)."""
    attack = ATTACKS[name]
    ctx = Context(served.port, served.target.server, scale)
    rss_before, threads_before = proc_status(served.pid)

    async def bounded() -> Outcome:
        # Every attack lasts at least ``hold`` seconds, so that as many probes see it.
        start = time.perf_counter()
        async with asyncio.timeout(scale.hold + scale.timeout):
            outcome = await attack(ctx)
        await asyncio.sleep(max(0.0, scale.hold - (time.perf_counter() - start)))
        return outcome

    with Sampler(served.pid) as sampler, Prober(served.port) as prober:
        try:
            attack_ok, detail = run_async(bounded)
        except TimeoutError:
            attack_ok, detail = False, f"the attack did not end within {scale.timeout:g} s"
    try:
        threads_after = proc_status(served.pid)[1]
    except OSError:
        threads_after = -1
    time.sleep(scale.cooldown)
    try:
        threads_cool = proc_status(served.pid)[1]
    except OSError:
        threads_cool = -1
    healthy = sampler.alive and served.healthy()
    result = Result(
        server=served.target.server,
        contender=served.target.contender,
        attack=name,
        attack_ok=attack_ok,
        detail=detail,
        latencies=prober.latencies,
        rss_before_kib=rss_before,
        rss_peak_kib=sampler.rss_peak,
        threads_start=served.threads_start,
        threads_before=threads_before,
        threads_peak=sampler.threads_peak,
        threads_after=threads_after,
        threads_cool=threads_cool,
        pool_bound=POOL_BOUNDS[served.target.contender],
        healthy=healthy,
    )
    if not healthy:
        result.restarted = True
        served.restart()
    return result


@contextlib.contextmanager
def serving(target: Target) -> Iterator[Served]:
    served = Served(target)
    try:
        yield served
    finally:
        served.close()


def run_matrix(
    targets: Sequence[Target],
    attacks: Sequence[str],
    scale: Scale,
    *,
    only: re.Pattern[str] | None = None,
    report: Callable[[Result], object] = lambda _: None,
) -> list[Result]:
    """Every attack against every target (those ``only`` matches), target by target."""
    results: list[Result] = []
    for target in targets:
        names = [a for a in attacks if only is None or only.search(f"{target.key}/{a}")]
        if not names:
            continue
        with serving(target) as served:
            for name in names:
                result = run_attack(served, name, scale)
                results.append(result)
                report(result)
    return results


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return f"> {PROBE_TIMEOUT:g} s"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _cell(result: Result) -> str:
    if result.passed:
        return f"pass · p99 {_fmt_s(result.percentile(0.99))}"
    bits: list[str] = []
    total = len(result.latencies)
    if result.lost:
        bits.append(f"{result.lost}/{total} lost")
    if result.slow:
        bits.append(f"{result.slow}/{total} > 1 s")
    if result.slow and not result.lost:
        bits.append(f"max {_fmt_s(result.percentile(1.0))}")
    if not result.attack_ok:
        bits.append("attack not served")
    if not result.healthy:
        bits.append("wedged")
    if not result.threads_ok:
        bits.append(f"{result.threads_cool} threads")
    return "**FAIL** · " + ", ".join(bits)


def render(results: Sequence[Result]) -> str:
    """Markdown: per server, an attack x contender summary; then every measurement."""
    lines: list[str] = []
    servers = list(dict.fromkeys(r.server for r in results))
    for server in servers:
        mine = [r for r in results if r.server == server]
        contenders = list(dict.fromkeys(r.contender for r in mine))
        attacks = list(dict.fromkeys(r.attack for r in mine))
        by_key = {(r.attack, r.contender): r for r in mine}
        lines += [
            f"### {server}",
            "",
            "| attack | " + " | ".join(contenders) + " |",
            "|---|" + "---|" * len(contenders),
        ]
        for attack in attacks:
            cells = [_cell(by_key[attack, c]) if (attack, c) in by_key else "" for c in contenders]
            lines.append(f"| {attack} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "### Every measurement",
        "",
        "| server | contender | attack | pass | probes | lost | >1 s | p50 | p99 | max "
        "| RSS growth | threads start/before/peak/after/cool | what the attack saw |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        threads = (
            f"{r.threads_start}/{r.threads_before}/{r.threads_peak}/"
            f"{r.threads_after}/{r.threads_cool}"
        )
        note = r.detail + (" — wedged, restarted" if r.restarted else "")
        lines.append(
            f"| {r.server} | {r.contender} | {r.attack} | {'yes' if r.passed else '**no**'} "
            f"| {len(r.latencies)} | {r.lost} | {r.slow} | {_fmt_s(r.percentile(0.5))} "
            f"| {_fmt_s(r.percentile(0.99))} | {_fmt_s(r.percentile(1.0))} "
            f"| {r.rss_growth_mib:+.0f} MiB | {threads} | {note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile")
    parser.add_argument("--quick", action="store_true", help="short holds, smaller uploads")
    parser.add_argument("--only", help="regex matched against server/contender/attack")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    parser.add_argument("--from-json", type=Path, help="render a --json file; run nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        print(render([Result.from_json(r) for r in json.loads(args.from_json.read_text())]))
        return
    scale = QUICK if args.quick else FULL
    servers = [s for s in args.servers.split(",") if s]
    contenders = [c for c in args.contenders.split(",") if c]
    for name in (*servers, *contenders):
        if name not in (*SERVERS, TRIO_SERVER) and name not in CONTENDERS:
            parser.error(f"unknown server or contender {name!r}")
    only = re.compile(args.only) if args.only else None
    targets = [Target(s, c) for s in servers for c in contenders]
    print(
        f"# hostile clients — Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {'quick' if args.quick else 'full'} scale: "
        f"{json.dumps(asdict(scale))}\n",
        flush=True,
    )

    def progress(result: Result) -> None:
        verdict = "pass" if result.passed else "FAIL: " + "; ".join(result.problems)
        print(
            f"<!-- {result.server}/{result.contender}/{result.attack}: {verdict}; "
            f"p99 {_fmt_s(result.percentile(0.99))}, RSS {result.rss_growth_mib:+.0f} MiB, "
            f"threads {result.threads_cool}; {result.detail} -->",
            file=sys.stderr,
            flush=True,
        )

    results = run_matrix(targets, list(ATTACKS), scale, only=only, report=progress)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps([r.as_json() for r in results], indent=1) + "\n")


if __name__ == "__main__":
    main()
