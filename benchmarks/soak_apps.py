"""The apps that the soak (``benchmarks/bench_soak.py``) and the fault tests serve.

* ``wsgi_application``: an ASGI app for uvicorn or hypercorn. ``/__stats`` is answered on
  the server's own loop (so it can count that loop's tasks); every other path goes to a
  WSGI app through ``crossgate.wsgi_to_asgi``.
* ``asgi_application``: a WSGI app for gunicorn or waitress: an ASGI app through
  ``crossgate.asgi_to_wsgi``, inside a thin WSGI layer that counts the server's
  ``close()`` calls on the iterables crossgate returns. ``/__stats`` is answered by the
  ASGI app, on crossgate's portal loop.
* ``preforked_wsgi_application()`` and ``preforked_asgi_application()``: factories for
  ``gunicorn --preload`` that use the adapter once in the master before the fork.

Routes (both apps): ``/hello``; ``POST /upload`` (answers ``"<length> <sha256>"``);
``/download?size=N&chunk=C&pace_ms=P`` (a deterministic body, fresh bytes objects chunk
by chunk, P ms apart);
``POST /slow?ms=N`` (waits N ms through a hop to the other side of the bridge, then
echoes like ``/upload``); ``/fault?at=before_start|after_start|mid_body|in_close`` (the
app raises ``RuntimeError("soak-fault-<at>")`` there); ``/__stats`` (JSON; options
``hold_ms=N``, ``block_ms=N``, ``reset_peak=1``, ``types=1``).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final
from urllib.parse import parse_qs

from crossgate import asgi_to_wsgi, async_to_sync, sync_to_async, wsgi_to_asgi
from crossgate._types import Environ, Message, Receive, Send, StartResponse, WSGIApp
from crossgate.adapters._bridge import DEFAULT_BUDGET

__all__ = [
    "CHUNK",
    "FAULT_POINTS",
    "asgi_application",
    "chunk_bytes",
    "download_digest",
    "preforked_asgi_application",
    "preforked_wsgi_application",
    "wsgi_application",
]

#: Download chunk size unless ``?chunk=`` says otherwise.
CHUNK: Final = 16 * 1024
#: Where a fault can be injected (see the module docstring).
FAULT_POINTS: Final = ("before_start", "after_start", "mid_body", "in_close")
#: Pool size of the WSGI adapter (an environment variable, so a test can saturate it).
WSGI_WORKERS: Final = int(os.environ.get("SOAK_WSGI_WORKERS", "16"))
#: Both adapters' byte budget per request (crossgate's default unless set): a huge one
#: shows what the slow-reader test would see without backpressure.
BUDGET: Final = int(os.environ.get("SOAK_BUDGET", str(DEFAULT_BUDGET)))
_READ: Final = 64 * 1024


def chunk_bytes(index: int, size: int = CHUNK) -> bytes:
    """Chunk ``index`` of a download: differs from its neighbours, a new object each call
    (a server that queued chunks without backpressure would then really hold them)."""
    seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
    whole, part = divmod(size, len(seed))
    return seed * whole + seed[:part]


def _download(size: int, chunk: int) -> Iterator[bytes]:
    index = 0
    sent = 0
    while sent < size:
        block = chunk_bytes(index, min(chunk, size - sent))
        index += 1
        sent += len(block)
        yield block


def _paced(blocks: Iterator[bytes], pace: float) -> Iterator[bytes]:
    """``blocks``, with a pause before each one after the first (a body still being
    produced, say from a database cursor, when the client leaves)."""
    for index, block in enumerate(blocks):
        if pace and index:
            time.sleep(pace)
        yield block


def download_digest(size: int, chunk: int = CHUNK) -> str:
    """The sha256 (hex) of ``/download?size=<size>&chunk=<chunk>``."""
    digest = hashlib.sha256()
    for block in _download(size, chunk):
        digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------
# Counters, reported by /__stats
# ------------------------------------------------------------------------------------------


class _Stats:
    """What the app saw; every field is an int, changed under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "calls",  # app invocations
                "ended",  # ... that returned or raised
                "iterables",  # response iterables handed to the server side
                "closes",  # their close() calls
                "close_off_thread",  # close() on another thread than the app call (WSGI)
                "bodies_done",  # download bodies produced to their end
                "stopped_early",  # downloads stopped by a disconnect
                "upload_aborted",  # uploads cut off by a disconnect
                "active",  # requests running in the app right now
                "peak_active",  # the most that ever ran at once
            ),
            0,
        )

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount
            if name == "active" and self.counts["active"] > self.counts["peak_active"]:
                self.counts["peak_active"] = self.counts["active"]

    def reset_peak(self) -> None:
        with self._lock:
            self.counts["peak_active"] = self.counts["active"]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


STATS = _Stats()
#: pids of the processes whose app ran lifespan startup (the ASGI app) or was warmed up
#: (the factories): a forked child inherits the parent's entries and adds its own.
STARTUP_PIDS: list[int] = []
WARMED_IN: list[int] = []


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


_NUMBERED = re.compile(r"[-_]?\d+(_\d+)?$")


def _thread_families() -> dict[str, int]:
    """Live threads by name with the trailing number dropped ("crossgate-wsgi-3" ->
    "crossgate-wsgi"), so a pool's threads are counted apart from the rest."""
    families: dict[str, int] = {}
    for thread in threading.enumerate():
        family = _NUMBERED.sub("", thread.name) or thread.name
        families[family] = families.get(family, 0) + 1
    return families


def _stats(extra: dict[str, Any]) -> bytes:
    # Collected first: garbage in reference cycles (hypercorn makes some per connection)
    # is not a leak, and would blur both the object count and the RSS.
    gc.collect()
    report: dict[str, Any] = {
        **STATS.snapshot(),
        "pid": os.getpid(),
        "threads": threading.active_count(),
        "thread_families": _thread_families(),
        "rss_kib": _rss_kib(),
        "gc_objects": len(gc.get_objects()),
        "startup_pids": STARTUP_PIDS,
        "warmed_in": WARMED_IN,
        **extra,
    }
    return json.dumps(report).encode()


def _query(query_string: str | bytes) -> dict[str, str]:
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    return {key: values[-1] for key, values in parse_qs(query_string).items()}


def _fault(at: str) -> RuntimeError:
    return RuntimeError(f"soak-fault-{at}")


def _answer(length: int, digest: Any) -> bytes:
    return f"{length} {digest.hexdigest()}".encode()


# ------------------------------------------------------------------------------------------
# (a) a WSGI app, served on ASGI servers through wsgi_to_asgi
# ------------------------------------------------------------------------------------------


class _Counted:
    """A WSGI response iterable whose ``close()`` is counted (and checked to run on the
    thread that called the app, as crossgate promises)."""

    def __init__(self, chunks: Iterable[bytes], download: bool = False) -> None:
        self._chunks = iter(chunks)
        self._download = download
        self._done = False
        self._closed = False
        self._thread = threading.get_ident()
        STATS.add("iterables")

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            self._done = True
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        STATS.add("closes")
        if threading.get_ident() != self._thread:
            STATS.add("close_off_thread")
        if self._download:
            STATS.add("bodies_done" if self._done else "stopped_early")


class _FaultInClose(_Counted):
    def close(self) -> None:
        super().close()
        raise _fault("in_close")


def _mid_body_fault() -> Iterator[bytes]:
    yield b"partial body, then "
    raise _fault("mid_body")


def _read_upload(environ: Environ) -> tuple[int, Any]:
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    length = 0
    try:
        while True:
            # wsgi_to_asgi sets wsgi.input_terminated: read to the empty bytestring.
            data = stream.read(_READ)
            if not data:
                return length, digest
            digest.update(data)
            length += len(data)
    except OSError:  # crossgate.ClientDisconnected: the upload was cut off
        STATS.add("upload_aborted")
        raise


def _plain(start_response: StartResponse, body: bytes, status: str = "200 OK") -> None:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI side of the soak (routes: see the module docstring)."""
    STATS.add("calls")
    STATS.add("active")
    try:
        return _wsgi_route(environ, start_response)
    finally:
        STATS.add("active", -1)
        STATS.add("ended")


def _wsgi_route(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    query = _query(environ.get("QUERY_STRING", ""))
    if path == "/hello":
        _plain(start_response, b"hello")
        return [b"hello"]  # a list: crossgate's one-hop path
    if path == "/upload":
        answer = _answer(*_read_upload(environ))
        _plain(start_response, answer)
        return _Counted([answer])
    if path == "/download":
        size = int(query.get("size", "0"))
        chunk = int(query.get("chunk", str(CHUNK)))
        pace = int(query.get("pace_ms", "0")) / 1000
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Counted(_paced(_download(size, chunk), pace), download=True)
    if path == "/slow":
        # A hop back to the server's loop while the pool may be saturated: it must queue,
        # never deadlock.
        async_to_sync(asyncio.sleep)(int(query.get("ms", "100")) / 1000)
        answer = _answer(*_read_upload(environ))
        _plain(start_response, answer)
        return _Counted([answer])
    if path == "/fault":
        return _wsgi_fault(query.get("at", ""), start_response)
    _plain(start_response, b"not found", "404 Not Found")
    return [b"not found"]


def _wsgi_fault(at: str, start_response: StartResponse) -> Iterable[bytes]:
    if at == "before_start":
        raise _fault(at)
    if at not in FAULT_POINTS:
        _plain(start_response, b"unknown fault point", "400 Bad Request")
        return [b"unknown fault point"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    if at == "after_start":
        raise _fault(at)  # PEP 3333: nothing is sent yet, so a 500 can still replace it
    if at == "mid_body":
        return _Counted(_mid_body_fault())
    return _FaultInClose([b"complete body"])


# max_threads=workers: the soak's saturated-pool test checks the hard bound (a request
# waiting on its upload would otherwise run beyond `workers`, on a thread of its own).
_wsgi_adapter = wsgi_to_asgi(
    wsgi_app, workers=WSGI_WORKERS, max_threads=WSGI_WORKERS, budget=BUDGET
)


async def _send_body(send: Send, body: bytes, content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _asgi_stats(scope: Message, extra: dict[str, Any]) -> bytes:
    query = _query(scope.get("query_string", b""))
    # Keep this worker busy (hold: the request waits; block: the whole loop does, so that
    # it accepts no other connection), so that concurrent calls reach the other workers.
    hold = int(query.get("hold_ms", "0"))
    if hold:
        await asyncio.sleep(hold / 1000)
    block = int(query.get("block_ms", "0"))
    if block:
        time.sleep(block / 1000)  # noqa: ASYNC251 - blocking the loop is the point
    if query.get("reset_peak"):
        STATS.reset_peak()
    if query.get("types"):  # where a growth of gc_objects comes from
        counts: dict[str, int] = {}
        for obj in gc.get_objects():
            kind = type(obj).__qualname__
            counts[kind] = counts.get(kind, 0) + 1
        extra = {**extra, "types": counts}
    tasks = asyncio.all_tasks()
    kinds: dict[str, int] = {}
    for task in tasks:
        coro = task.get_coro()
        kind = getattr(coro, "__qualname__", type(coro).__name__)
        kinds[kind] = kinds.get(kind, 0) + 1
    return _stats({"tasks": len(tasks), "task_kinds": kinds, **extra})


def _make_wsgi_side(adapter: Any) -> Callable[[Message, Receive, Send], Any]:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/__stats":
            # Answered on the server's loop, not through the adapter, so that its task
            # count is the server loop's.
            pool = adapter.pool
            extra = {"pool_threads": pool.thread_count, "pool_max": pool.max_workers}
            await _send_body(send, await _asgi_stats(scope, extra))
            return
        await adapter(scope, receive, send)

    return app


wsgi_application = _make_wsgi_side(_wsgi_adapter)


# ------------------------------------------------------------------------------------------
# (b) an ASGI app, served on WSGI servers through asgi_to_wsgi
# ------------------------------------------------------------------------------------------


async def asgi_app(scope: Message, receive: Receive, send: Send) -> None:
    """The ASGI side of the soak (routes: see the module docstring)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["path"] == "/__stats":  # not counted: it would count itself as running
        await _send_body(send, await _asgi_stats(scope, {}))
        return
    STATS.add("calls")
    STATS.add("active")
    try:
        await _asgi_route(scope, receive, send)
    finally:
        STATS.add("active", -1)
        STATS.add("ended")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            STARTUP_PIDS.append(os.getpid())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _receive_upload(receive: Receive) -> tuple[int, Any] | None:
    digest = hashlib.sha256()
    length = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            STATS.add("upload_aborted")
            return None
        body = message.get("body", b"")
        digest.update(body)
        length += len(body)
        if not message.get("more_body", False):
            return length, digest


async def _asgi_route(scope: Message, receive: Receive, send: Send) -> None:
    path = scope["path"]
    query = _query(scope.get("query_string", b""))
    if path == "/hello":
        await _send_body(send, b"hello", b"text/plain")
    elif path in ("/upload", "/slow"):
        if path == "/slow":
            # A hop to a crossgate worker thread while every server thread may be blocked
            # waiting for this loop: it must queue, never deadlock.
            await sync_to_async(time.sleep)(int(query.get("ms", "100")) / 1000)
        upload = await _receive_upload(receive)
        if upload is not None:  # else the client left: nobody to answer
            await _send_body(send, _answer(*upload), b"text/plain")
    elif path == "/download":
        await _asgi_download(
            send,
            int(query.get("size", "0")),
            int(query.get("chunk", str(CHUNK))),
            int(query.get("pace_ms", "0")) / 1000,
        )
    elif path == "/fault":
        await _asgi_fault(query.get("at", ""), send)
    else:
        await _send_body(send, b"not found", b"text/plain")


async def _asgi_download(send: Send, size: int, chunk: int, pace: float) -> None:
    headers = [(b"content-type", b"application/octet-stream")]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, block in enumerate(_download(size, chunk)):
            if pace and index:
                await asyncio.sleep(pace)
            await send({"type": "http.response.body", "body": block, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except OSError:  # ASGI: send() on a closed connection raises an OSError subclass
        STATS.add("stopped_early")
        return
    STATS.add("bodies_done")


async def _asgi_fault(at: str, send: Send) -> None:
    if at == "before_start":
        raise _fault(at)
    start = {"type": "http.response.start", "status": 200, "headers": []}
    if at not in FAULT_POINTS:
        await _send_body(send, b"unknown fault point", b"text/plain")
        return
    await send(start)
    if at == "after_start":
        raise _fault(at)  # crossgate holds the start until the first body: 500 still
    if at == "mid_body":
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise _fault(at)
    # "in_close": the ASGI counterpart of a failing close(), after the response ended.
    await send({"type": "http.response.body", "body": b"complete body"})
    raise _fault(at)


class _CountedResponse:
    """Wraps the iterable crossgate returns, to count the WSGI server's close() calls."""

    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner
        self._iterator = iter(inner)
        self._closed = False
        STATS.add("iterables")

    def __iter__(self) -> Iterator[bytes]:
        return self._iterator

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            STATS.add("closes")
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _count_closes(app: WSGIApp) -> WSGIApp:
    def counting(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/__stats":
            # Not counted: its close() may run after the client has read the answer and
            # asked again, which would make the counts race.
            return app(environ, start_response)
        return _CountedResponse(app(environ, start_response))

    return counting


asgi_application = _count_closes(asgi_to_wsgi(asgi_app, budget=BUDGET))


# ------------------------------------------------------------------------------------------
# gunicorn --preload factories: the adapter is used in the master, before the fork
# ------------------------------------------------------------------------------------------


def _hello_environ() -> Environ:
    import io  # noqa: PLC0415
    import wsgiref.util  # noqa: PLC0415

    environ: Environ = {"PATH_INFO": "/hello", "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    return environ


def preforked_asgi_application() -> WSGIApp:
    """``asgi_application``, after one request in this process (the gunicorn master):
    crossgate's portal thread and the app's lifespan exist before the workers fork."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
        statuses.append(status)

    body = asgi_application(_hello_environ(), start_response)
    try:
        if b"".join(body) != b"hello" or statuses != ["200 OK"]:
            raise RuntimeError(f"warm-up request failed: {statuses}")
    finally:
        getattr(body, "close", lambda: None)()
    WARMED_IN.append(os.getpid())
    return asgi_application


def preforked_wsgi_application() -> Callable[[Message, Receive, Send], Any]:
    """``wsgi_application``, after one request in this process (the gunicorn master):
    the adapter's worker pool has a thread before the workers fork."""
    sent: list[Message] = []

    async def warm_up() -> None:
        request = {"type": "http.request", "body": b"", "more_body": False}

        async def receive() -> Message:
            return request

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/hello",
            "raw_path": b"/hello",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"localhost")],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1),
        }
        await _wsgi_adapter(scope, receive, send)

    asyncio.run(warm_up())
    if not sent or sent[0].get("status") != 200 or _wsgi_adapter.pool.thread_count < 1:
        raise RuntimeError(f"warm-up request failed: {sent[:1]}")
    WARMED_IN.append(os.getpid())
    return wsgi_application
