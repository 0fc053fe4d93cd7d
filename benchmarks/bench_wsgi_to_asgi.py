"""In-process benchmark of WSGI -> ASGI adapters: crossgate against its peers, same run.

No sockets: a minimal ASGI "server" drives each adapter (receive() hands out the request
body, then waits for the response to end and reports http.disconnect, as uvicorn does).
Workloads, each on asyncio's loop and on uvloop:

* hello-world: a list body of 13 bytes;
* stream 4 MiB: a generator of 256 chunks of 16 KiB;
* upload 1 MiB: 16 messages of 64 KiB, read by the application with ``read()``.

Then a memory check under tracemalloc: a 64 MiB streamed response through every adapter
(crossgate's peak must stay under 16 MiB; the peers' show what an unbounded queue costs);
``--gib`` streams 1 GiB through crossgate as well. ``--quick`` for a smoke run.

Run: ``.venv/bin/python -m benchmarks.bench_wsgi_to_asgi [--quick] [--gib]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tracemalloc
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from benchmarks.harness import Case, Row, bench, print_table, run_async
from crossgate._types import Environ, Message, StartResponse, WSGIApp
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI

# The peers, each optional: a missing one is left out of the tables.
A2wsgiMiddleware: Any
AsgirefWSGIToASGI: Any
UvicornWSGI: Any
HypercornWSGI: Any
StarletteWSGI: Any
uvloop: Any
try:
    from a2wsgi import WSGIMiddleware as A2wsgiMiddleware
except ImportError:
    A2wsgiMiddleware = None
try:
    from asgiref.wsgi import WsgiToAsgi as AsgirefWSGIToASGI
except ImportError:
    AsgirefWSGIToASGI = None
try:
    from uvicorn.middleware.wsgi import _WSGIMiddleware as UvicornWSGI
except ImportError:
    UvicornWSGI = None
try:
    from hypercorn.middleware import AsyncioWSGIMiddleware as HypercornWSGI
except ImportError:
    HypercornWSGI = None
try:
    with warnings.catch_warnings():  # deprecated in favour of a2wsgi, still a peer
        warnings.simplefilter("ignore")
        from starlette.middleware.wsgi import WSGIMiddleware as StarletteWSGI
except ImportError:
    StarletteWSGI = None
try:
    import uvloop
except ImportError:
    uvloop = None

Scope = dict[str, Any]
#: Any ASGI app, crossgate's or a peer's (their own type annotations differ).
ASGIApp = Any
Runner = Callable[[int], Awaitable[None]]

KIB = 1024
MIB = 1024 * KIB
HELLO = b"Hello, world!"
CHUNK = b"x" * (16 * KIB)
UPLOAD_PART = b"u" * (64 * KIB)
UPLOAD_PARTS = 16
MEMORY_LIMIT = 16 * MIB


# ------------------------------------------------------------------------------ WSGI apps


def hello_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def fresh_streaming_app(chunks: int) -> WSGIApp:
    """Like :func:`streaming_app`, but every chunk is a new object, as real bodies are:
    what tracemalloc sees then includes every chunk the adapter keeps alive."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        size = len(CHUNK)
        for _ in range(chunks):
            yield b"x" * size

    return app


def streaming_app(chunks: int) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(chunks):
            yield CHUNK

    return app


def upload_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(len(body)).encode()]


# --------------------------------------------------------------------------- contenders


def contenders(app: WSGIApp) -> list[tuple[str, Any, bool]]:
    """Every adapter that is installed, wrapping ``app``; crossgate first."""
    found: list[tuple[str, Any, bool]] = [("crossgate", WSGIToASGI(app), True)]
    if A2wsgiMiddleware is not None:
        found.append(("a2wsgi", A2wsgiMiddleware(app, workers=40), False))
    if AsgirefWSGIToASGI is not None:
        found.append(("asgiref", AsgirefWSGIToASGI(app), False))
    if UvicornWSGI is not None:
        found.append(("uvicorn", UvicornWSGI(app, workers=40), False))
    if HypercornWSGI is not None:
        found.append(("hypercorn", HypercornWSGI(app, max_body_size=4 * MIB), False))
    if StarletteWSGI is not None:
        found.append(("starlette", StarletteWSGI(app), False))
    return found


# ------------------------------------------------------------------------ the "server"


def make_scope(method: str, headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


async def one_request(app: ASGIApp, scope: Scope, body: list[bytes], expect: int) -> None:
    """Drive one request; check the response body length is ``expect``."""
    parts = iter(body)
    remaining = len(body)
    done = asyncio.Event()
    received = 0

    async def receive() -> Message:
        nonlocal remaining
        if remaining:
            remaining -= 1
            return {"type": "http.request", "body": next(parts), "more_body": remaining > 0}
        if not body:
            body.append(b"")  # an empty body is one message with more_body False
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal received
        if message["type"] == "http.response.body":
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(dict(scope), receive, send)
    if received != expect:
        raise AssertionError(f"{app!r} sent {received} body bytes, expected {expect}")


def workload(
    app: ASGIApp, scope: Scope, body: list[bytes], expect: int
) -> Callable[[int], Awaitable[None]]:
    async def run(n: int) -> None:
        for _ in range(n):
            await one_request(app, scope, list(body), expect)

    return run


def loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    found: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)
    ]
    if uvloop is not None:
        found.append(("uvloop", uvloop.new_event_loop))
    return found


# ------------------------------------------------------------------------------- runs


def run_workloads(quick: bool) -> list[Row]:
    get = make_scope("GET", [])
    upload_headers = [(b"content-length", str(UPLOAD_PARTS * len(UPLOAD_PART)).encode())]
    post = make_scope("POST", upload_headers)
    specs: list[tuple[str, WSGIApp, Scope, list[bytes], int, int]] = [
        ("hello-world", hello_app, get, [], len(HELLO), 60 if quick else 400),
        ("stream 4 MiB", streaming_app(256), get, [], 256 * len(CHUNK), 2 if quick else 8),
        (
            "upload 1 MiB",
            upload_app,
            post,
            [UPLOAD_PART] * UPLOAD_PARTS,
            len(str(UPLOAD_PARTS * len(UPLOAD_PART))),
            10 if quick else 60,
        ),
    ]
    rows: list[Row] = []
    for loop_name, make_loop in loops():
        for name, app, scope, body, expect, number in specs:
            cases = [
                Case(who, run_async(make_loop, workload(adapter, scope, body, expect)), ours)
                for who, adapter, ours in contenders(app)
            ]
            rows += bench(
                f"{name} ({loop_name})",
                cases,
                number=number,
                rounds=3 if quick else 7,
                memory_number=None,
            )
    return rows


def streamed_peak(
    adapter: ASGIApp, total: int, make_loop: Callable[[], asyncio.AbstractEventLoop]
) -> float:
    """Peak traced memory (bytes) while ``adapter`` streams ``total`` bytes of fresh chunks."""
    loop = make_loop()
    try:
        gc.collect()
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            loop.run_until_complete(one_request(adapter, make_scope("GET", []), [], total))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        loop.close()
    return float(peak)


def memory_table(sizes: list[int], peers_up_to: int) -> list[str]:
    """Print peak memory while streaming; crossgate at every size, peers up to a size."""
    failures = []
    print("\n### Streamed response, peak traced memory (fresh 16 KiB chunks, tracemalloc)\n")
    print("| streamed | loop | implementation | peak traced MiB | crossgate limit MiB |")
    print("|---:|---|---|---:|---:|")
    for size in sizes:
        app = fresh_streaming_app(size // len(CHUNK))
        for loop_name, make_loop in loops():
            for name, adapter, ours in contenders(app):
                if not ours and size > peers_up_to:
                    continue
                peak = streamed_peak(adapter, size, make_loop)
                limit = f"{MEMORY_LIMIT // MIB}" if ours else "—"
                print(f"| {size // MIB} MiB | {loop_name} | {name} | {peak / MIB:,.2f} | {limit} |")
                if ours and peak >= MEMORY_LIMIT:
                    failures.append(f"streaming {size // MIB} MiB peaked at {peak / MIB:.1f} MiB")
    return failures


def check_targets(rows: list[Row]) -> list[str]:
    """The issue's targets: >= 3x a2wsgi (hello), >= 5x (stream), >= 1.0x every peer."""
    failures = []
    for row in rows:
        if row.ratio is None or row.name == "crossgate":
            continue
        need = 1.0
        if row.name == "a2wsgi" and row.workload.startswith("hello-world"):
            need = 3.0
        elif row.name == "a2wsgi" and row.workload.startswith("stream"):
            need = 5.0
        if row.ratio < need:
            failures.append(f"{row.workload}: {row.name} ratio {row.ratio:.2f}x < {need}x")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, smoke run")
    parser.add_argument("--gib", action="store_true", help="also stream 1 GiB under tracemalloc")
    args = parser.parse_args(argv)

    rows = run_workloads(args.quick)
    print_table(rows, title="WSGI app on ASGI, in process (ratio = peer time / crossgate time)")

    failures = check_targets(rows)
    sizes = [64 * MIB] + ([1024 * MIB] if args.gib else [])
    failures += memory_table(sizes, peers_up_to=16 * MIB if args.quick else 64 * MIB)
    print()
    if failures:
        print("Targets missed:")
        for failure in failures:
            print(f"- {failure}")
        return 1
    print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
