"""WSGIToASGI, the adapter: bodies received before the app runs, limits answered without
it, the environ, the pool, lifespan and other scopes, and properties over whole requests.

The parts of one request have their own tests: test_wsgi_call, test_wsgi_input,
test_wsgi_body.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossgate._types import Environ, Message, StartResponse, WSGIApp
from crossgate.adapters import wsgi_to_asgi as wsgi_to_asgi_module
from crossgate.adapters._wsgi_call import FileWrapper
from crossgate.adapters.environ import build_environ
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from tests.adapters.wsgi_server import (
    BODY,
    Closing,
    Exchange,
    _split,
    app_returning,
    ragged,
)
from tests.loops import LOOPS, run_on

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]


def _counting_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %d" % (len(body), environ["crossgate.test.receives"]())]


def _with_receives(ex: Exchange, app: WSGIApp) -> WSGIApp:
    def wrapped(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        receives_at_start = ex.receives
        environ["crossgate.test.receives"] = lambda: receives_at_start
        return app(environ, start_response)

    return wrapped


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
async def test_a_small_body_is_received_whole_before_the_app_runs(
    make: Callable[..., WSGIToASGI], declared: bool
) -> None:
    """A client sending a small body slowly costs no thread: the app's job starts once the
    body is all there."""
    chunks = ragged(BODY)
    headers = [(b"content-length", str(len(BODY)).encode())] if declared else []
    ex = Exchange(chunks, method="POST", headers=headers)
    await ex.run(make(_with_receives(ex, _counting_app), body_prefetch=64 * 1024))
    assert ex.body_bytes == b"%d %d" % (len(BODY), len(chunks))
    assert wsgi_to_asgi_module._PREFETCHED.held == 0  # given back as the request ended


async def test_a_larger_body_streams_to_the_app_as_it_comes(
    make: Callable[..., WSGIToASGI],
) -> None:
    chunks = ragged(BODY)
    headers = [(b"content-length", str(len(BODY)).encode())]
    ex = Exchange(chunks, method="POST", headers=headers)
    await ex.run(make(_with_receives(ex, _counting_app), body_prefetch=len(BODY) - 1))
    assert ex.body_bytes == b"%d 1" % len(BODY)  # the app started after the first message


async def test_a_body_of_unknown_length_is_received_up_to_the_prefetch_then_streams(
    make: Callable[..., WSGIToASGI],
) -> None:
    chunks = [BODY[i : i + 10] for i in range(0, len(BODY), 10)]
    ex = Exchange(chunks, method="POST")
    await ex.run(make(_with_receives(ex, _counting_app), body_prefetch=25))
    assert ex.body_bytes == b"%d 3" % len(BODY)  # 30 bytes received: past 25, it streams


async def test_a_client_leaving_mid_small_body_never_reaches_the_app(
    make: Callable[..., WSGIToASGI],
) -> None:
    called = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.set()
        start_response("200 OK", [])
        return []

    ex = Exchange([b"part", b"of it"], cut=True, method="POST")
    await ex.run(make(app, body_prefetch=64 * 1024))
    assert not called.is_set()
    assert ex.messages == []  # nobody to answer
    assert wsgi_to_asgi_module._PREFETCHED.held == 0


async def test_past_the_process_cap_bodies_stream_instead(
    make: Callable[..., WSGIToASGI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes held for bodies received before their app runs are capped across the
    process: many slow clients cannot turn it into a memory attack."""
    monkeypatch.setattr(wsgi_to_asgi_module._PREFETCHED, "cap", len(BODY) - 1)
    chunks = ragged(BODY)
    headers = [(b"content-length", str(len(BODY)).encode())]
    ex = Exchange(chunks, method="POST", headers=headers)
    await ex.run(make(_with_receives(ex, _counting_app), body_prefetch=64 * 1024))
    assert ex.body_bytes == b"%d 1" % len(BODY)
    assert wsgi_to_asgi_module._PREFETCHED.held == 0


async def test_a_client_silent_mid_small_body_gets_408_and_no_thread(
    make: Callable[..., WSGIToASGI],
) -> None:
    called = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.set()
        return []

    ex = Exchange([b"part"], stalled=True, method="POST")
    await ex.run(make(app, body_prefetch=64 * 1024, body_timeout=0.05))
    assert not called.is_set()
    assert ex.status == 408
    assert (b"connection", b"close") in ex.headers
    assert ex.complete
    assert wsgi_to_asgi_module._PREFETCHED.held == 0


async def test_a_client_silent_before_any_body_gets_408(
    make: Callable[..., WSGIToASGI],
) -> None:
    ex = Exchange([], stalled=True, method="POST")
    ex.receives = 1  # the first receive() already waits, as for headers sent alone
    await ex.run(make(app_returning([b"never"]), body_timeout=0.05))
    assert ex.status == 408


async def test_client_gone_before_the_request_is_handled(make: Callable[..., WSGIToASGI]) -> None:
    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(True)
        start_response("200 OK", [])
        return []

    ex = Exchange(cut=True)
    ex.receives = 1  # the first receive() already reports the disconnect
    await ex.run(make(app))
    assert ex.messages == []
    assert not called


async def test_declared_body_over_the_limit_is_413_without_the_app(
    make: Callable[..., WSGIToASGI],
) -> None:
    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(True)
        start_response("200 OK", [])
        return []

    ex = Exchange([b"x" * 20], method="POST", headers=[(b"content-length", b"20")])
    await ex.run(make(app, max_request_body=10))
    assert ex.status == 413
    assert ex.complete
    assert not called


async def test_environ_has_the_wsgi_keys(make: Callable[..., WSGIToASGI]) -> None:
    seen: dict[str, Any] = {}
    ex = Exchange(path="/a b", query=b"x=1&y=%20")
    await ex.run(make(validator(app_returning([b""], seen=seen)), multiprocess=False))
    environ = seen["environ"]
    expected = build_environ(ex.scope)
    assert {k: environ[k] for k in expected} == expected
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["asgi.scope"] is ex.scope
    assert environ["wsgi.file_wrapper"] is FileWrapper


async def test_wsgi_errors_logs_to_crossgate(
    make: Callable[..., WSGIToASGI], caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["wsgi.errors"].write("something odd\n")
        environ["wsgi.errors"].writelines(["two\n", "three\n"])
        environ["wsgi.errors"].flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    with caplog.at_level(logging.ERROR, logger="crossgate"):
        await Exchange().run(make(validator(app)))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("crossgate")] == [
        "something odd",
        "two",
        "three",
    ]


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_context_variables_reach_the_app(make: Callable[..., WSGIToASGI]) -> None:
    seen: dict[str, str] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen["id"] = REQUEST_ID.get()
        start_response("200 OK", [])
        return []

    REQUEST_ID.set("abc-123")
    await Exchange().run(make(app))
    assert seen["id"] == "abc-123"


async def test_saturated_pool_queues_requests(make: Callable[..., WSGIToASGI]) -> None:
    threads: set[int] = set()
    lock = threading.Lock()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        with lock:
            threads.add(threading.get_ident())
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield environ["PATH_INFO"].encode()
        yield environ["wsgi.input"].read()

    # Streams step away from `workers`; max_threads is the hard cap, and past it, requests
    # queue.
    adapter = make(app, workers=2, max_threads=2)
    exchanges = [Exchange([b"-body"], path=f"/{i}", method="POST") for i in range(12)]
    async with anyio.create_task_group() as tasks:
        for ex in exchanges:
            tasks.start_soon(ex.run, adapter)
    assert [ex.body_bytes for ex in exchanges] == [b"/%d-body" % i for i in range(12)]
    assert len(threads) <= 2
    assert adapter.pool.thread_count <= 2


def _endless_stream(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    # An event stream: a chunk, then the app sleeps, forever (until the client leaves).
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    while True:
        yield b"data: tick\n\n"
        time.sleep(0.01)


def _hello_or_stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/events":
        return _endless_stream(environ, start_response)
    if environ["PATH_INFO"] == "/upload":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(body)).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


async def test_long_streams_do_not_starve_short_requests(
    make: Callable[..., WSGIToASGI],
) -> None:
    """Event streams step away from `workers` once they stream on: with one worker and
    four open streams, a short request is still answered; the streams hold threads up to
    max_threads, which return to `workers` once they end."""
    adapter = make(_hello_or_stream, workers=1, max_threads=8)
    streams = [Exchange(path="/events") for _ in range(4)]
    async with anyio.create_task_group() as tasks:
        for ex in streams:
            tasks.start_soon(ex.run, adapter)
        with anyio.fail_after(5):
            for ex in streams:
                await ex.started.wait()
        hello = await Exchange(path="/hello").run(adapter, timeout=5)
        assert hello.body_bytes == b"hello"
        assert adapter.pool.thread_count == 5  # the request ran on a thread of its own
        for ex in streams:
            ex.leave()
    assert await adapter.pool.drain(5)
    # Threads beyond `workers` end after a second without work.
    for _ in range(300):
        if adapter.pool.thread_count == 1:
            break
        await anyio.sleep(0.02)
    assert adapter.pool.thread_count == 1
    assert (await Exchange(path="/hello").run(adapter)).body_bytes == b"hello"


async def test_uploads_waiting_on_their_client_do_not_hold_a_worker(
    make: Callable[..., WSGIToASGI],
) -> None:
    """A thread blocked in wsgi.input.read() waits on the client, not at work."""
    adapter = make(_hello_or_stream, workers=1, max_threads=4)
    stalled = [Exchange([b"x"], stalled=True, method="POST", path="/upload") for _ in range(3)]
    async with anyio.create_task_group() as tasks:
        for ex in stalled:
            tasks.start_soon(ex.run, adapter)
        for _ in range(100):  # every upload is in the app, waiting for the rest of its body
            if adapter.pool.thread_count == 3:
                break
            await anyio.sleep(0.01)
        assert adapter.pool.thread_count == 3
        hello = await Exchange(path="/hello").run(adapter, timeout=5)
        assert hello.body_bytes == b"hello"
        for ex in stalled:
            ex.leave()
    assert await adapter.pool.drain(5)


async def test_past_max_threads_requests_queue_and_run_later(
    make: Callable[..., WSGIToASGI],
) -> None:
    """The hard cap holds: with every thread streaming, a short request waits its turn
    (never a deadlock) and is answered once a stream ends."""
    adapter = make(_hello_or_stream, workers=1, max_threads=2)
    streams = [Exchange(path="/events") for _ in range(2)]
    hello = Exchange(path="/hello")
    answered = anyio.Event()

    async def say_hello() -> None:
        await hello.run(adapter)
        answered.set()

    async with anyio.create_task_group() as tasks:
        for ex in streams:
            tasks.start_soon(ex.run, adapter)
        with anyio.fail_after(5):
            for ex in streams:
                await ex.started.wait()
        tasks.start_soon(say_hello)
        await anyio.sleep(0.1)
        assert not answered.is_set()
        assert adapter.pool.thread_count == 2
        streams[0].leave()
        with anyio.fail_after(5):
            await answered.wait()
        assert hello.body_bytes == b"hello"
        streams[1].leave()


async def test_pool_is_created_lazily() -> None:
    adapter = WSGIToASGI(app_returning([]))
    assert adapter._pool is None


class LifespanServer:
    def __init__(self, *events: str) -> None:
        self.events = [{"type": e} for e in events]
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self.events.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self, app: WSGIToASGI) -> list[str]:
        with anyio.fail_after(10):
            await app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.receive, self.send)
        return [m["type"] for m in self.sent]


async def test_lifespan_runs_hooks_in_the_pool(make: Callable[..., WSGIToASGI]) -> None:
    calls: list[tuple[str, str]] = []
    adapter = make(
        app_returning([]),
        on_startup=[lambda: calls.append(("up", threading.current_thread().name))],
        on_shutdown=[lambda: calls.append(("down", threading.current_thread().name))],
    )
    server = LifespanServer("lifespan.startup", "lifespan.shutdown")
    assert await server.run(adapter) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert [c[0] for c in calls] == ["up", "down"]
    assert all(name.startswith("crossgate-wsgi") for _, name in calls)
    assert adapter._pool is None  # shut down


async def test_lifespan_startup_failure_is_reported(make: Callable[..., WSGIToASGI]) -> None:
    def broken() -> None:
        raise RuntimeError("no database")

    server = LifespanServer("lifespan.startup")
    assert await server.run(make(app_returning([]), on_startup=[broken])) == [
        "lifespan.startup.failed"
    ]
    assert "no database" in server.sent[0]["message"]


async def test_lifespan_shutdown_failure_is_reported(make: Callable[..., WSGIToASGI]) -> None:
    def broken() -> None:
        raise RuntimeError("cannot flush")

    server = LifespanServer("lifespan.startup", "lifespan.shutdown")
    result = await server.run(make(app_returning([]), on_shutdown=[broken]))
    assert result == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert "cannot flush" in server.sent[1]["message"]


async def test_lifespan_hooks_run_as_with_lifespan_runs_them(
    make: Callable[..., WSGIToASGI],
) -> None:
    """One hook runner: a single callable, async hooks, hooks taking the state dict; sync
    ones still in the pool."""
    calls: list[str] = []

    async def open_pool(state: dict[str, Any]) -> None:
        state["pool"] = "open"
        calls.append("open_pool")

    def warm(state: dict[str, Any]) -> None:
        calls.append(f"warm {state['pool']} on {threading.current_thread().name}")

    async def close_pool() -> None:
        calls.append("close_pool")

    adapter = make(app_returning([]), on_startup=[open_pool, warm], on_shutdown=close_pool)
    state: dict[str, Any] = {}
    server = LifespanServer("lifespan.startup", "lifespan.shutdown")
    with anyio.fail_after(10):
        await adapter({"type": "lifespan", "state": state}, server.receive, server.send)
    assert [m["type"] for m in server.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert state == {"pool": "open"}
    assert calls[0] == "open_pool"
    assert calls[1].startswith("warm open on crossgate-wsgi")
    assert calls[2:] == ["close_pool"]


async def test_a_startup_hook_that_hangs_fails_after_the_startup_timeout(
    make: Callable[..., WSGIToASGI],
) -> None:
    async def hangs() -> None:
        await anyio.sleep_forever()

    server = LifespanServer("lifespan.startup")
    adapter = make(app_returning([]), on_startup=hangs, startup_timeout=0.05)
    assert await server.run(adapter) == ["lifespan.startup.failed"]
    assert "did not finish within 0.05 s" in server.sent[0]["message"]


def test_a_hook_taking_two_arguments_is_refused() -> None:
    with pytest.raises(TypeError, match="no arguments or one"):
        WSGIToASGI(app_returning([]), on_startup=[lambda a, b: None])


async def test_shutdown_waits_for_requests_in_flight(make: Callable[..., WSGIToASGI]) -> None:
    release = threading.Event()
    finished: list[str] = []

    running = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        running.set()
        release.wait(5)
        finished.append("request")
        start_response("200 OK", [])
        return []

    adapter = make(app, on_shutdown=[lambda: finished.append("hook")])
    answers: list[list[str]] = []

    async def shut_down() -> None:
        answers.append(await LifespanServer("lifespan.shutdown").run(adapter))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(Exchange().run, adapter)
        await anyio.to_thread.run_sync(running.wait, 5)
        tasks.start_soon(shut_down)
        for _ in range(10):  # let the shutdown start (and, were it wrong, run the hook early)
            await anyio.lowlevel.checkpoint()
        assert not answers
        release.set()
    assert answers == [["lifespan.shutdown.complete"]]
    assert finished == ["request", "hook"]


async def test_shutdown_gives_up_waiting_after_the_timeout(
    make: Callable[..., WSGIToASGI], caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    running = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        running.set()
        release.wait(10)
        start_response("200 OK", [])
        return []

    adapter = make(app, shutdown_timeout=0.05)
    async with anyio.create_task_group() as tasks:
        # The stuck request still completes on its (now shut down) pool.
        tasks.start_soon(Exchange().run, adapter)
        await anyio.to_thread.run_sync(running.wait, 5)
        answer = await LifespanServer("lifespan.shutdown").run(adapter)
        assert answer == ["lifespan.shutdown.complete"]
        assert "still running" in caplog.text
        release.set()


async def test_websocket_is_refused(make: Callable[..., WSGIToASGI]) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await make(app_returning([]))({"type": "websocket", "path": "/"}, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


async def test_unknown_scope_type_raises(make: Callable[..., WSGIToASGI]) -> None:
    async def receive() -> Message:
        raise AssertionError("not called")

    async def send(message: Message) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="scope type 'telepathy'"):
        await make(app_returning([]))({"type": "telepathy"}, receive, send)


def test_options_are_validated() -> None:
    app = app_returning([])
    with pytest.raises(ValueError, match="workers"):
        WSGIToASGI(app, workers=0)
    with pytest.raises(ValueError, match="budget"):
        WSGIToASGI(app, budget=0)
    with pytest.raises(ValueError, match="max_request_body"):
        WSGIToASGI(app, max_request_body=-1)


TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1)


HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


CHUNKS = st.lists(st.binary(max_size=40), max_size=8)


@pytest.mark.parametrize("loop", LOOPS)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=st.lists(
        st.one_of(
            st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=6),
            st.sampled_from(["%2F", "%41", "%", "a b", "é", "/", "?"]),
        ),
        max_size=4,
    ).map("".join),
    query=st.binary(max_size=20),
    headers=st.lists(
        st.tuples(st.sampled_from([b"x-a", b"x-b", b"accept"]), st.binary(max_size=10)), max_size=5
    ),
    body=st.binary(max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=6),
    prefetch=st.sampled_from([0, 50, 64 * 1024]),
)
def test_property_requests_reach_the_app_intact(
    loop: str,
    method: str,
    path: str,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    cuts: list[int],
    prefetch: int,
) -> None:
    """Any request: the environ is build_environ's and the body reads back whole."""
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen["environ"] = dict(environ)
        seen["body"] = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    adapter = WSGIToASGI(app, workers=2, body_prefetch=prefetch)
    clean = [(n, v.replace(b"\r", b"").replace(b"\n", b"")) for n, v in headers]
    ex = Exchange(_split(body, cuts), method=method, path="/" + path, query=query, headers=clean)
    try:
        run_on(loop, ex.run, adapter)
    finally:
        adapter.pool.shutdown()
    assert ex.status == 200
    expected = build_environ(ex.scope)
    assert {k: seen["environ"][k] for k in expected} == expected
    assert seen["body"] == body


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=40, deadline=None)
@given(
    code=st.integers(100, 599).filter(lambda c: c >= 200),
    reason=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10),
    headers=st.lists(st.tuples(TOKEN, HEADER_VALUE), max_size=4),
    chunks=CHUNKS,
    kind=st.sampled_from(["list", "tuple", "generator", "write", "write+list", "closing"]),
)
def test_property_messages_match_what_the_app_produced(
    loop: str,
    code: int,
    reason: str,
    headers: list[tuple[str, str]],
    chunks: list[bytes],
    kind: str,
) -> None:
    """Any WSGI behaviour: one start with its status and headers, then exactly its bytes."""
    closing = Closing(chunks)
    headers = [(n, v) for n, v in headers if n.lower() != "content-length"]

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response(f"{code} {reason}", headers)
        if kind == "list":
            return list(chunks)
        if kind == "tuple":
            return tuple(chunks)
        if kind == "generator":
            return iter(chunks)
        if kind == "closing":
            return closing
        for chunk in chunks[: len(chunks) // 2]:
            write(chunk)
        rest = chunks[len(chunks) // 2 :]
        if kind == "write":
            for chunk in rest:
                write(chunk)
            return []
        return rest

    adapter = WSGIToASGI(app, workers=2, budget=64)
    ex = Exchange()
    try:
        run_on(loop, ex.run, adapter)
    finally:
        adapter.pool.shutdown()
    assert ex.complete
    assert ex.status == code
    # RFC 9110 5.5: values lose their surrounding whitespace on the way.
    assert ex.headers == [(n.lower().encode(), v.strip(" \t").encode()) for n, v in headers]
    assert ex.body_bytes == b"".join(chunks)
    assert all(m.get("body") for m in ex.messages[1:-1])  # no empty intermediate messages
    if kind == "closing":
        assert closing.close_calls == 1
