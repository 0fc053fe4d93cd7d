"""ASGI app on a WSGI server, in process: crossgate's ASGIToWSGI against a2wsgi's ASGIMiddleware.

Requests are driven from 16 threads, as a threaded WSGI server would (gunicorn gthread,
waitress). Workloads: hello-world, a 4 MiB response streamed in 16 KiB chunks, a 1 MiB
upload. A separate check streams 64 MiB (1 GiB with ``--gib``) through crossgate under
tracemalloc and reports its peak, which must stay under 16 MiB.

Run: ``python -m benchmarks.bench_asgi_to_wsgi [--quick] [--gib]``.
"""

from __future__ import annotations

import argparse
import gc
import io
import tracemalloc
import wsgiref.util
from collections.abc import Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi import ASGIMiddleware

from benchmarks.harness import Case, Row, bench, print_table
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi

__all__ = ["main"]

THREADS = 16
CHUNK = 16 * 1024
STREAM_SIZE = 4 * 1024 * 1024
UPLOAD_SIZE = 1024 * 1024
MEMORY_LIMIT = 16 * 1024 * 1024
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"12")]
STREAM_HEADERS = [(b"content-type", b"application/octet-stream")]

Scope = MutableMapping[str, Any]
WSGI = Callable[..., Iterable[bytes]]


async def hello(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"Hello world!"})


def streamer(total: int, *, fresh: bool = False) -> Any:
    """Streams ``total`` bytes in 16 KiB chunks; ``fresh``: a new bytes object per chunk,
    so that tracemalloc sees every chunk (an app reading a file or a socket does that).
    """
    chunk = b"x" * CHUNK
    count = total // CHUNK

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
        for _ in range(count):
            body = bytes(CHUNK) if fresh else chunk
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


async def upload(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
    await send({"type": "http.response.body", "body": body})


def _environ(method: str = "GET", body: bytes = b"") -> dict[str, Any]:
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, PATH_INFO="/", QUERY_STRING="")
    environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def request(app: WSGI, template: dict[str, Any], body: bytes = b"") -> int:
    """One request as a WSGI server makes it: a fresh environ, the body read and closed."""
    environ = template.copy()
    environ["wsgi.input"] = io.BytesIO(body)
    iterable = app(environ, _start_response)
    size = 0
    try:
        for chunk in iterable:
            size += len(chunk)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return size


def threaded(
    pool: ThreadPoolExecutor, app: WSGI, template: dict[str, Any], body: bytes, expect: int
) -> Callable[[int], None]:
    """A harness body that runs ``n`` requests spread over the pool's 16 threads."""

    def worker(count: int) -> None:
        for _ in range(count):
            size = request(app, template, body)
            if size != expect:
                raise AssertionError(f"got {size} bytes, expected {expect}")

    def run(n: int) -> None:
        share, extra = divmod(n, THREADS)
        counts = [share + (1 if index < extra else 0) for index in range(THREADS)]
        for future in [pool.submit(worker, count) for count in counts if count]:
            future.result()

    return run


def memory_check(total: int) -> Row:
    """Stream ``total`` bytes through crossgate once, traced; report the peak."""
    app = asgi_to_wsgi(streamer(total, fresh=True), lifespan="off")
    template = _environ()
    request(app, template)  # warm up: the portal and its loop exist before tracing
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        size = request(app, template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        app.close()
    assert size == total, size
    label = f"stream {total >> 20} MiB (memory)"
    row = Row(label, "crossgate", 0.0, [], peak_kib=peak / 1024)
    verdict = "OK" if peak < MEMORY_LIMIT else "OVER"
    print(f"\n{label}: peak traced {peak / 1024:,.0f} KiB ({verdict}, limit 16 MiB)")
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_asgi_to_wsgi")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    parser.add_argument("--gib", action="store_true", help="also stream 1 GiB (memory check)")
    args, _ = parser.parse_known_args(argv)
    rounds = 3 if args.quick else 7
    scale = 0.1 if args.quick else 1.0

    workloads: list[tuple[str, Any, str, bytes, int, int]] = [
        ("hello-world", hello, "GET", b"", 12, 4000),
        ("stream 4 MiB / 16 KiB", streamer(STREAM_SIZE), "GET", b"", STREAM_SIZE, 64),
        ("upload 1 MiB", upload, "POST", b"u" * UPLOAD_SIZE, 7, 200),
    ]
    rows: list[Row] = []
    with ThreadPoolExecutor(THREADS, thread_name_prefix="bench-server") as pool:
        for label, app, method, body, expect, number in workloads:
            ours = asgi_to_wsgi(app, lifespan="off")
            theirs = ASGIMiddleware(app)
            template = _environ(method, body)
            cases = [
                Case("crossgate", threaded(pool, ours, template, body, expect), ours=True),
                Case("a2wsgi", threaded(pool, theirs, template, body, expect)),
            ]
            rows += bench(
                f"{label}, {THREADS} threads",
                cases,
                number=max(THREADS, int(number * scale)),
                rounds=rounds,
                memory_number=None,
            )
            ours.close()
    print_table(rows, title="ASGI app on a WSGI server (in process)")
    memory_check(64 * 1024 * 1024)
    if args.gib:
        memory_check(1024 * 1024 * 1024)


if __name__ == "__main__":
    main()
