"""ASGIToWSGI: an ASGI app behind a WSGI server, checked through ``wsgiref.validate``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
import wsgiref.util
import wsgiref.validate
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from crossgate._errors import ClientDisconnected, InvalidResponse, LifespanError
from crossgate._types import Environ, Message, Receive, Send
from crossgate.adapters._bridge import current_task
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI, asgi_to_wsgi
from crossgate.adapters.environ import ENVIRON_SCOPE_KEY
from tests.adapters.support import no_new_cycles

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Receive, Send], Any]
WAIT = 10.0  # seconds an Event wait may take before the test fails (never reached when green)


# --------------------------------------------------------------------------------------------
# A minimal WSGI server in a function: environ in, (status, headers, body) out
# --------------------------------------------------------------------------------------------


class ChunkedInput:
    """A wsgi.input that hands out at most ``step`` bytes per read (a slow socket)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if size < 0:
            size = self._step
        return self._data.read(min(size, self._step))

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - wsgiref asks for it
        return self._data.readline(size)

    def readlines(self, hint: int = -1) -> list[bytes]:  # pragma: no cover
        return self._data.readlines(hint)

    def __iter__(self) -> Iterator[bytes]:  # pragma: no cover
        return iter(self._data)


def make_environ(
    method: str = "GET",
    path: str = "/",
    *,
    body: bytes = b"",
    query: str = "",
    content_length: int | None = None,
    terminated: bool = False,
    step: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Environ:
    environ: Environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "wsgi.input": io.BytesIO(body) if step is None else ChunkedInput(body, step),
        }
    )
    if terminated:
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(len(body) if content_length is None else content_length)
    environ.update(extra or {})
    return environ


@dataclass
class Result:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    iterable: Any = field(repr=False, default=None)
    exc_info: Any = field(repr=False, default=None)


def call(app: Any, environ: Environ | None = None, **kwargs: Any) -> Result:
    """Run one request through ``wsgiref.validate.validator(app)``, reading the whole body."""
    environ = environ if environ is not None else make_environ(**kwargs)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.update(status=status, headers=headers, exc_info=exc_info)
        return lambda data: None

    iterable: Any = wsgiref.validate.validator(app)(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        iterable.close()
    return Result(seen["status"], seen["headers"], body, iterable, seen["exc_info"])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that wraps its app with `wrap` runs on the asyncio portal and on the trio
    # one (backend="trio"), unless its app awaits asyncio itself (not_on_trio).
    if "backend" in metafunc.fixturenames:
        on_trio = metafunc.definition.get_closest_marker("not_on_trio") is None
        metafunc.parametrize("backend", ["asyncio", "trio"] if on_trio else ["asyncio"])


@pytest.fixture
def wrap(backend: str) -> Iterator[Callable[..., ASGIToWSGI]]:
    """Wrap ASGI apps on ``backend``'s portal; every wrapper is closed (shutdown, tasks
    awaited) after the test."""
    made: list[ASGIToWSGI] = []

    def factory(app: Any, **options: Any) -> ASGIToWSGI:
        wrapper = asgi_to_wsgi(app, backend=options.pop("backend", backend), **options)
        made.append(wrapper)
        return wrapper

    yield factory
    for wrapper in made:
        wrapper.close()


def text_app(body: bytes = b"hello", status: int = 200) -> ASGI:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"a/b")]}


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def test_hello_world_is_a_list_with_reason_phrase(wrap: Callable[..., ASGIToWSGI]) -> None:
    result = call(wrap(text_app()))
    assert result.status == "200 OK"
    assert result.headers == [("content-type", "text/plain")]
    assert result.body == b"hello"
    assert isinstance(result.iterable.original_iterator, list)


def test_unknown_status_code_keeps_an_empty_reason(wrap: Callable[..., ASGIToWSGI]) -> None:
    assert call(wrap(text_app(status=599))).status == "599 "


def test_headers_are_latin1_in_order_with_duplicates_and_no_hop_by_hop(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/plain"),
            (b"set-cookie", b"a=1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"x-name", "caf\u00e9".encode("latin-1")),
            (b"connection", b"keep-alive"),
            (b"set-cookie", b"b=2"),
        ]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    result = call(wrap(app, lifespan="off"))
    assert result.status == "201 Created"
    assert result.headers == [
        ("content-type", "text/plain"),
        ("set-cookie", "a=1"),
        ("x-name", "caf\u00e9"),
        ("set-cookie", "b=2"),
    ]
    assert result.body == b""


def test_streamed_response_yields_as_sent(wrap: Callable[..., ASGIToWSGI]) -> None:
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        # The second part is only sent once the server has the first: it streams.
        await anyio.to_thread.run_sync(release.wait, WAIT)
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    environ = make_environ()
    iterable: Any = wsgiref.validate.validator(wrap(app, lifespan="off"))(
        environ, lambda status, headers, exc_info=None: lambda data: None
    )
    try:
        chunks = iter(iterable)
        assert next(chunks) == b"first"
        release.set()
        assert b"".join(chunks) == b"second"
    finally:
        iterable.close()


def test_send_waits_while_the_byte_budget_is_full(wrap: Callable[..., ASGIToWSGI]) -> None:
    """With a 1-byte budget each chunk must be taken before the app may send the next."""
    consumed = 0
    seen_at_send: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        for index in range(50):
            seen_at_send.append(consumed)
            await send({"type": "http.response.body", "body": bytes([index]), "more_body": True})
        await send({"type": "http.response.body"})

    environ = make_environ()
    iterable: Any = wsgiref.validate.validator(wrap(app, lifespan="off", budget=1))(
        environ, lambda status, headers, exc_info=None: lambda data: None
    )
    body = b""
    try:
        for chunk in iterable:
            body += chunk
            consumed += 1
    finally:
        iterable.close()
    assert body == bytes(range(50))
    assert all(seen >= index - 1 for index, seen in enumerate(seen_at_send)), seen_at_send


def test_memoryview_and_bytearray_bodies_are_accepted(wrap: Callable[..., ASGIToWSGI]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": memoryview(b"ab"), "more_body": True})
        await send({"type": "http.response.body", "body": bytearray(b"cd")})

    assert call(wrap(app, lifespan="off")).body == b"abcd"


# --------------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------------


def recording_app(messages: list[Message]) -> ASGI:
    """Reads the whole body, recording each message, then answers with the body."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send(START)
        await send({"type": "http.response.body", "body": body})

    return app


def test_small_body_arrives_in_one_message(wrap: Callable[..., ASGIToWSGI]) -> None:
    messages: list[Message] = []
    result = call(wrap(recording_app(messages), lifespan="off"), method="POST", body=b"x" * 1000)
    assert result.body == b"x" * 1000
    assert messages == [{"type": "http.request", "body": b"x" * 1000, "more_body": False}]


def test_large_body_streams_in_chunks_bounded_by_the_budget(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    data = os.urandom(300_000)
    messages: list[Message] = []
    app = wrap(recording_app(messages), lifespan="off", budget=100_000)
    result = call(app, method="POST", body=data)
    assert result.body == data
    assert [len(m["body"]) for m in messages] == [100_000, 100_000, 100_000]
    assert [m["more_body"] for m in messages] == [True, True, False]


def test_body_of_known_length_up_to_the_budget_is_one_read(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    """Each read is a thread hop: a 300 kB upload takes one, not five of 64 KiB."""
    data = os.urandom(300_000)
    messages: list[Message] = []
    result = call(wrap(recording_app(messages), lifespan="off"), method="POST", body=data)
    assert result.body == data
    assert messages == [{"type": "http.request", "body": data, "more_body": False}]


def test_chunked_body_is_read_in_small_pieces(wrap: Callable[..., ASGIToWSGI]) -> None:
    """A chunked upload may be a live stream: the app gets it 64 KiB at a time."""
    data = os.urandom(150_000)
    messages: list[Message] = []
    app = wrap(recording_app(messages), lifespan="off")
    result = call(app, method="POST", body=data, terminated=True)
    assert result.body == data
    assert [len(m["body"]) for m in messages] == [65536, 65536, 150_000 - 2 * 65536, 0]


def test_chunked_upload_is_read_to_eof(wrap: Callable[..., ASGIToWSGI]) -> None:
    data = os.urandom(150_000)
    messages: list[Message] = []
    app = wrap(recording_app(messages), lifespan="off")
    result = call(app, method="POST", body=data, terminated=True, step=7000)
    assert result.body == data
    assert messages[-1] == {"type": "http.request", "body": b"", "more_body": False}


def test_terminated_input_with_a_length_is_read_up_front(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    """gunicorn and waitress set wsgi.input_terminated on every request."""
    messages: list[Message] = []
    environ = make_environ("POST", body=b"abc", extra={"wsgi.input_terminated": True})
    assert call(wrap(recording_app(messages), lifespan="off"), environ).body == b"abc"
    assert messages == [{"type": "http.request", "body": b"abc", "more_body": False}]


def test_terminated_chunked_input_ignores_a_content_length(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    messages: list[Message] = []
    environ = make_environ(
        "POST",
        body=b"chunked body",
        content_length=3,
        extra={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"},
    )
    assert call(wrap(recording_app(messages), lifespan="off"), environ).body == b"chunked body"


@pytest.mark.parametrize("terminated", [False, True])
def test_a_cancelled_receive_loses_no_body(
    wrap: Callable[..., ASGIToWSGI], terminated: bool
) -> None:
    """Starlette's is_disconnected() calls receive() in an already cancelled scope."""
    data = os.urandom(200_000)
    cancelled = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal cancelled
        body = b""
        while True:
            with anyio.CancelScope() as peek:
                peek.cancel()
                await receive()
            cancelled += peek.cancelled_caught
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send(START)
        await send({"type": "http.response.body", "body": body})

    # A budget of 64 KiB makes a body of known length take several reads, as chunked does.
    app_ = wrap(app, lifespan="off", budget=64 * 1024)
    result = call(app_, method="POST", body=data, terminated=terminated)
    assert result.body == data
    assert cancelled > 1


def test_no_length_and_not_terminated_is_an_empty_body(wrap: Callable[..., ASGIToWSGI]) -> None:
    messages: list[Message] = []
    environ = make_environ("POST", body=b"ignored")
    del environ["CONTENT_LENGTH"]
    assert call(wrap(recording_app(messages), lifespan="off"), environ).body == b""
    assert messages == [{"type": "http.request", "body": b"", "more_body": False}]


@pytest.mark.parametrize("declared", [100, 200_000])
def test_input_shorter_than_content_length_ends_in_disconnect(
    wrap: Callable[..., ASGIToWSGI], declared: int
) -> None:
    messages: list[Message] = []
    app = wrap(recording_app(messages), lifespan="off")
    result = call(app, method="POST", body=b"abc", content_length=declared)
    assert result.body == b"abc"
    assert messages[-1] == {"type": "http.disconnect"}
    assert all(m["type"] == "http.disconnect" or m["body"] for m in messages)


@pytest.mark.parametrize("declared", [100, 200_000], ids=["read-up-front", "read-on-demand"])
def test_an_app_deaf_to_a_cut_upload_is_given_up_after_the_grace(
    wrap: Callable[..., ASGIToWSGI], declared: int
) -> None:
    """An app that is told its client left mid-body (http.disconnect) and neither answers
    nor ends held the server's thread for ever: a server with a thread per request
    (gunicorn) ran out of them. After disconnect_grace the thread gets its answer back and
    the app is cancelled."""
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        try:
            await anyio.Event().wait()  # deaf: never answers, never ends
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    started = time.monotonic()
    result = call(
        wrap(app, lifespan="off", disconnect_grace=0.2),
        method="POST",
        body=b"abc",
        content_length=declared,
    )
    assert time.monotonic() - started < 5
    assert result.status == "500 Internal Server Error"
    assert cancelled.wait(5)


def test_after_the_body_receive_waits_for_the_response_then_disconnects(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    order: list[str] = []
    finished = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

        async def listen() -> None:
            message = await receive()
            order.append(message["type"])

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listen)
            await anyio.lowlevel.checkpoint()
            order.append("sending")
            await send(START)
            await send({"type": "http.response.body", "body": b"done"})
        finished.set()

    assert call(wrap(app, lifespan="off")).body == b"done"
    # The response ends with the last body message; the app's listener gets its
    # http.disconnect only then, on the portal loop, after the server has its response.
    assert finished.wait(10)
    assert order == ["sending", "http.disconnect"]


async def _streamed_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(START)
    for _ in range(8):
        await send({"type": "http.response.body", "body": b"x" * 50, "more_body": True})
    await send({"type": "http.response.body"})


@pytest.mark.parametrize(
    ("app", "environ"),
    [
        pytest.param(text_app(), {}, id="whole-response"),
        pytest.param(_streamed_app, {}, id="streamed-over-budget"),
        pytest.param(
            recording_app([]),
            {"method": "POST", "body": b"y" * 500, "terminated": True, "step": 70},
            id="body-read-in-pieces",
        ),
    ],
)
def test_a_request_leaves_no_reference_cycles(
    wrap: Callable[..., ASGIToWSGI], app: ASGI, environ: dict[str, Any]
) -> None:
    """Everything a request makes is freed by reference counting as it ends: garbage
    left to the cyclic collector would cost every request its share of a collection."""
    wrapper = wrap(app, lifespan="off", budget=120)
    for _ in range(3):  # first-use state (the portal loop, caches) made beforehand
        call(wrapper, **environ)
    with no_new_cycles():
        for _ in range(10):
            call(wrapper, **environ)


async def _endless_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(START)
    while True:
        await send({"type": "http.response.body", "body": b"x" * 50, "more_body": True})


async def _deaf_app(scope: Scope, receive: Receive, send: Send) -> None:
    # Never notices the client leave: cancelled after the disconnect grace.
    await send(START)
    for _ in range(4):
        await send({"type": "http.response.body", "body": b"x" * 50, "more_body": True})
    await anyio.sleep(3600)


async def _failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise ValueError("the app's bug")


async def _send_until_it_fails(send: Send) -> None:
    await send(START)
    while True:
        await send({"type": "http.response.body", "body": b"x" * 50, "more_body": True})


async def _quietly_stopping_app(scope: Scope, receive: Receive, send: Send) -> None:
    # ASGI: send() on a closed connection raises an OSError; this app takes it as its cue.
    with contextlib.suppress(OSError):
        await _send_until_it_fails(send)


class _Disconnect(Exception):
    pass


async def _translating_app(scope: Scope, receive: Receive, send: Send) -> None:
    # What Starlette's StreamingResponse does: the OSError becomes an error of its own.
    try:
        await _send_until_it_fails(send)
    except OSError:
        raise _Disconnect from None


async def _failing_midway_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(START)
    await send({"type": "http.response.body", "body": b"x" * 50, "more_body": True})
    raise ValueError("the app's bug, after its response started")


def _ignore_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def _closed_early(wrapper: ASGIToWSGI) -> None:
    """The WSGI server stops iterating after the first chunk (its client left), closes."""
    iterable: Any = wrapper(make_environ(), _ignore_start)
    next(iter(iterable))
    iterable.close()


def _aborted(wrapper: ASGIToWSGI) -> None:
    """A server that meets the app's error in the middle of the body, then closes."""
    iterable: Any = wrapper(make_environ(), _ignore_start)
    with pytest.raises(ValueError, match="after its response started"):
        for _ in iterable:
            pass
    iterable.close()


def _answered(wrapper: ASGIToWSGI) -> None:
    """A server that reads the whole response (no validator: its wrappers keep frames)."""
    assert b"".join(wrapper(make_environ(), _ignore_start))


@pytest.mark.parametrize(
    ("app", "request_"),
    [
        pytest.param(_endless_app, _closed_early, id="client-left-mid-stream"),
        pytest.param(_failing_app, _answered, id="app-failed-500"),
        pytest.param(_failing_midway_app, _aborted, id="app-failed-after-its-start"),
        pytest.param(_quietly_stopping_app, _closed_early, id="app-swallowed-the-stop"),
        pytest.param(_translating_app, _closed_early, id="app-translated-the-stop"),
        pytest.param(_deaf_app, _closed_early, id="app-cancelled-after-the-grace"),
    ],
)
def test_a_request_cut_short_leaves_no_reference_cycles(
    wrap: Callable[..., ASGIToWSGI],
    app: ASGI,
    request_: Callable[[ASGIToWSGI], object],
) -> None:
    """The stop the app's send() raises, kept by the response channel, and the app's error,
    kept by the exchange, must not tie the request into a cycle through their tracebacks."""
    wrapper = wrap(app, lifespan="off", budget=120, disconnect_grace=0.01)

    def one() -> None:
        request_(wrapper)
        process = wrapper._process
        assert process is not None
        deadline = time.monotonic() + 5
        while process.tasks and time.monotonic() < deadline:  # the app's task ending
            time.sleep(0.005)
        assert not process.tasks

    for _ in range(3):
        one()
    with no_new_cycles():
        for _ in range(5):
            one()


# --------------------------------------------------------------------------------------------
# Errors: never hang
# --------------------------------------------------------------------------------------------


def test_app_returning_without_response_is_500(
    wrap: Callable[..., ASGIToWSGI], caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return

    result = call(wrap(app, lifespan="off"))
    assert result.status == "500 Internal Server Error"
    assert result.exc_info is not None
    assert "returned without sending a response" in caplog.text


def test_app_raising_before_start_is_500_with_exc_info_and_logged(
    wrap: Callable[..., ASGIToWSGI], caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ZeroDivisionError("boom")

    result = call(wrap(app, lifespan="off"))
    assert result.status == "500 Internal Server Error"
    assert result.exc_info[0] is ZeroDivisionError
    assert result.body == b"Internal Server Error"
    record = next(r for r in caplog.records if r.name.startswith("crossgate"))
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_app_raising_after_start_before_body_is_still_500(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        raise KeyError("late")

    assert call(wrap(app, lifespan="off")).status == "500 Internal Server Error"


def after_first_chunk(then: Callable[[Send], Any]) -> tuple[ASGI, threading.Event]:
    """An app that streams b"part", waits until the test has read it, then runs ``then``."""
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await anyio.to_thread.run_sync(release.wait, WAIT)
        await then(send)

    return app, release


def read_then_fail(wrapper: ASGIToWSGI, release: threading.Event) -> None:
    iterable: Any = wsgiref.validate.validator(wrapper)(
        make_environ(), lambda status, headers, exc_info=None: lambda data: None
    )
    try:
        chunks = iter(iterable)
        assert next(chunks) == b"part"
        release.set()
        next(chunks)
    finally:
        iterable.close()


def test_app_raising_mid_body_raises_into_the_server(wrap: Callable[..., ASGIToWSGI]) -> None:
    async def then(send: Send) -> None:
        raise KeyError("mid-stream")

    app, release = after_first_chunk(then)
    with pytest.raises(KeyError, match="mid-stream"):
        read_then_fail(wrap(app, lifespan="off"), release)


def test_app_returning_mid_body_raises_into_the_server(wrap: Callable[..., ASGIToWSGI]) -> None:
    async def then(send: Send) -> None:
        return

    app, release = after_first_chunk(then)
    with pytest.raises(InvalidResponse, match="without sending the end"):
        read_then_fail(wrap(app, lifespan="off"), release)


def test_app_raising_before_the_server_took_anything_is_500(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    """Started and streaming, but nothing reached the server yet: a 500 is still possible."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise KeyError("early")

    # Whichever wins the race (the server taking the first chunk or the error), the server
    # gets a coherent answer: a 500, or the error raised from the iteration.
    try:
        result = call(wrap(app, lifespan="off"))
    except KeyError:
        return
    assert result.status == "500 Internal Server Error"


INVALID: list[tuple[str, list[Message]]] = [
    ("body before start", [{"type": "http.response.body", "body": b"x"}]),
    ("start twice", [START, START]),
    ("str body", [START, {"type": "http.response.body", "body": "text"}]),
    ("status not int", [{**START, "status": "200"}, {"type": "http.response.body"}]),
    ("status out of range", [{**START, "status": 42}, {"type": "http.response.body"}]),
    ("missing status", [{"type": "http.response.start"}]),
    ("header with newline", [{**START, "headers": [(b"x", b"a\nb")]}]),
    ("header name not bytes", [{**START, "headers": [("x", b"a")]}]),
    ("trailers", [{**START, "trailers": True}]),
    ("zerocopysend", [START, {"type": "http.response.zerocopysend", "file": 3}]),
    ("early hints", [{"type": "http.response.early_hint", "links": []}]),
    ("no type", [{"status": 200}]),
    ("pathsend without start", [{"type": "http.response.pathsend", "path": "/x"}]),
    ("pathsend path not str", [START, {"type": "http.response.pathsend", "path": 3}]),
]


@pytest.mark.parametrize(("name", "messages"), INVALID, ids=[name for name, _ in INVALID])
def test_invalid_message_before_the_response_is_500(
    wrap: Callable[..., ASGIToWSGI], name: str, messages: list[Message]
) -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            for message in messages:
                await send(message)
        except Exception as exc:
            raised.append(exc)
            return  # even an app that swallows the error gets its 500

    result = call(wrap(app, lifespan="off"))
    assert result.status == "500 Internal Server Error"
    assert isinstance(raised[0], InvalidResponse)


def test_invalid_message_after_the_response_started_aborts_it(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    async def then(send: Send) -> None:
        await send({"type": "http.response.body", "body": 12})

    app, release = after_first_chunk(then)
    with pytest.raises(InvalidResponse, match="must be bytes"):
        read_then_fail(wrap(app, lifespan="off"), release)


def test_messages_after_the_end_are_refused_in_the_app(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    refused = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"end"})
        try:
            await send({"type": "http.response.body", "body": b"more"})
        except InvalidResponse:
            refused.set()

    assert call(wrap(app, lifespan="off")).body == b"end"
    assert refused.wait(WAIT)


def test_response_timeout_answers_504_and_cancels_the_app(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    result = call(wrap(app, lifespan="off", response_timeout=0.05))
    assert result.status == "504 Gateway Timeout"
    assert cancelled.wait(WAIT)


def test_app_cancelled_from_outside_is_500(wrap: Callable[..., ASGIToWSGI]) -> None:
    """As when the portal loop closes under a waiting request: never a CancelledError."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        task = current_task()  # asyncio's or trio's
        assert task is not None
        task.cancel()
        await anyio.lowlevel.checkpoint()

    assert call(wrap(app, lifespan="off")).status == "500 Internal Server Error"


def test_app_timeout_error_without_response_timeout_is_500(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise TimeoutError("the app's own")

    assert call(wrap(app, lifespan="off")).status == "500 Internal Server Error"


# --------------------------------------------------------------------------------------------
# Early close (the client left)
# --------------------------------------------------------------------------------------------


def open_stream(app: ASGIToWSGI) -> Any:
    environ = make_environ()
    return wsgiref.validate.validator(app)(
        environ, lambda status, headers, exc_info=None: lambda data: None
    )


def test_early_close_disconnects_the_app(wrap: Callable[..., ASGIToWSGI]) -> None:
    outcome: list[object] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        except OSError as exc:
            outcome.append(exc)
            outcome.append(await receive())
        finally:
            done.set()

    iterable = open_stream(wrap(app, lifespan="off", budget=4096))
    assert next(iter(iterable))
    iterable.close()
    assert done.wait(WAIT)
    assert isinstance(outcome[0], ClientDisconnected)
    assert outcome[1] == {"type": "http.disconnect"}


def test_early_close_wakes_a_waiting_receive(wrap: Callable[..., ASGIToWSGI]) -> None:
    received: list[Message] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(START)
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        received.append(await receive())  # long-poll style: wait for the client to go
        done.set()

    iterable = open_stream(wrap(app, lifespan="off"))
    assert next(iter(iterable)) == b"x"
    iterable.close()
    assert done.wait(WAIT)
    assert received == [{"type": "http.disconnect"}]


def test_app_ignoring_the_disconnect_is_cancelled_after_the_grace(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    iterable = open_stream(wrap(app, lifespan="off", disconnect_grace=0.05))
    assert next(iter(iterable)) == b"x"
    iterable.close()
    assert cancelled.wait(WAIT)


def test_no_task_is_left_pending_after_early_close(wrap: Callable[..., ASGIToWSGI]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        while True:
            await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})

    wrapper = wrap(app, lifespan="off", budget=100)
    iterable = open_stream(wrapper)
    assert next(iter(iterable))
    iterable.close()
    process = wrapper._process
    assert process is not None
    wrapper.close()  # waits for the request task (and its abort) to end
    assert not [task for task in process.tasks if not task.done()]


# --------------------------------------------------------------------------------------------
# Background work and lifespan
# --------------------------------------------------------------------------------------------


def lifespan_app(events: list[str], **routes_kwargs: Any) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"pool": ["connection"]}
        events.append("shutdown")

    async def state(request: Request) -> Response:
        request.scope["state"]["added"] = True  # a shallow copy: gone next request
        return PlainTextResponse(f"{request.state.pool} {sorted(request.scope['state'])}")

    return Starlette(routes=[Route("/state", state)], lifespan=lifespan, **routes_kwargs)


def test_lifespan_runs_once_and_state_is_a_shallow_copy(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    events: list[str] = []
    wrapper = wrap(lifespan_app(events))
    assert events == []  # nothing before the first request
    for _ in range(3):
        result = call(wrapper, path="/state")
        assert result.body == b"['connection'] ['added', 'pool']"
    assert events == ["startup"]
    assert wrapper.state == {"pool": ["connection"]}
    wrapper.close()
    assert events == ["startup", "shutdown"]


def test_start_runs_startup_before_any_request(wrap: Callable[..., ASGIToWSGI]) -> None:
    events: list[str] = []
    wrapper = wrap(lifespan_app(events))
    wrapper.start()
    assert events == ["startup"]
    call(wrapper, path="/state")
    assert events == ["startup"]


REFUSE = True


def failing_lifespan_app() -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if REFUSE:
            raise ConnectionRefusedError("database refused")
        yield  # pragma: no cover

    return Starlette(lifespan=lifespan)


def test_failed_startup_answers_500_and_logs_the_message(
    wrap: Callable[..., ASGIToWSGI], caplog: pytest.LogCaptureFixture
) -> None:
    wrapper = wrap(failing_lifespan_app())
    for _ in range(2):
        assert call(wrapper).status == "500 Internal Server Error"
    assert caplog.text.count("database refused") >= 2


def test_lifespan_on_raises_a_failed_startup_to_the_server(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    wrapper = wrap(failing_lifespan_app(), lifespan="on")
    with pytest.raises(LifespanError, match="database refused"):
        wrapper.start()
    with pytest.raises(LifespanError, match="database refused"):
        call(wrapper)


def test_lifespan_on_refuses_an_app_without_lifespan(wrap: Callable[..., ASGIToWSGI]) -> None:
    wrapper = wrap(text_app(), lifespan="on")
    with pytest.raises(LifespanError, match="does not support the lifespan protocol"):
        call(wrapper)


def test_lifespan_auto_tolerates_an_app_without_lifespan(
    wrap: Callable[..., ASGIToWSGI],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError("only http")
        await text_app(repr(sorted(scope)).encode())(scope, receive, send)

    body = call(wrap(app)).body
    assert b"'state'" in body


def test_lifespan_auto_serves_an_app_that_ignores_the_scope_type(
    wrap: Callable[..., ASGIToWSGI], caplog: pytest.LogCaptureFixture
) -> None:
    """A hand-written app that treats every scope as a request (it receives, then answers
    with http.response.start) has no lifespan: uvicorn and hypercorn in auto mode serve it,
    and so does crossgate (this answered 500 to every request)."""
    scopes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope["type"])
        await receive()
        await send(START)
        await send({"type": "http.response.body", "body": b"naive"})

    wrapper = wrap(app)
    with caplog.at_level(logging.WARNING, logger="crossgate"):
        result = call(wrapper)
        assert call(wrapper).body == b"naive"
    assert (result.status, result.body) == ("200 OK", b"naive")
    assert scopes == ["lifespan", "http", "http"]
    assert not [r for r in caplog.records if r.name.startswith("crossgate")]


def test_a_client_leaving_mid_upload_is_one_info_line_even_after_a_500(
    wrap: Callable[..., ASGIToWSGI], caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette's app raises ClientDisconnect when the body ends early, and its error
    middleware sends a 500 first, then re-raises: this was logged at ERROR as "failed after
    its response was sent", with the traceback, though it is the client that left."""
    done = threading.Event()

    class ClientDisconnect(Exception):
        pass

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
            raise ClientDisconnect
        except ClientDisconnect:
            await send({**START, "status": 500})
            await send({"type": "http.response.body", "body": b"Internal Server Error"})
            raise
        finally:
            done.set()

    with caplog.at_level(logging.DEBUG, logger="crossgate"):
        result = call(
            wrap(app, lifespan="off"),
            method="POST",
            path="/upload",
            body=b"abc",
            content_length=100_000,
        )
        assert done.wait(5)
        time.sleep(0.05)  # the app's end is logged on the loop, just after it
    assert result.status == "500 Internal Server Error"
    records = [r for r in caplog.records if r.name.startswith("crossgate")]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)]
    assert records[0].getMessage() == (
        "the client left before the request body ended (POST /upload); the ASGI app "
        "stopped with ClientDisconnect"
    )


def test_an_error_after_the_response_started_is_raised_to_the_server_not_logged(
    wrap: Callable[..., ASGIToWSGI], caplog: pytest.LogCaptureFixture
) -> None:
    """The WSGI server logs what the iterable raises: logged here too, it was logged twice."""
    with caplog.at_level(logging.DEBUG, logger="crossgate"):
        _aborted(wrap(_failing_midway_app, lifespan="off"))
    assert not [r for r in caplog.records if r.name.startswith("crossgate")]


def test_lifespan_off_sends_no_lifespan_and_no_state(wrap: Callable[..., ASGIToWSGI]) -> None:
    types: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        types.append(scope["type"])
        await text_app(b"state" if "state" in scope else b"none")(scope, receive, send)

    assert call(wrap(app, lifespan="off")).body == b"none"
    assert types == ["http"]


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="lifespan"):
        ASGIToWSGI(text_app(), lifespan="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget"):
        ASGIToWSGI(text_app(), budget=0)


def test_response_does_not_wait_for_background_tasks(wrap: Callable[..., ASGIToWSGI]) -> None:
    events: list[str] = []
    gate = threading.Event()

    async def background() -> None:
        await anyio.to_thread.run_sync(gate.wait, WAIT)
        events.append("background done")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("sent", background=BackgroundTask(background))

    app = lifespan_app(events)
    app.add_route("/bg", endpoint)
    wrapper = wrap(app)
    assert call(wrapper, path="/bg").body == b"sent"
    assert events == ["startup"]  # the background task is still waiting

    process = wrapper._process
    assert process is not None
    gate.set()
    wrapper.close()  # awaits the background task, then the lifespan shutdown
    assert events == ["startup", "background done", "shutdown"]


def test_nothing_starts_before_the_first_request() -> None:
    """A pre-fork server (gunicorn --preload, Passenger) imports the app in its master: no
    thread or loop may exist there, or the forked workers would inherit a dead copy."""
    script = """
import threading
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi

async def app(scope, receive, send):
    pass

wrapper = asgi_to_wsgi(app)
print(threading.active_count(), wrapper.state)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.split() == ["1", "None"]


def test_interpreter_exit_runs_the_shutdown() -> None:
    script = """
import io, wsgiref.util
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive(); await send({"type": "lifespan.startup.complete"})
        await receive(); print("shutdown ran", flush=True)
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 204})
    await send({"type": "http.response.body"})

environ = {}
wsgiref.util.setup_testing_defaults(environ)
print(asgi_to_wsgi(app)(environ, lambda s, h, e=None: None), flush=True)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.splitlines() == ["[]", "shutdown ran"]


def test_the_shutdown_runs_at_exit_with_a_request_still_streaming() -> None:
    """At exit, the process first waits shutdown_timeout for requests still running, then
    cancels them, then runs the lifespan shutdown: all of it must fit in the close hook's
    bound. Under the portal's own default (here 0.5 s, 10 s at real exits) the hook timed
    out before the shutdown ran whenever a request was still streaming."""
    script = """
import io, wsgiref.util
from crossgate.adapters import _bridge
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive(); await send({"type": "lifespan.startup.complete"})
        await receive(); print("shutdown ran", flush=True)
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        await send({"type": "http.response.body", "body": b"tick", "more_body": True})

environ = {}
wsgiref.util.setup_testing_defaults(environ)
body = iter(asgi_to_wsgi(app, shutdown_timeout=0.4)(environ, lambda s, h, e=None: None))
print(next(body), flush=True)
_bridge.get_portal().close(timeout=0.5)  # what interpreter exit does, with a short bound
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    first, *rest = out.stdout.splitlines()
    assert first.startswith("b'tick")
    assert rest == ["shutdown ran"], out.stderr


DJANGO_SCRIPT = """
import io, wsgiref.util, wsgiref.validate
import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

def hello(request):
    return HttpResponse(f"{request.method} {request.path} {request.body!r}")

settings.configure(
    ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="test", DEBUG=False
)
urlpatterns = [path("hello", hello)]
django.setup()

from django.core.handlers.asgi import ASGIHandler
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi

app = asgi_to_wsgi(ASGIHandler())
environ = {}
wsgiref.util.setup_testing_defaults(environ)
environ.update(REQUEST_METHOD="POST", PATH_INFO="/hello", QUERY_STRING="",
               CONTENT_LENGTH="3", CONTENT_TYPE="text/plain")
environ["wsgi.input"] = io.BytesIO(b"abc")
seen = []
iterable = wsgiref.validate.validator(app)(environ, lambda s, h, e=None: seen.append(s))
try:
    print(seen[0], b"".join(iterable).decode())
finally:
    iterable.close()
app.close()
"""


def test_django_asgi_handler_runs_without_its_missing_lifespan() -> None:
    """Django's ASGIHandler raises on the lifespan scope: "auto" runs it without one.

    In a subprocess: Django's settings are process-wide.
    """
    pytest.importorskip("django")
    out = subprocess.run(
        [sys.executable, "-c", DJANGO_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "200 OK POST /hello b'abc'"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_its_own_loop_and_lifespan(wrap: Callable[..., ASGIToWSGI]) -> None:
    events: list[str] = []
    wrapper = wrap(lifespan_app(events))
    assert call(wrapper, path="/state").status == "200 OK"
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process with threads (the portal's): that is
        # precisely what pre-fork servers do, and what this test is about.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            result = call(wrapper, path="/state")
            ok = result.body == b"['connection'] ['added', 'pool']" and events == [
                "startup",
                "startup",
            ]
            os.write(write_end, b"ok" if ok else repr((result, events)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert answer == b"ok"
    assert os.waitstatus_to_exitcode(status) == 0


# --------------------------------------------------------------------------------------------
# pathsend and the scope
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_wrapper", [True, False])
def test_pathsend_streams_the_file(
    wrap: Callable[..., ASGIToWSGI], tmp_path: Path, file_wrapper: bool
) -> None:
    data = os.urandom(200_000)
    target = tmp_path / "data.bin"
    target.write_bytes(data)
    extensions: list[Any] = []

    async def download(request: Request) -> Response:
        extensions.append(request.scope["extensions"])
        return FileResponse(target, media_type="application/octet-stream")

    wrapper = wrap(Starlette(routes=[Route("/f", download)]), lifespan="off")
    extra = {"wsgi.file_wrapper": wsgiref.util.FileWrapper} if file_wrapper else {}
    result = call(wrapper, path="/f", extra=extra)
    assert result.status == "200 OK"
    assert result.body == data
    assert "http.response.pathsend" in extensions[0]
    inner = result.iterable.original_iterator
    assert isinstance(inner, wsgiref.util.FileWrapper) is file_wrapper


def test_pathsend_of_a_missing_file_is_500(wrap: Callable[..., ASGIToWSGI], tmp_path: Path) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "missing")})

    assert call(wrap(app, lifespan="off")).status == "500 Internal Server Error"


def test_scope_from_the_environ(wrap: Callable[..., ASGIToWSGI]) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await text_app()(scope, receive, send)

    environ = make_environ(
        path="/caf\u00c3\u00a9",  # UTF-8 bytes of "café" as a latin-1 native string
        query="q=\u00e9",
        extra={"SCRIPT_NAME": "/root", "REMOTE_ADDR": "10.0.0.1", "HTTP_X_ONE": "1"},
    )
    environ.pop("REMOTE_PORT", None)
    call(wrap(app, lifespan="off"), environ)
    scope = scopes[0]
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"] == "2.4"
    assert scope["path"] == "/root/caf\u00e9"
    assert scope["root_path"] == "/root"
    assert scope["query_string"] == b"q=\xe9"
    assert scope["client"][0] == "10.0.0.1"
    assert (b"x-one", b"1") in scope["headers"]
    assert scope[ENVIRON_SCOPE_KEY] is environ
    assert scope["extensions"] == {"http.response.pathsend": {}}


def test_fastapi_app_end_to_end(wrap: Callable[..., ASGIToWSGI]) -> None:
    from fastapi import FastAPI  # noqa: PLC0415

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hi"}

    api = FastAPI(lifespan=lifespan)

    @api.post("/echo/{name}")
    async def echo(name: str, request: Request) -> dict[str, Any]:
        return {
            "name": name,
            "size": len(await request.body()),
            "greeting": request.state.greeting,
        }

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"y" * 20_000

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    wrapper = wrap(api)
    result = call(wrapper, method="POST", path="/echo/bob", body=b"z" * 100_000)
    assert result.body == b'{"name":"bob","size":100000,"greeting":"hi"}'
    assert call(wrapper, path="/stream").body == b"y" * 200_000


def test_quart_app_end_to_end_and_accepted_by_the_type_checker() -> None:
    # Quart annotates its __call__ with hypercorn's TypedDicts: asgi_to_wsgi(app), called
    # here directly (not through the untyped `wrap`), must type-check all the same.
    from quart import Quart, request  # noqa: PLC0415

    app = Quart(__name__)
    opened: list[asyncio.AbstractEventLoop] = []

    @app.before_serving
    async def open_resource() -> None:
        opened.append(asyncio.get_running_loop())

    @app.post("/echo/<name>")
    async def echo(name: str) -> dict[str, Any]:
        body = await request.get_data()
        same_loop = opened == [asyncio.get_running_loop()]
        return {"name": name, "size": len(body), "same_loop": same_loop}

    @app.get("/stream")
    async def stream() -> tuple[AsyncIterator[bytes], int]:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"q" * 20_000

        return chunks(), 200

    wrapper = asgi_to_wsgi(app)
    try:
        result = call(wrapper, method="POST", path="/echo/ann", body=b"z" * 100_000)
        assert result.status == "200 OK"
        assert json.loads(result.body) == {"name": "ann", "size": 100_000, "same_loop": True}
        assert call(wrapper, path="/stream").body == b"q" * 200_000
    finally:
        wrapper.close()


def test_quart_trio_app_end_to_end_on_the_trio_portal() -> None:
    import trio  # noqa: PLC0415
    from quart import request  # noqa: PLC0415
    from quart_trio import QuartTrio  # noqa: PLC0415

    app = QuartTrio(__name__)
    opened: list[trio.lowlevel.TrioToken] = []

    @app.before_serving
    async def open_resource() -> None:
        opened.append(trio.lowlevel.current_trio_token())

    @app.post("/echo/<name>")
    async def echo(name: str) -> dict[str, Any]:
        body = await request.get_data()
        await trio.lowlevel.checkpoint()  # trio's own, which no asyncio loop could run
        same_loop = opened == [trio.lowlevel.current_trio_token()]
        return {"name": name, "size": len(body), "same_loop": same_loop}

    @app.get("/stream")
    async def stream() -> tuple[AsyncIterator[bytes], int]:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                await trio.lowlevel.checkpoint()
                yield b"q" * 20_000

        return chunks(), 200

    wrapper = asgi_to_wsgi(app, backend="trio")
    try:
        result = call(wrapper, method="POST", path="/echo/ann", body=b"z" * 100_000)
        assert result.status == "200 OK"
        assert json.loads(result.body) == {"name": "ann", "size": 100_000, "same_loop": True}
        assert call(wrapper, path="/stream").body == b"q" * 200_000
    finally:
        wrapper.close()


def test_a_trio_app_on_the_default_backend_fails_and_says_so() -> None:
    """The backend cannot be detected: a trio app on the asyncio portal fails with trio's
    own error (answered 500), which is why the option exists."""
    import trio  # noqa: PLC0415

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await trio.lowlevel.checkpoint()

    wrapper = asgi_to_wsgi(app, lifespan="off")
    try:
        assert call(wrapper).status == "500 Internal Server Error"
    finally:
        wrapper.close()


def test_invalid_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend"):
        ASGIToWSGI(text_app(), backend="curio")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Properties: what the ASGI app sends is what the WSGI server gets
# --------------------------------------------------------------------------------------------

header_names = st.sampled_from([b"content-type", b"x-a", b"x-b", b"set-cookie", b"etag"])
header_values = st.binary(max_size=20).map(
    lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F)
)
body_parts = st.lists(st.binary(max_size=3000), max_size=12)


@st.composite
def behaviours(draw: st.DrawFn) -> tuple[int, list[tuple[bytes, bytes]], list[Message]]:
    status = draw(st.sampled_from([200, 201, 301, 404, 418, 500, 503, 599]))
    headers = [(b"content-type", b"application/octet-stream")]
    headers += draw(st.lists(st.tuples(header_names, header_values), max_size=5))
    parts = draw(body_parts)
    messages: list[Message] = []
    for part in parts:
        message: Message = {"type": "http.response.body", "more_body": True}
        if part or draw(st.booleans()):
            message["body"] = part
        messages.append(message)
    last: Message = {"type": "http.response.body"}
    if draw(st.booleans()):
        last["more_body"] = False
    if draw(st.booleans()):
        last["body"] = draw(st.binary(max_size=100))
    messages.append(last)
    return status, headers, messages


class Replay:
    """An ASGI app that reads the request, records it, and replays a planned response."""

    def __init__(self) -> None:
        self.plans: dict[str, tuple[int, list[tuple[bytes, bytes]], list[Message]]] = {}
        self.requests: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append((scope["method"], scope["path"], body))
        status, headers, messages = self.plans[scope["query_string"].decode()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for message in messages:
            await send(message)


@pytest.fixture(scope="module")
def replay() -> Iterator[tuple[ASGIToWSGI, Replay]]:
    """One adapter (a small byte budget, so streams hit backpressure) for all examples."""
    app = Replay()
    wrapper = asgi_to_wsgi(app, lifespan="off", budget=2048)
    yield wrapper, app
    wrapper.close()


segments = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="/?#"), max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    behaviour=behaviours(),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    path=st.lists(segments, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    request_body=st.one_of(st.binary(max_size=2000), st.binary(min_size=60_000, max_size=150_000)),
    step=st.one_of(st.none(), st.integers(1000, 70_000)),
    terminated=st.booleans(),
)
def test_wsgi_response_matches_what_the_asgi_app_sent(
    replay: tuple[ASGIToWSGI, Replay],
    behaviour: tuple[int, list[tuple[bytes, bytes]], list[Message]],
    method: str,
    path: str,
    request_body: bytes,
    step: int | None,
    terminated: bool,
) -> None:
    wrapper, app = replay
    status, headers, messages = behaviour
    key = str(len(app.plans))
    app.plans[key] = behaviour
    result = call(
        wrapper,
        method=method,
        # PEP 3333: PATH_INFO holds the request's bytes decoded as latin-1.
        path=path.encode().decode("latin-1"),
        query=key,
        body=request_body,
        terminated=terminated,
        step=step,
    )
    assert app.requests[-1] == (method, path, request_body)
    assert int(result.status[:3]) == status
    # RFC 9110 5.5: "a field value does not include leading or trailing whitespace".
    assert result.headers == [(n.decode(), v.decode("latin-1").strip(" \t")) for n, v in headers]
    assert result.body == b"".join(m.get("body", b"") for m in messages)
