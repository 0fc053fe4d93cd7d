"""Soak and faults on real servers over 127.0.0.1 (apps: ``benchmarks/soak_apps.py``).

* A CI-sized soak of each adapter (``benchmarks.bench_soak``: a third of the clients cut
  off mid-upload or mid-download; every other response exactly right; every ``close()``
  called; threads, loop tasks and RSS back to their baseline), and the full 10,000
  request soak on every server, marked slow.
* Faults the in-process tests (tests/adapters) cannot show, on the real servers: a
  saturated pool queues and answers everything; an app error at each point gives a 500
  or an aborted response, is logged, and leaves the server healthy; an adapter used in a
  gunicorn master before ``fork()`` serves in every worker; a slow reader of a 64 MiB
  download holds the server's memory down (backpressure all the way to the app).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from benchmarks.bench_soak import (
    SERVERS,
    Driver,
    Report,
    fetch_stats,
    make_plans,
    open_conn,
    print_table,
    read_head,
    read_response,
    run_async,
    soak_server,
)
from benchmarks.soak_apps import FAULT_POINTS

from tests.integration.support import free_port, gunicorn_argv, serve, uvicorn_argv

pytestmark = pytest.mark.integration

T = TypeVar("T")

#: Requests per server in the CI soak: enough for ~130 cut-offs, a few seconds each.
CI_REQUESTS = 400
MIB = 1024 * 1024


def run(coro: Callable[[], Coroutine[Any, Any, T]], timeout: float = 60.0) -> T:
    """Run ``coro()`` on a new loop, bounded by ``timeout`` seconds."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro()

    return run_async(bounded)


def describe(report: Report) -> str:
    print_table([report])
    return "\n".join(report.violations)


# ------------------------------------------------------------------------------------------
# Soak
# ------------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-gthread"])
def test_soak_with_a_third_of_clients_leaving(server: str) -> None:
    """CI-sized soak: every response right or cut off on purpose, nothing left behind."""
    report = soak_server(server, CI_REQUESTS, seed=7)
    assert report.violations == [], describe(report)
    assert report.tally.completed + report.tally.aborted == CI_REQUESTS
    # The cut-offs reached the app both ways: downloads stopped early, uploads cut short
    # (not every one does: a short body can sit whole in the socket buffers before the
    # client leaves).
    for seen in ("stopped_early", "upload_aborted"):
        assert report.after[seen] > report.before[seen], seen


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("server", list(SERVERS))
def test_full_soak(server: str) -> None:
    """The issue's figure: 10,000 requests through the adapter on each server."""
    report = soak_server(server, 10_000, seed=11)
    assert report.violations == [], describe(report)


# ------------------------------------------------------------------------------------------
# Fault tests: one server per direction, a pool of two
# ------------------------------------------------------------------------------------------


@dataclass
class Server:
    direction: str
    port: int
    log: Path

    def stats(self, query: str = "") -> dict[str, Any]:
        return run(lambda: fetch_stats(self.port, query))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _uvicorn_argv(port: int) -> list[str]:
    return uvicorn_argv("benchmarks.soak_apps:wsgi_application", port, "--no-access-log")


def _gunicorn_argv(port: int) -> list[str]:
    return gunicorn_argv("benchmarks.soak_apps:asgi_application", port)


@pytest.fixture(scope="module", params=["wsgi_to_asgi", "asgi_to_wsgi"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """uvicorn with a WSGI pool of 2 threads, or gunicorn gthread with 2 threads."""
    direction: str = request.param
    port = free_port()
    argv = _uvicorn_argv if direction == "wsgi_to_asgi" else _gunicorn_argv
    env = {"SOAK_WSGI_WORKERS": "2", "SOAK_BUDGET": os.environ.get("SOAK_BUDGET", "")}
    with serve(argv(port), port, env={k: v for k, v in env.items() if v}, timeout=60) as log:
        yield Server(direction, port, log)


async def _post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    conn = await open_conn(port)
    try:
        conn.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        await conn.writer.drain()
        parts: list[bytes] = []
        response = await read_response(conn.reader, parts.append)
    finally:
        conn.close()
    return response.status, b"".join(parts)


def _echo(body: bytes) -> bytes:
    return f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()


@pytest.mark.timeout(120)
def test_saturated_pool_queues_every_request(server: Server) -> None:
    """20 concurrent slow requests, each hopping across the bridge mid-request, on two
    threads: they queue (never more than two at once) and all are answered."""
    server.stats("reset_peak=1")
    bodies = [random.Random(i).randbytes(100_000) for i in range(20)]

    async def all_of_them() -> list[tuple[int, bytes]]:
        return await asyncio.gather(*(_post(server.port, "/slow?ms=300", body) for body in bodies))

    answers = run(all_of_them, timeout=90)
    assert answers == [(200, _echo(body)) for body in bodies]
    stats = server.stats()
    assert stats["peak_active"] == 2  # saturated, and the bound held
    assert stats["active"] == 0


async def _get(port: int, path: str) -> tuple[int, bytes, bool]:
    """Status, body and whether the response arrived whole (False: aborted mid-body)."""
    conn = await open_conn(port)
    parts: list[bytes] = []
    status = -1
    try:
        conn.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        await conn.writer.drain()
        status, headers = await read_head(conn.reader)
        if "chunked" not in headers.get("transfer-encoding", ""):
            length = int(headers.get("content-length", "-1"))
            body = await conn.reader.read() if length < 0 else await conn.reader.readexactly(length)
            return status, body, True
        while True:
            size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if not size:
                return status, b"".join(parts), True
            parts.append((await conn.reader.readexactly(size + 2))[:-2])
    except (asyncio.IncompleteReadError, ConnectionError):
        return status, b"".join(parts), False
    finally:
        conn.close()


def _wait_for_log(server: Server, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = server.log_text()
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("at", FAULT_POINTS)
def test_app_error_at_each_point_is_contained(server: Server, at: str) -> None:
    """An app that raises gives a 500 (nothing sent yet), an aborted response (mid-body)
    or a whole one (after the body); the error is logged with its traceback; the server
    process stays up and answers the next request."""
    pid = server.stats()["pid"]
    status, body, whole = run(lambda: _get(server.port, f"/fault?at={at}"))
    if at in ("before_start", "after_start"):
        # PEP 3333: headers are not sent before the first non-empty body chunk, and
        # asgi_to_wsgi holds http.response.start until the first body: a 500 replaces it.
        assert (status, body, whole) == (500, b"Internal Server Error", True)
    elif at == "mid_body":
        # Either the partial body went out and the response is cut (the client must not
        # take it for a whole one), or the error overtook it and a 500 replaced it.
        assert (status == 200 and not whole) or (status, whole) == (500, True)
    else:
        assert (status, body, whole) == (200, b"complete body", True)
    log = _wait_for_log(server, f"soak-fault-{at}")
    assert f"RuntimeError: soak-fault-{at}" in log
    assert run(lambda: _get(server.port, "/hello")) == (200, b"hello", True)
    stats = server.stats()
    assert stats["pid"] == pid  # the same process: no worker died and was replaced
    assert stats["active"] == 0


#: The slow reader's download, far larger than any buffer on the way.
SLOW_SIZE = 64 * MIB
#: How far the server's RSS may grow while it serves the slow reader.
SLOW_RSS_BOUND = 32 * MIB


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.timeout(90)
def test_slow_reader_holds_server_memory_down(server: Server) -> None:
    """A client reading a 64 MiB download at ~1 MiB/s for four seconds: the server's RSS
    stays within 32 MiB of its baseline (backpressure reaches the app), and when the
    client leaves the app's stream stops and is closed."""
    before = server.stats()
    pid = before["pid"]
    baseline = _rss(pid)

    async def read_slowly() -> tuple[int, int]:
        conn = await open_conn(server.port, rcvbuf=64 * 1024)
        peak = baseline
        received = 0
        try:
            conn.writer.write(
                f"GET /download?size={SLOW_SIZE}&chunk=65536 HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\n\r\n".encode()
            )
            await conn.writer.drain()
            status, _ = await read_head(conn.reader)
            assert status == 200
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                received += len(await conn.reader.read(64 * 1024))
                peak = max(peak, _rss(pid))
                await asyncio.sleep(0.05)
        finally:
            conn.close()
        return peak, received

    peak, received = run(read_slowly)
    assert 0 < received < SLOW_SIZE // 4  # the client really was slow
    print(f"server RSS grew {(peak - baseline) / MIB:.1f} MiB serving the slow reader")
    assert peak - baseline < SLOW_RSS_BOUND, f"RSS grew {(peak - baseline) / MIB:.1f} MiB"

    # The disconnect travels: the download stops early and its iterable is closed.
    deadline = time.monotonic() + 20
    while True:
        after = server.stats()
        stopped = after["stopped_early"] > before["stopped_early"]
        settled = after["closes"] == after["iterables"] and after["active"] == 0
        if (stopped and settled) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stopped
    assert after["closes"] == after["iterables"]
    assert after["active"] == 0


# ------------------------------------------------------------------------------------------
# fork() after first use: gunicorn --preload, the adapter used in the master
# ------------------------------------------------------------------------------------------

PREFORK = {
    "asgi_to_wsgi": ("sync", "preforked_asgi_application()"),
    "wsgi_to_asgi": ("uvicorn.workers.UvicornWorker", "preforked_wsgi_application()"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("direction", list(PREFORK))
def test_adapter_used_before_fork_serves_in_every_worker(direction: str) -> None:
    """The gunicorn master runs a request through the adapter (so its portal thread and
    lifespan, or its worker pool, exist) and then forks two workers: each builds its own
    and serves requests correctly."""
    worker_class, factory = PREFORK[direction]
    port = free_port()
    # One thread: gunicorn turns a sync worker with more threads into a gthread one.
    argv = gunicorn_argv(
        f"benchmarks.soak_apps:{factory}",
        port,
        workers=2,
        worker_class=worker_class,
        threads=1,
        extra=["--preload"],
    )
    with serve(argv, port, timeout=60):
        tally = run(lambda: Driver(port).run(make_plans(80, seed=3), 8), timeout=90)
        assert tally.errors == []
        assert tally.completed + tally.aborted == 80
        # Concurrent calls that block their worker's loop (or its only thread) for a
        # moment reach both workers; a few rounds make that certain enough.
        seen: dict[int, dict[str, Any]] = {}
        for _ in range(20):

            async def round_of_stats() -> list[dict[str, Any]]:
                return await asyncio.gather(*(fetch_stats(port, "block_ms=300") for _ in range(4)))

            for stats in run(round_of_stats):
                seen[stats["pid"]] = stats
            if len(seen) >= 2:
                break
        assert len(seen) == 2, f"only worker(s) {sorted(seen)} answered"
        for pid, stats in seen.items():
            (master,) = stats["warmed_in"]  # inherited from the master, which warmed up
            assert master != pid
            if direction == "asgi_to_wsgi":
                # The master ran the app's lifespan startup, and each worker its own.
                assert stats["startup_pids"] == [master, pid]
                assert stats["thread_families"].get("crossgate-portal") == 1
            else:
                # The master's pool thread did not survive the fork; each worker built
                # its pool anew.
                assert stats["thread_families"].get("crossgate-wsgi", 0) == stats["pool_threads"]
