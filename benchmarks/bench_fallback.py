"""In-process cost of ``crossgate.fallback``: the same apps composed by refusal and by prefix.

No sockets: a minimal ASGI "server" drives each setup (as in ``bench_wsgi_to_asgi``).
Setups, each timed in the same rounds (medians):

* ``fallback``: ``fallback(new, old)``, ``new`` owning ``/new/...``;
* ``fallback, thread_sensitive=False``: the same without the per-request
  ``thread_sensitive()`` context that ``dispatch`` and ``fallback`` open by default;
* ``dispatch``: ``dispatch({"/new": new, "/": old})``, the same apps mounted by prefix;
* ``direct``: the app that answers, called alone (the floor).

Workloads, on asyncio's loop and on uvloop:

* ``raw``: two bare ASGI apps (what is left is the composition's own cost); the new one
  answers 404 to what is not its own, without reading the body;
* ``raw, 16 KiB body read``: the same, POST with a 16 KiB body in 4 messages that the new
  app reads before it refuses (the replay's cost);
* ``FastAPI + Flask``: a FastAPI app in front of a Flask app (through ``wsgi_to_asgi``).

Each is run for a request the new app answers and one that falls back to the old one. The
``vs dispatch`` column is the setup's time over ``dispatch``'s; ``vs direct`` the time it
adds to the app that answers, called alone.

``--uvicorn`` also serves the ``FastAPI + Flask`` setups on uvicorn (one process each, on
127.0.0.1) and times sequential requests on one keep-alive connection, the rounds
alternating between the servers: what a client waits, client and loopback included.

Run: ``.venv/bin/python -m benchmarks.bench_fallback [--quick] [--uvicorn] [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import flask
from fastapi import FastAPI

from benchmarks.harness import Case, Row, bench, close_loops, run_async
from crossgate._types import Message, Receive, Send
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.middleware.dispatch import dispatch
from crossgate.middleware.fallback import Fallback, fallback

uvloop: Any
try:
    import uvloop
except ImportError:
    uvloop = None

Scope = dict[str, Any]
ASGIApp = Any
HELLO = b"Hello, world!"
UPLOAD = [b"u" * 4096] * 4
NOT_FOUND = [(b"content-type", b"text/plain"), (b"content-length", b"9")]

# ------------------------------------------------------------------------------- apps


def raw_app(prefix: str, *, reads: bool = False) -> ASGIApp:
    """A bare ASGI app answering what is under ``prefix`` and refusing the rest (after
    reading the whole body, with ``reads``)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if not scope["path"].startswith(prefix):
            if reads:
                more = True
                while more:
                    more = (await receive()).get("more_body", False)
            await send({"type": "http.response.start", "status": 404, "headers": NOT_FOUND})
            await send({"type": "http.response.body", "body": b"Not Found"})
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": HELLO})

    return app


def fastapi_app(route: str) -> FastAPI:
    api = FastAPI()

    @api.get(route)
    async def items() -> dict[str, str]:
        return {"hello": "world"}

    return api


def flask_app() -> WSGIToASGI:
    app = flask.Flask("legacy")

    @app.route("/old/hello")
    def hello() -> str:
        return "Hello, world!"

    return WSGIToASGI(app)


# ------------------------------------------------------------------------ the "server"


def make_scope(method: str, path: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
        "state": {},
    }


async def one_request(app: ASGIApp, scope: Scope, body: list[bytes]) -> None:
    """Drive one request; the answer must be a 200."""
    parts = list(body) or [b""]
    parts.reverse()
    done = asyncio.Event()
    status = 0

    async def receive() -> Message:
        if parts:
            return {"type": "http.request", "body": parts.pop(), "more_body": bool(parts)}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body", False):
            done.set()

    await app(dict(scope), receive, send)
    if status != 200:
        raise AssertionError(f"{app!r} answered {status} to {scope['path']}")


def workload(app: ASGIApp, scope: Scope, body: list[bytes]) -> Callable[[int], Awaitable[None]]:
    async def run(n: int) -> None:
        for _ in range(n):
            await one_request(app, scope, body)

    return run


def loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    found: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)
    ]
    if uvloop is not None:
        found.append(("uvloop", uvloop.new_event_loop))
    return found


# ------------------------------------------------------------------------------- runs


def setups() -> list[tuple[str, str, ASGIApp, ASGIApp, ASGIApp, ASGIApp, list[bytes]]]:
    """(name, method, fallback, dispatch, new alone, old alone, body) per workload."""
    found = []
    new, old = raw_app("/new"), raw_app("/old")
    found.append(
        ("raw", "GET", fallback(new, old), dispatch({"/new": new, "/": old}), new, old, [])
    )
    reading = raw_app("/new", reads=True)
    found.append(
        (
            "raw, 16 KiB body read",
            "POST",
            fallback(reading, old),
            dispatch({"/new": reading, "/": old}),
            reading,
            old,
            UPLOAD,
        )
    )
    legacy = flask_app()
    found.append(
        (
            "FastAPI + Flask",
            "GET",
            fallback(fastapi_app("/new/items"), legacy),
            dispatch({"/new": fastapi_app("/items"), "/": legacy}),
            fastapi_app("/new/items"),
            legacy,
            [],
        )
    )
    return found


#: The fallback setup without its per-request thread-sensitive context.
PLAIN = "fallback, thread_sensitive=False"


def plain(composed: Fallback) -> Fallback:
    """``composed`` again, without the thread-sensitive context (its own cost, alone)."""
    return fallback(composed.primary, composed.legacy, thread_sensitive=False)


def run_workloads(quick: bool, rounds: int | None = None) -> list[tuple[Row, float | None, float]]:
    """Rows with (row, time over dispatch, µs over direct)."""
    out: list[tuple[Row, float | None, float]] = []
    for loop_name, make_loop in loops():
        for name, method, composed, mounted, new, old, body in setups():
            number = 20 if quick else (300 if "Flask" in name else 3000)
            for answered_by, path, alone in (
                ("new", "/new/items", new),
                ("old", "/old/hello", old),
            ):
                scope = make_scope(method, path)
                cases = [
                    Case(
                        "dispatch", run_async(make_loop, workload(mounted, scope, body)), ours=True
                    ),
                    Case("fallback", run_async(make_loop, workload(composed, scope, body))),
                    Case(PLAIN, run_async(make_loop, workload(plain(composed), scope, body))),
                    Case("direct", run_async(make_loop, workload(alone, scope, body))),
                ]
                label = f"{name}, {answered_by} app answers [{loop_name}]"
                rows = bench(
                    label,
                    cases,
                    number=number,
                    rounds=rounds or (3 if quick else 9),
                    memory_number=None,
                )
                floor = next(row.per_op_us for row in rows if row.name == "direct")
                out.extend((row, row.ratio, row.per_op_us - floor) for row in rows)
    return out


def print_rows(rows: list[tuple[Row, float | None, float]], *, title: str = "in process") -> None:
    """The table; ``best round`` beside the median, steadier on a shared machine."""
    print(f"\n### fallback vs dispatch, {title} (µs per request)\n")
    print("| workload | setup | median | best round | vs dispatch | vs direct (µs) |")
    print("|---|---|---:|---:|---:|---:|")
    for row, over_dispatch, over_direct in rows:
        ratio = "—" if over_dispatch is None else f"{over_dispatch:.2f}x"
        print(
            f"| {row.workload} | {row.name} | {row.per_op_us:,.1f} | {min(row.rounds_us):,.1f} "
            f"| {ratio} | {over_direct:+,.1f} |"
        )


# ------------------------------------------------------------------------ on uvicorn

#: The FastAPI + Flask setups, served by ``--uvicorn`` (``benchmarks.bench_fallback:<name>``).
served_new = fastapi_app("/new/items")
served_old = flask_app()
served_fallback = fallback(served_new, served_old)
served_plain = fallback(served_new, served_old, thread_sensitive=False)
served_dispatch = dispatch({"/new": fastapi_app("/items"), "/": served_old})
REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _uvicorn(target: str) -> Iterator[int]:
    """Serve ``benchmarks.bench_fallback:<target>`` on uvicorn; yield its port; stop it."""
    port = _free_port()
    argv = [sys.executable, "-m", "uvicorn", f"benchmarks.bench_fallback:{target}"]
    argv += ["--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"]
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn serving {target} did not start")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


def _latency_us(conn: http.client.HTTPConnection, path: str, n: int) -> float:
    """Median µs of ``n`` sequential GETs of ``path`` on ``conn``; every answer a 200."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        samples.append((time.perf_counter() - start) * 1e6)
        if response.status != 200:
            raise AssertionError(f"{path} answered {response.status}")
    return statistics.median(samples)


def run_uvicorn(quick: bool, rounds: int | None = None) -> list[tuple[Row, float | None, float]]:
    """The FastAPI + Flask setups on uvicorn, per request as a sequential client sees it."""
    n = 50 if quick else 1000
    rounds = rounds or (3 if quick else 7)
    plan = [  # (answered by, path, setup, target)
        (who, path, setup, target)
        for who, path, alone in (
            ("new", "/new/items", "served_new"),
            ("old", "/old/hello", "served_old"),
        )
        for setup, target in (
            ("dispatch", "served_dispatch"),
            ("fallback", "served_fallback"),
            (PLAIN, "served_plain"),
            ("direct", alone),
        )
    ]
    samples: dict[tuple[str, str], list[float]] = {(who, setup): [] for who, _, setup, _ in plan}
    with contextlib.ExitStack() as stack:
        ports = {t: stack.enter_context(_uvicorn(t)) for t in {t for *_, t in plan}}
        conns = {t: http.client.HTTPConnection(HOST, port, timeout=30) for t, port in ports.items()}
        for _who, path, _, target in plan:  # warm up
            _latency_us(conns[target], path, max(10, n // 10))
        for _ in range(rounds):
            for who, path, setup, target in plan:
                samples[who, setup].append(_latency_us(conns[target], path, n))
        for conn in conns.values():
            conn.close()
    out: list[tuple[Row, float | None, float]] = []
    for who in ("new", "old"):
        medians = {setup: statistics.median(samples[who, setup]) for _, _, setup, _ in plan}
        for setup, value in medians.items():
            label = f"FastAPI + Flask on uvicorn, {who} app answers"
            row = Row(label, setup, value, samples[who, setup])
            out.append((row, value / medians["dispatch"], value - medians["direct"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fallback")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    parser.add_argument("--uvicorn", action="store_true", help="also on uvicorn (127.0.0.1)")
    parser.add_argument("--rounds", type=int, help="rounds per workload (more on a busy machine)")
    args = parser.parse_args(argv)
    try:
        rows = run_workloads(args.quick, args.rounds)
    finally:
        close_loops()
    print_rows(rows)
    if args.uvicorn:
        print_rows(
            run_uvicorn(args.quick, args.rounds), title="on uvicorn, sequential keep-alive client"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
