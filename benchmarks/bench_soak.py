"""Soak: thousands of requests through each adapter on a real server, a third cut off.

For each server (``--servers``; all by default) a subprocess serves
``benchmarks/soak_apps.py`` on 127.0.0.1: crossgate's ``wsgi_to_asgi`` on uvicorn and on
hypercorn, ``asgi_to_wsgi`` on gunicorn (gthread) and on waitress. Raw asyncio sockets
drive ``--requests`` requests (``--concurrency`` at a time, keep-alive connections) in a
seeded random mix: hello, uploads (Content-Length or chunked, up to 300 KiB) and
downloads (up to 512 KiB in 16 KiB chunks), one third of them cut off by the client
mid-upload (headers and part of the body) or mid-download (up to 2 MiB, the app pacing
its chunks, a small receive buffer, part of the body), leaving with a close or a reset.

Every response that is not cut off on purpose must be exactly right (the status, and the
upload's length and sha256 echoed, or the download's length and sha256). The app's
``/__stats`` is read after a warm-up (the baseline) and after the soak, once the server
has settled, and these must hold:

* every response iterable handed over was closed: for ``wsgi_to_asgi`` crossgate calls the
  WSGI app's ``close()``, on the thread that ran the app; for ``asgi_to_wsgi`` the server
  calls the ``close()`` of the iterable crossgate returns; every app call ended;
* threads are back to the baseline, family by family (threads named alike, numbers
  dropped), except worker pools, which keep their threads by design: crossgate's
  ``WorkerPool`` ("crossgate-wsgi") and gunicorn gthread's ``ThreadPoolExecutor`` start
  threads lazily, one per request that finds none idle, and never retire idle ones. The
  warm-up may not have reached the soak's peak, so a pool may grow, up to its bound
  (``workers`` / ``--threads``), never past it. waitress starts all its threads up front;
* the tasks of the loop that runs the app (uvicorn's or hypercorn's loop; crossgate's
  portal loop under a WSGI server) are back to the baseline;
* the live objects (``gc.get_objects()`` after a collection) are back to the baseline,
  give or take a few hundred (``max(500, requests / 10)``);
* the server's RSS grew by less than ``--rss-bound`` MiB (default 20), and by less than
  half of that over the second half of the soak (read once the server settled half way):
  warm-up growth (allocator arenas, buffers, pool threads) comes early, a leak's keeps on.
  The servers run with ``MALLOC_ARENA_MAX=2`` unless ``--malloc-arenas`` says otherwise
  (see ``MALLOC_ARENAS``).

A table is printed; the exit status is 1 if anything was violated.

Run: ``python -m benchmarks.bench_soak [--quick] [--requests N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import socket
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from tests.integration.support import free_port, gunicorn_argv, serve, uvicorn_argv

from benchmarks.soak_apps import download_digest

__all__ = [
    "SERVERS",
    "Conn",
    "Driver",
    "HTTPResponse",
    "Plan",
    "Report",
    "ServerSpec",
    "Tally",
    "fetch_stats",
    "main",
    "make_plans",
    "open_conn",
    "print_table",
    "read_head",
    "read_response",
    "run_async",
    "soak_server",
]

T = TypeVar("T")

HOST: Final = "127.0.0.1"
KIB: Final = 1024
MIB: Final = 1024 * 1024
#: Seconds one request may take before it counts as hung.
REQUEST_TIMEOUT: Final = 60.0
#: Seconds the server gets to settle after the soak (abort graces included).
SETTLE_TIMEOUT: Final = 30.0
UPLOAD_SIZES: Final = (0, 1, 1000, 16 * KIB, 64 * KIB, 64 * KIB + 1, 200 * KIB, 300 * KIB)
DOWNLOAD_SIZES: Final = (0, 1, 16 * KIB, 100_000, 256 * KIB, 300 * KIB + 7, 512 * KIB)
#: Downloads that the client leaves: one is larger than crossgate's byte budget (1 MiB),
#: so an app that was not told of the disconnect would wait in send() for ever.
CUT_DOWNLOAD_SIZES: Final = (256 * KIB, 300 * KIB + 7, 512 * KIB, 2 * MIB + 5)
#: Receive buffer of a client that will leave mid-download, so that the server is still
#: writing when it leaves (a large buffer would take the whole body at once).
CUT_RCVBUF: Final = 8 * KIB
#: MALLOC_ARENA_MAX for the servers. glibc gives threads that allocate arenas of their
#: own (up to 8 per core) and keeps what is freed in each: with 16-thread pools RSS then
#: creeps by retention, not by leak. Measured on 2 cores, waitress, 10,000 requests: +23
#: MiB with glibc's default, flat within +-3 MiB with 1 or 2 arenas, and the live objects
#: flat either way. It is also the usual production setting for threaded Python servers.
MALLOC_ARENAS: Final = 2
#: Seconds servers keep an idle connection open.
KEEP_ALIVE: Final = 2
#: gunicorn gthread and waitress threads in the soak.
SERVER_THREADS: Final = 16
APP_WSGI: Final = "benchmarks.soak_apps:wsgi_application"
APP_ASGI: Final = "benchmarks.soak_apps:asgi_application"


# ------------------------------------------------------------------------------------------
# Servers
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server on a port, and what its threads may do."""

    name: str
    direction: str  # "wsgi_to_asgi" or "asgi_to_wsgi"
    argv: Callable[[int], list[str]]
    #: Thread families that are pools: they may grow up to this bound (None: the app's
    #: stats say, as "pool_max").
    pools: dict[str, int | None] = field(default_factory=dict)
    #: Seconds to wait after the warm-up and after the soak before reading the stats:
    #: uvicorn and hypercorn keep a connection that the client reset (its protocol
    #: objects, timers, for hypercorn its tasks) until the keep-alive timeout ends, with
    #: or without crossgate (seen with a plain ASGI app on uvicorn too).
    idle_wait: float = 0.0


def _uvicorn(port: int) -> list[str]:
    return uvicorn_argv(
        APP_WSGI,
        port,
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        str(KEEP_ALIVE),
    )


def _hypercorn(port: int) -> list[str]:
    return ["hypercorn", "--bind", f"{HOST}:{port}", "--keep-alive", str(KEEP_ALIVE), APP_WSGI]


def _gunicorn(port: int) -> list[str]:
    # One process: /__stats describes the process that served the soak.
    return gunicorn_argv(
        APP_ASGI, port, threads=SERVER_THREADS, extra=["--keep-alive", str(KEEP_ALIVE)]
    )


def _waitress(port: int) -> list[str]:
    return [
        "waitress",
        f"--listen={HOST}:{port}",
        f"--threads={SERVER_THREADS}",
        "--channel-timeout=60",
        APP_ASGI,
    ]


SERVERS: Final = {
    spec.name: spec
    for spec in (
        ServerSpec("uvicorn", "wsgi_to_asgi", _uvicorn, {"crossgate-wsgi": None}, KEEP_ALIVE + 1),
        ServerSpec(
            "hypercorn", "wsgi_to_asgi", _hypercorn, {"crossgate-wsgi": None}, KEEP_ALIVE + 1
        ),
        ServerSpec(
            "gunicorn-gthread",
            "asgi_to_wsgi",
            _gunicorn,
            {"ThreadPoolExecutor": SERVER_THREADS},
        ),
        ServerSpec("waitress", "asgi_to_wsgi", _waitress),
    )
}


# ------------------------------------------------------------------------------------------
# A small HTTP/1.1 client over raw asyncio streams
# ------------------------------------------------------------------------------------------


@dataclass
class Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used: bool = False

    def close(self, *, reset: bool = True) -> None:
        """Leave at once: with a reset (RST), or a close (FIN, or RST anyway if data came
        that was not read). Either way the server sees the client gone at its next read or
        write, as with a real client that gave up."""
        if reset:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


async def open_conn(port: int, rcvbuf: int | None = None) -> Conn:
    """A connection to 127.0.0.1:``port`` (with a small receive buffer, if given)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=256 * KIB)
    except BaseException:
        sock.close()
        raise
    return Conn(reader, writer)


@dataclass
class HTTPResponse:
    status: int
    headers: dict[str, str]
    length: int
    keep_alive: bool


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_response(
    reader: asyncio.StreamReader, sink: Callable[[bytes], object]
) -> HTTPResponse:
    """Read one response; hand its (de-chunked) body to ``sink`` block by block."""
    status, headers = await read_head(reader)
    length = 0
    keep_alive = headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if not size:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            block = await reader.readexactly(size + 2)
            sink(block[:-2])
            length += size
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left:
            block = await reader.read(min(left, 64 * KIB))
            if not block:
                raise asyncio.IncompleteReadError(b"", left)
            sink(block)
            length += len(block)
            left -= len(block)
    else:  # delimited by the end of the connection
        keep_alive = False
        while block := await reader.read(64 * KIB):
            sink(block)
            length += len(block)
    return HTTPResponse(status, headers, length, keep_alive)


async def fetch_stats(port: int, query: str = "") -> dict[str, Any]:
    """The app's ``/__stats`` (``query``: its options), on a connection of its own."""
    conn = await open_conn(port)
    try:
        query = f"?{query}" if query else ""
        conn.writer.write(
            f"GET /__stats{query} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
        )
        parts: list[bytes] = []
        response = await asyncio.wait_for(read_response(conn.reader, parts.append), 30)
    finally:
        conn.writer.close()
    if response.status != 200:
        raise RuntimeError(f"/__stats answered {response.status}")
    stats: dict[str, Any] = json.loads(b"".join(parts))
    return stats


# ------------------------------------------------------------------------------------------
# The request mix
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    kind: str  # hello, upload, download, cut_upload, cut_download
    size: int = 0
    chunked: bool = False  # an upload with Transfer-Encoding: chunked
    cut_at: int = 0  # bytes sent (cut_upload) or read (cut_download) before leaving
    rst: bool = False  # leave with a reset (SO_LINGER 0) rather than a close
    pace_ms: int = 0  # the download's pause between chunks
    seed: int = 0  # of the upload body


def make_plans(count: int, seed: int) -> list[Plan]:
    """``count`` requests: a third cut off by the client, the rest hello/upload/download.

    Cut-off downloads are paced (2 ms between chunks) so that the app is still producing
    when the client leaves: an unpaced body of a few hundred KiB sits whole in the
    loopback socket buffers (up to 4 MiB) before the client has read a byte of it, and the
    cut would never reach the app.
    """
    rng = random.Random(seed)
    plans = []
    for _ in range(count):
        if rng.random() < 1 / 3:
            if rng.random() < 0.5:
                size = rng.choice(UPLOAD_SIZES[3:])
                plan = Plan(
                    "cut_upload",
                    size,
                    chunked=rng.random() < 0.25,
                    cut_at=rng.randrange(size),
                    rst=rng.random() < 0.5,
                    seed=rng.getrandbits(32),
                )
            else:
                size = rng.choice(CUT_DOWNLOAD_SIZES)
                plan = Plan(
                    "cut_download",
                    size,
                    cut_at=rng.randrange(size * 4 // 5),
                    rst=rng.random() < 0.5,
                    pace_ms=2,
                )
        else:
            kind = rng.choice(("hello", "upload", "download"))
            if kind == "upload":
                plan = Plan(
                    kind,
                    rng.choice(UPLOAD_SIZES),
                    chunked=rng.random() < 0.25,
                    seed=rng.getrandbits(32),
                )
            elif kind == "download":
                plan = Plan(kind, rng.choice(DOWNLOAD_SIZES), pace_ms=int(rng.random() < 0.25))
            else:
                plan = Plan(kind)
        plans.append(plan)
    return plans


def _download_line(plan: Plan) -> bytes:
    pace = f"&pace_ms={plan.pace_ms}" if plan.pace_ms else ""
    return f"GET /download?size={plan.size}{pace} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def _upload_head(plan: Plan) -> bytes:
    framing = "Transfer-Encoding: chunked" if plan.chunked else f"Content-Length: {plan.size}"
    return (
        f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
    ).encode()


async def _send_body(writer: asyncio.StreamWriter, body: bytes, chunked: bool) -> None:
    for start in range(0, len(body), 16 * KIB):
        piece = body[start : start + 16 * KIB]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        await writer.drain()


class _Failure(Exception):
    """A request that should have succeeded did not."""


class _Stale(Exception):
    """A reused keep-alive connection was closed before any byte of the response."""


@dataclass
class Tally:
    completed: int = 0
    aborted: int = 0  # cut off by the client, by design
    retries: int = 0  # stale keep-alive connections retried on a new one
    errors: list[str] = field(default_factory=list)


class Driver:
    """Runs plans against one server with a fixed number of concurrent connections."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.digests: dict[int, str] = {}
        self.tally = Tally()

    def _digest(self, size: int) -> str:
        digest = self.digests.get(size)
        if digest is None:
            digest = self.digests[size] = download_digest(size)
        return digest

    async def run(self, plans: list[Plan], concurrency: int) -> Tally:
        queue = list(reversed(plans))
        await asyncio.gather(*(self._worker(queue) for _ in range(concurrency)))
        return self.tally

    async def _worker(self, queue: list[Plan]) -> None:
        conn: Conn | None = None
        try:
            while queue:
                plan = queue.pop()
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        conn = await self._one(plan, conn)
                except (_Failure, TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                    self.tally.errors.append(f"{plan}: {type(exc).__name__}: {exc}")
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.writer.close()

    async def _one(self, plan: Plan, conn: Conn | None) -> Conn | None:
        if plan.kind == "cut_upload":
            await self._cut_upload(plan)
            return conn
        if plan.kind == "cut_download":
            await self._cut_download(plan)
            return conn
        if conn is not None:
            try:
                return await self._exchange(plan, conn)
            except _Stale:
                conn.close()
                self.tally.retries += 1
        return await self._exchange(plan, await open_conn(self.port))

    async def _exchange(self, plan: Plan, conn: Conn) -> Conn | None:
        reused, conn.used = conn.used, True
        digest = hashlib.sha256()
        body = b""
        try:
            if plan.kind == "upload":
                body = random.Random(plan.seed).randbytes(plan.size)
                conn.writer.write(_upload_head(plan))
                await _send_body(conn.writer, body, plan.chunked)
                if plan.chunked:
                    conn.writer.write(b"0\r\n\r\n")
            elif plan.kind == "download":
                conn.writer.write(_download_line(plan))
            else:
                conn.writer.write(f"GET /hello HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            await conn.writer.drain()
            response = await read_response(conn.reader, digest.update)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if reused and not partial:
                raise _Stale from exc
            raise
        self._check(plan, response, digest, body)
        self.tally.completed += 1
        if response.keep_alive:
            return conn
        conn.writer.close()
        return None

    def _check(self, plan: Plan, response: HTTPResponse, digest: Any, body: bytes) -> None:
        if response.status != 200:
            raise _Failure(f"status {response.status}")
        if plan.kind == "hello":
            expected = "hello"
            got = "hello" if digest.hexdigest() == hashlib.sha256(b"hello").hexdigest() else "other"
        elif plan.kind == "upload":
            # The echo is short: its digest is compared with the digest of the expected
            # echo rather than keeping the body.
            echo = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
            expected, got = hashlib.sha256(echo).hexdigest(), digest.hexdigest()
        else:
            expected = f"{plan.size} {self._digest(plan.size)}"
            got = f"{response.length} {digest.hexdigest()}"
        if got != expected:
            raise _Failure(f"wrong body: expected {expected!r}, got {got!r}")

    async def _cut_upload(self, plan: Plan) -> None:
        conn = await open_conn(self.port)
        try:
            body = random.Random(plan.seed).randbytes(plan.cut_at)
            conn.writer.write(_upload_head(plan))
            with contextlib.suppress(ConnectionError):
                await _send_body(conn.writer, body, plan.chunked)
        finally:
            conn.close(reset=plan.rst)
        self.tally.aborted += 1

    async def _cut_download(self, plan: Plan) -> None:
        conn = await open_conn(self.port, rcvbuf=CUT_RCVBUF)
        try:
            conn.writer.write(_download_line(plan))
            await conn.writer.drain()
            status, _ = await read_head(conn.reader)
            if status != 200:
                raise _Failure(f"status {status} before the cut")
            left = plan.cut_at
            while left > 0:
                block = await conn.reader.read(min(left, 16 * KIB))
                if not block:
                    break
                left -= len(block)
        finally:
            conn.close(reset=plan.rst)
        self.tally.aborted += 1


# ------------------------------------------------------------------------------------------
# One server: baseline, soak, settle, checks
# ------------------------------------------------------------------------------------------


@dataclass
class Report:
    server: str
    requests: int
    injected: int
    tally: Tally
    before: dict[str, Any]
    mid: dict[str, Any]  # after the first half, settled
    after: dict[str, Any]
    seconds: float
    settle_seconds: float
    rss_bound_mib: float
    log_tracebacks: int = 0
    violations: list[str] = field(default_factory=list)

    def row(self) -> list[str]:
        before, after = self.before, self.after
        closes = after["closes"] - before["closes"]
        iterables = after["iterables"] - before["iterables"]
        return [
            self.server,
            str(self.requests),
            str(self.tally.completed),
            str(self.tally.aborted),
            str(self.injected),
            str(
                after["stopped_early"]
                + after["upload_aborted"]
                - before["stopped_early"]
                - before["upload_aborted"]
            ),
            f"{closes}/{iterables}",
            f"{before['threads']}->{after['threads']}",
            f"{before['tasks']}->{after['tasks']}",
            f"{before['rss_kib'] / KIB:.1f}->{self.mid['rss_kib'] / KIB:.1f}"
            f"->{after['rss_kib'] / KIB:.1f}",
            f"{before['gc_objects']}->{after['gc_objects']}",
            f"{self.requests / self.seconds:.0f}",
            str(self.log_tracebacks),
            str(len(self.violations)),
        ]


HEADER: Final = [
    "server",
    "requests",
    "completed",
    "aborted",
    "injected",
    "app saw cut",
    "close()/iterables",
    "threads",
    "tasks",
    "RSS MiB (half way)",
    "gc objects",
    "req/s",
    "log tracebacks",
    "violations",
]


def _quiet(stats: dict[str, Any]) -> bool:
    """No request runs, every call ended, every iterable was closed."""
    return bool(
        stats["active"] == 0
        and stats["calls"] == stats["ended"]
        and stats["closes"] == stats["iterables"]
    )


def _thread_violations(
    spec: ServerSpec, before: dict[str, Any], after: dict[str, Any]
) -> list[str]:
    found = []
    families = set(before["thread_families"]) | set(after["thread_families"])
    for family in sorted(families):
        was = before["thread_families"].get(family, 0)
        now = after["thread_families"].get(family, 0)
        if family in spec.pools:
            bound = spec.pools[family]
            limit = after.get("pool_max", 0) if bound is None else bound
            if now > limit:
                found.append(f"pool threads {family!r}: {now} > bound {limit}")
        elif now != was:
            found.append(f"threads {family!r}: {was} before, {now} after")
    return found


def _object_slack(requests: int) -> int:
    """How many more live objects (after a collection) the soak may leave: a few hundred
    for one-off caches; a leak of one object per request or more shows at 10,000."""
    return max(500, requests // 10)


def check(report: Report, spec: ServerSpec) -> list[str]:
    """What the soak promised and did not hold (empty: all good)."""
    before, after, tally = report.before, report.after, report.tally
    found = [f"request failed: {error}" for error in tally.errors[:10]]
    if len(tally.errors) > 10:
        found.append(f"... and {len(tally.errors) - 10} more failed requests")
    if tally.completed + tally.aborted + len(tally.errors) != report.requests:
        found.append("requests unaccounted for")
    if not _quiet(after):
        found.append(
            f"not settled: {after['active']} active, {after['calls']} calls / "
            f"{after['ended']} ended, {after['closes']} close() / {after['iterables']} iterables"
        )
    if after["close_off_thread"]:
        found.append(f"{after['close_off_thread']} close() calls off the app's thread")
    found += _thread_violations(spec, before, after)
    if after["tasks"] > before["tasks"]:
        found.append(f"tasks: {before['tasks']} before, {after['tasks']} after")
    objects = after["gc_objects"] - before["gc_objects"]
    if objects > _object_slack(report.requests):
        found.append(f"gc objects grew by {objects} > {_object_slack(report.requests)}")
    growth = (after["rss_kib"] - before["rss_kib"]) / KIB
    if growth > report.rss_bound_mib:
        found.append(f"RSS grew {growth:.1f} MiB > {report.rss_bound_mib} MiB")
    late = (after["rss_kib"] - report.mid["rss_kib"]) / KIB
    if late > report.rss_bound_mib / 2:
        found.append(f"RSS grew {late:.1f} MiB in the second half > {report.rss_bound_mib / 2} MiB")
    return found


async def _settle(port: int, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll /__stats until ``until(stats)`` or SETTLE_TIMEOUT; the last stats."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        stats = await fetch_stats(port)
        if until(stats) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.25)


async def _soak(
    spec: ServerSpec, port: int, requests: int, seed: int, concurrency: int, rss_bound: float
) -> Report:
    # Warm-up: the same mix at the same concurrency, so pools, caches and arenas are built
    # before the baseline.
    warmup = max(concurrency * 4, min(500, requests // 10))
    await Driver(port).run(make_plans(warmup, seed + 1), concurrency)
    await _settle(port, _quiet)
    await asyncio.sleep(spec.idle_wait)
    # The baseline: quiet, and two readings of the task count in a row agree.
    previous = await _settle(port, _quiet)
    while True:
        await asyncio.sleep(0.5)
        before = await _settle(port, _quiet)
        if before["tasks"] == previous["tasks"]:
            break
        previous = before
    plans = make_plans(requests, seed)

    def settled(stats: dict[str, Any]) -> bool:
        return (
            _quiet(stats)
            and stats["tasks"] <= before["tasks"]
            and not _thread_violations(spec, before, stats)
        )

    # Two halves, the server settled after each: memory that grows for good in the first
    # half only is warm-up (arenas, buffers, pool threads); a leak grows in both.
    driver = Driver(port)
    seconds = 0.0
    halves = []
    for half in (plans[: requests // 2], plans[requests // 2 :]):
        started = time.perf_counter()
        tally = await driver.run(half, concurrency)
        seconds += time.perf_counter() - started
        settle_start = time.perf_counter()
        await asyncio.sleep(spec.idle_wait)
        halves.append(await _settle(port, settled))
    mid, after = halves
    report = Report(
        spec.name,
        requests,
        sum(plan.kind.startswith("cut_") for plan in plans),
        tally,
        before,
        mid,
        after,
        seconds,
        time.perf_counter() - settle_start,
        rss_bound,
    )
    report.violations = check(report, spec)
    return report


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when it is installed (the client must not be the bottleneck)."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - uvloop is a dev dependency
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def soak_server(
    name: str,
    requests: int,
    *,
    seed: int = 1,
    concurrency: int = 24,
    rss_bound: float = 20.0,
    malloc_arenas: int = MALLOC_ARENAS,
    log_dir: Path | None = None,
) -> Report:
    """Start server ``name`` (a key of SERVERS), soak it, stop it; the report.

    The server runs with ``MALLOC_ARENA_MAX=<malloc_arenas>`` (0: glibc's default). With
    ``log_dir``, the server's log is kept there as ``soak-<name>.log``.
    """
    spec = SERVERS[name]
    port = free_port()
    env = {"MALLOC_ARENA_MAX": str(malloc_arenas)} if malloc_arenas else None
    with serve(spec.argv(port), port, env=env, timeout=60) as log:
        report: Report = run_async(
            lambda: _soak(spec, port, requests, seed, concurrency, rss_bound)
        )
        text = log.read_text(errors="replace")
        report.log_tracebacks = text.count("Traceback")
        if log_dir is not None:
            (log_dir / f"soak-{name}.log").write_text(text)
    return report


def print_table(reports: list[Report]) -> None:
    rows = [HEADER, *(report.row() for report in reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for index, row in enumerate(rows):
        print(
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            + " |"
        )
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_soak")
    parser.add_argument("--quick", action="store_true", help="300 requests per server")
    parser.add_argument("--requests", type=int, default=None, help="per server (10000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--rss-bound", type=float, default=20.0, help="MiB of RSS growth")
    parser.add_argument(
        "--malloc-arenas",
        type=int,
        default=MALLOC_ARENAS,
        help=f"MALLOC_ARENA_MAX of the servers ({MALLOC_ARENAS}; 0: glibc's default)",
    )
    parser.add_argument("--logs", type=Path, default=None, help="keep server logs here")
    parser.add_argument(
        "--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS), metavar="NAME"
    )
    args = parser.parse_args(argv)
    requests = args.requests or (300 if args.quick else 10_000)
    print(
        f"## soak: {requests} requests per server, {args.concurrency} concurrent, "
        f"a third cut off by the client (seed {args.seed}); RSS bound +{args.rss_bound} MiB, "
        f"MALLOC_ARENA_MAX={args.malloc_arenas or 'default'}"
    )
    reports = []
    for name in args.servers:
        report = soak_server(
            name,
            requests,
            seed=args.seed,
            concurrency=args.concurrency,
            rss_bound=args.rss_bound,
            malloc_arenas=args.malloc_arenas,
            log_dir=args.logs,
        )
        reports.append(report)
    print_table(reports)
    failed = False
    for report in reports:
        for violation in report.violations:
            failed = True
            print(f"VIOLATION {report.server}: {violation}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
