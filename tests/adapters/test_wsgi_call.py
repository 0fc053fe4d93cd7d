"""One WSGI call (``_wsgi_call``): the app run on its worker, its response sent from the
loop (whole, streamed within the budget, stopped by a disconnect), and nothing left behind.

Test apps run inside ``wsgiref.validate.validator`` where the behaviour allows (pytest
turns its warnings into errors).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from wsgiref.validate import validator

import anyio
import pytest

from crossgate._errors import ClientDisconnected, InvalidResponse
from crossgate._types import Environ, Message, StartResponse, WSGIApp
from crossgate.adapters._bridge import running_loop
from crossgate.adapters._wsgi_body import BodyReceiver
from crossgate.adapters._wsgi_call import ResponseState, WSGIJob
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from tests.adapters.support import no_new_cycles
from tests.adapters.wsgi_server import (
    BODY,
    Closing,
    Exchange,
    Flag,
    app_returning,
    live_tasks,
    ragged,
    reading_app,
    run_cancelled,
)

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]


async def test_list_body_is_one_start_and_one_body_message(make: Callable[..., WSGIToASGI]) -> None:
    # No validator here: it wraps the list in an iterator, and this is the list fast path.
    app = make(app_returning([b"Hello, ", b"", b"world"]))
    ex = await Exchange().run(app)
    assert [m["type"] for m in ex.messages] == ["http.response.start", "http.response.body"]
    assert ex.status == 200
    assert ex.headers == [(b"content-type", b"text/plain")]
    assert ex.body_bytes == b"Hello, world"
    assert ex.complete


async def test_large_list_body_is_sent_without_joining(make: Callable[..., WSGIToASGI]) -> None:
    chunks = [b"a" * 100, b"b" * 100, b"c" * 100]
    ex = await Exchange().run(make(app_returning(chunks), budget=150))
    assert [m["body"] for m in ex.messages[1:-1]] == chunks
    assert ex.complete
    assert ex.body_bytes == b"".join(chunks)


@pytest.mark.parametrize("kind", ["list", "generator", "write"])
async def test_body_kinds_give_the_same_bytes(make: Callable[..., WSGIToASGI], kind: str) -> None:
    chunks = [b"", b"one", b"", b"two", b"three", b""]

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("201 Created", [("Content-Type", "text/plain"), ("X-A", "1")])
        if kind == "write":
            for chunk in chunks:
                write(chunk)
            return []
        return chunks if kind == "list" else iter(chunks)

    ex = await Exchange().run(make(validator(app)))
    assert ex.status == 201
    assert ex.headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert ex.body_bytes == b"onetwothree"
    assert ex.complete


async def test_write_then_returned_iterable_keep_order(make: Callable[..., WSGIToASGI]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"b")
        return [b"c", b"d"]

    ex = await Exchange().run(make(validator(app)))
    assert ex.body_bytes == b"abcd"
    assert ex.complete


async def test_headers_wait_for_the_first_non_empty_chunk(make: Callable[..., WSGIToASGI]) -> None:
    """An error after only empty chunks still becomes a clean 500: nothing was sent."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        yield b""
        raise RuntimeError("boom")

    ex = Exchange()
    with pytest.raises(RuntimeError, match="boom"):
        await ex.run(make(app))
    assert ex.status == 500
    assert ex.complete


async def test_empty_generator_sends_headers_at_the_end(make: Callable[..., WSGIToASGI]) -> None:
    ex = await Exchange().run(
        make(validator(app_returning(iter([b"", b""]), "204 No Content", [])))
    )
    assert ex.status == 204
    assert ex.body_bytes == b""
    assert ex.complete


async def test_exc_info_before_body_replaces_the_status(make: Callable[..., WSGIToASGI]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info()
            )
        yield b"sorry"

    ex = await Exchange().run(make(validator(app)))
    assert ex.status == 503
    assert ex.body_bytes == b"sorry"
    assert ex.complete


async def test_exc_info_after_headers_reraises_and_aborts(make: Callable[..., WSGIToASGI]) -> None:
    seen: dict[str, BaseException] = {}

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise ValueError("late failure")
        except ValueError:
            try:
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            except ValueError as exc:
                seen["reraised"] = exc
                raise

    ex = Exchange()
    with pytest.raises(ValueError, match="late failure"):
        await ex.run(make(app))
    assert isinstance(seen["reraised"], ValueError)
    assert not ex.complete  # no final more_body=False: the response is aborted


async def test_second_start_response_without_exc_info_is_an_error(
    make: Callable[..., WSGIToASGI],
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        start_response("404 Not Found", [])
        return [b"never"]

    ex = Exchange()
    with pytest.raises(InvalidResponse, match="second time"):
        await ex.run(make(app))
    assert ex.status == 500


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("200", []),
        ("2000 OK", []),
        ("OK 200", []),
        ("200 OK\r\nX-Injected: 1", []),
        (b"200 OK", []),
        ("200 OK", [("X-Bad", "a\r\nSet-Cookie: x=1")]),
        ("200 OK", [("Bad Name", "v")]),
        ("200 OK", [("X-Euro", "\u20ac")]),
        ("200 OK", [("X-Num", 1)]),
        ("200 OK", [("Content-Length", "ten")]),
    ],
)
async def test_invalid_status_or_header_gives_500(
    make: Callable[..., WSGIToASGI], status: Any, headers: list[Any]
) -> None:
    """start_response refuses it in the app: the client gets a 500, the server the error."""
    ex = Exchange()
    with pytest.raises(InvalidResponse):
        await ex.run(make(app_returning([b"body"], status, headers)))
    assert ex.status == 500
    assert ex.body_bytes == b"Internal Server Error"
    assert ex.complete


async def test_non_bytes_body_gives_500(make: Callable[..., WSGIToASGI]) -> None:
    ex = Exchange()
    with pytest.raises(TypeError, match="bytes"):
        await ex.run(make(app_returning(["text"])))  # type: ignore[list-item]
    assert ex.status == 500


async def test_headers_as_two_item_lists_are_taken(make: Callable[..., WSGIToASGI]) -> None:
    """gunicorn, waitress and every peer take ``[["X-A", "1"]]``; it gave 500."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [["Content-Type", "text/plain"], ["X-A", " 1"]])  # type: ignore[list-item]
        return [b"ok"]

    ex = await Exchange().run(make(app))
    assert ex.status == 200
    assert ex.headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert ex.body_bytes == b"ok"


@pytest.mark.parametrize("kind", ["list", "generator"])
async def test_content_length_overrun_is_cut(make: Callable[..., WSGIToASGI], kind: str) -> None:
    body = Closing([b"hello", b" world", b"!" * 100, b"more"])
    headers = [("Content-Type", "text/plain"), ("Content-Length", "8")]
    result: Iterable[bytes] = list(body.chunks) if kind == "list" else body
    ex = await Exchange().run(make(app_returning(result, headers=headers)))
    assert ex.body_bytes == b"hello wo"
    assert ex.complete
    if kind == "generator":
        assert body.pulled == 2  # iteration stopped once the declared length was reached
        assert body.close_calls == 1


async def test_head_passes_the_body_through(make: Callable[..., WSGIToASGI]) -> None:
    ex = await Exchange(method="HEAD").run(make(validator(app_returning([b"abc"]))))
    assert ex.status == 200
    assert ex.body_bytes == b"abc"


async def test_error_before_headers_is_a_500_then_raised_to_the_server(
    make: Callable[..., WSGIToASGI], caplog: pytest.LogCaptureFixture
) -> None:
    """The client gets a whole 500; the server gets the app's own exception after it (and
    logs it as every ASGI server does; test clients re-raise it), once: crossgate does not
    log it as well."""
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        error = KeyError("missing thing")
        raised.append(error)
        raise error

    ex = Exchange()
    with caplog.at_level(logging.DEBUG, logger="crossgate"), pytest.raises(KeyError) as caught:
        await ex.run(make(app))
    assert caught.value is raised[0]
    assert ex.status == 500
    assert ex.complete
    assert ex.body_bytes == b"Internal Server Error"
    assert not [r for r in caplog.records if r.name.startswith("crossgate")]


async def test_an_app_giving_up_on_a_body_the_client_cut_is_one_quiet_line(
    make: Callable[..., WSGIToASGI], caplog: pytest.LogCaptureFixture
) -> None:
    """Django wraps the read's ClientDisconnected in its UnreadablePostError (an OSError
    raised ``from`` it): a client that leaves is not an application error, so neither a
    traceback nor an error for the server."""

    class UnreadablePostError(OSError):
        pass

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            raise UnreadablePostError(*exc.args) from exc
        start_response("200 OK", [])
        return [b"never"]

    with caplog.at_level(logging.DEBUG, logger="crossgate"):
        await Exchange([b"part"], cut=True, method="POST", path="/upload").run(make(app))
    records = [r for r in caplog.records if r.name.startswith("crossgate")]
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert "the client disconnected" in records[0].getMessage()
    assert records[0].exc_info is None


async def test_an_unrelated_error_after_a_disconnect_is_logged_as_the_apps(
    make: Callable[..., WSGIToASGI], caplog: pytest.LogCaptureFixture
) -> None:
    """Only an error that comes from the disconnect is the client's doing; the app's own
    bug is logged with its traceback (the client, and the request, are gone)."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        with contextlib.suppress(OSError):
            environ["wsgi.input"].read()
        raise ZeroDivisionError("the app's own bug")

    with caplog.at_level(logging.DEBUG, logger="crossgate"):
        await Exchange([b"part"], cut=True, method="POST").run(make(app))
    records = [r for r in caplog.records if r.name.startswith("crossgate")]
    assert [r.levelno for r in records] == [logging.ERROR]
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is ZeroDivisionError


async def test_missing_start_response_gives_500(make: Callable[..., WSGIToASGI]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return [b"no status"]

    ex = Exchange()
    with pytest.raises(InvalidResponse, match="without calling start_response"):
        await ex.run(make(app))
    assert ex.status == 500


async def test_stream_keeps_at_most_the_budget_in_flight(make: Callable[..., WSGIToASGI]) -> None:
    """Produced but unsent bytes stay bounded: one batch being sent plus the budget queued.

    A batch ends once it holds >= 35 bytes (4 chunks of 10), so at each chunk the worker
    makes, at most 4 are being sent, 4 queued and 1 in hand: 90 bytes.
    """
    ex = Exchange()
    ex.send_gate = Flag()  # send() is stuck until the worker had time to run ahead
    worst: list[int] = []
    stuck = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for index in range(200):
            worst.append(index * 10 - ex.sent_bytes)
            if index == 4:
                stuck.set()  # the first batch is stuck in send() and 4 chunks are queued
            yield b"x" * 10

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ex.run, make(app, budget=35))
        await anyio.to_thread.run_sync(stuck.wait, 5)
        ex.send_gate.set()
    assert ex.body_bytes == b"x" * 2000
    assert max(worst) <= 90


async def test_disconnect_stops_an_endless_generator_on_its_thread(
    make: Callable[..., WSGIToASGI],
) -> None:
    body = Closing([b"tick"], endless=True)
    body.gate = threading.Event()  # slow producer: one chunk per gate opening
    seen: dict[str, Any] = {}
    ex = Exchange()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ex.run, make(app_returning(body, seen=seen)))
        await ex.started.wait()
        body.gate.set()
        ex.leave()
    assert body.closed.wait(5)
    assert body.close_calls == 1
    assert body.close_thread == seen["thread"]
    assert not ex.complete


async def test_a_client_leaving_while_the_first_send_waits_stops_the_app(
    make: Callable[..., WSGIToASGI],
) -> None:
    """On HTTP/2 a send() can wait for flow control that a closed connection never grants
    (hypercorn): the client leaving during the first batch must still be heard, and the
    generator closed. It went unheard: the disconnect watcher started after that batch."""
    body = Closing([b"x" * 1024], endless=True)
    ex = Exchange()
    ex.send_gate = Flag()  # body sends wait until the test lets them go
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(ex.run, make(app_returning(body), budget=4096))
            for _ in range(200):
                if body.pulled > 4:
                    break
                await anyio.sleep(0.01)
            ex.leave()
            assert await anyio.to_thread.run_sync(body.closed.wait, 5)
            ex.send_gate.set()  # the server lets its send() return at last


@pytest.mark.parametrize("error", [OSError("broken pipe"), ClientDisconnected("gone")])
async def test_send_raising_oserror_is_a_disconnect(
    make: Callable[..., WSGIToASGI], error: BaseException
) -> None:
    body = Closing([b"tick"], endless=True)
    seen: dict[str, Any] = {}
    ex = Exchange()
    ex.send_error = error
    await ex.run(make(app_returning(body, seen=seen)))
    assert body.closed.wait(5)
    assert body.close_thread == seen["thread"]


async def test_send_raising_anything_else_propagates_without_hanging(
    make: Callable[..., WSGIToASGI],
) -> None:
    body = Closing([b"tick"], endless=True)
    ex = Exchange()
    ex.send_error = RuntimeError("server bug")
    with pytest.raises(RuntimeError, match="server bug"):
        await ex.run(make(app_returning(body)))
    assert body.closed.wait(5)


async def test_cancelled_request_releases_the_worker(make: Callable[..., WSGIToASGI]) -> None:
    body = Closing([b"tick"], endless=True)
    body.gate = threading.Event()
    ex = Exchange()
    assert await run_cancelled(ex, make(app_returning(body)), ex.started.wait)
    body.gate.set()
    assert body.closed.wait(5)


async def test_a_request_cancelled_before_its_first_chunk_stops_the_app_at_that_chunk(
    make: Callable[..., WSGIToASGI],
) -> None:
    # The response channel opens with the first chunk: a stop that came before it (here the
    # task is cancelled while the app is still computing) must reach the first put.
    body = Closing([b"tick"], endless=True)
    computing = threading.Event()
    go_on = threading.Event()
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen["thread"] = threading.get_ident()
        start_response("200 OK", [("Content-Type", "text/plain")])
        computing.set()
        go_on.wait(5)
        return body

    ex = Exchange()

    async def computes() -> None:
        assert await anyio.to_thread.run_sync(computing.wait, 5)

    assert await run_cancelled(ex, make(app), computes)
    go_on.set()
    assert await anyio.to_thread.run_sync(body.closed.wait, 5)
    assert body.pulled == 1  # stopped at its first chunk, not after the budget filled up
    assert body.close_thread == seen["thread"]
    assert not ex.started.is_set()


async def test_no_tasks_are_left_behind(make: Callable[..., WSGIToASGI]) -> None:
    body = Closing([b"a", b"b"])
    body.gate = threading.Event()
    before = live_tasks()
    ex = Exchange()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ex.run, make(app_returning(body)))
        await ex.started.wait()
        body.gate.set()
    assert live_tasks() == before


async def test_the_response_state_moves_forward_only(make: Callable[..., WSGIToASGI]) -> None:
    """CALLING, STARTED (again with exc_info), COMMITTED, FINISHED: one place moves it,
    and it refuses a move backwards."""
    adapter = make(app_returning([]))
    loop = running_loop()

    async def receive() -> Message:
        raise AssertionError("not received here")

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent here")

    first: Message = {"type": "http.request", "body": b"", "more_body": False}
    body = BodyReceiver(loop, receive, first, adapter.max_request_body, adapter.body_timeout)
    request = WSGIJob(loop, Exchange().scope, send, body, adapter.budget)

    def state(request: WSGIJob) -> ResponseState:  # read anew each time (no narrowing)
        return request.state

    assert state(request) is ResponseState.CALLING
    request.start_response("200 OK", [])
    assert state(request) is ResponseState.STARTED
    try:
        raise ValueError("the app changes its mind")
    except ValueError:
        request.start_response("500 Oops", [], sys.exc_info())
    assert (state(request), request.status) == (ResponseState.STARTED, 500)
    request.write(b"")  # PEP 3333: headers are sent at the first write(), even empty
    assert state(request) is ResponseState.COMMITTED
    with pytest.raises(RuntimeError, match="cannot go from committed to started"):
        request._move(ResponseState.STARTED)
    request._finish()
    assert state(request) is ResponseState.FINISHED
    body.finish()


def _read_in_pieces(stream: Any) -> int:
    return sum(len(piece) for piece in iter(lambda: stream.read(7), b""))


def _read_content_length(stream: Any) -> int:
    # Reads what CONTENT_LENGTH promises and no further, as PEP 3333 asks of apps: the
    # message that ends the body may still be on its way (being read ahead) as it returns.
    remaining = len(BODY)
    while remaining:
        remaining -= len(stream.read(min(7, remaining)))
    return len(BODY)


def _streaming_reader(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    # Streams past the budget (the disconnect watcher runs) and reads part of the body.
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield environ["wsgi.input"].read(7)
    yield from [b"x" * 50] * 8


def _reads_past_the_client(environ: Environ, start_response: StartResponse) -> list[bytes]:
    # Reads the whole body, which the client cut short, and answers all the same.
    with contextlib.suppress(OSError):
        environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]


def _reads_no_matter_what(environ: Environ, start_response: StartResponse) -> list[bytes]:
    environ["wsgi.input"].read()  # the read's error leaves the app: a 500
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]


NO_CYCLE_CASES = [
    pytest.param(app_returning([b"hello"]), (), {}, id="list-body"),
    pytest.param(app_returning(Closing([b"x" * 50] * 8)), (), {}, id="streamed-over-budget"),
    pytest.param(reading_app(_read_in_pieces, {}), ragged(BODY), {}, id="body-read-in-pieces"),
    pytest.param(
        reading_app(_read_content_length, {}),
        [BODY[:30], BODY[30:]],
        {"pending": True},
        id="body-end-still-coming",  # the read-ahead is cancelled as the request ends
    ),
    pytest.param(
        reading_app(_read_content_length, {}),
        [BODY[:30], BODY[30:]],
        {"pending": True, "headers": [(b"content-length", str(len(BODY)).encode())]},
        id="body-end-still-coming-with-length",
    ),
    pytest.param(_streaming_reader, [BODY[:30], BODY[30:]], {"pending": True}, id="watched-stream"),
    pytest.param(_reads_past_the_client, ragged(BODY), {"cut": True}, id="client-left-mid-body"),
    pytest.param(_reads_no_matter_what, ragged(BODY), {"cut": True}, id="read-error-out-of-app"),
]


@pytest.mark.parametrize(("app", "body", "options"), NO_CYCLE_CASES)
async def test_a_request_leaves_no_reference_cycles(
    make: Callable[..., WSGIToASGI],
    app: WSGIApp,
    body: Sequence[bytes],
    options: dict[str, Any],
) -> None:
    """Everything a request makes is freed by reference counting as it ends: garbage
    left to the cyclic collector would cost every request its share of a collection, and
    keep the body it holds (up to a message of the body) alive until then."""
    adapter = make(app, budget=120)
    for _ in range(3):  # first-use state (the pool, its threads, caches) made beforehand
        await Exchange(body, method="POST", **options).run(adapter)
    with no_new_cycles():
        for _ in range(10):
            await Exchange(body, method="POST", **options).run(adapter)


async def _cut_short(adapter: WSGIToASGI, how: str) -> None:
    """One streamed request the client leaves (``http.disconnect``, or ``send()`` fails) or
    the server cancels."""
    ex = Exchange()
    if how == "send-oserror":
        ex.send_error = OSError("broken pipe")
    elif how == "send-raises":
        ex.send_error = RuntimeError("server bug")

    async def request() -> None:
        with contextlib.suppress(RuntimeError):
            await ex.run(adapter)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(request)
        if how == "cancelled":
            await ex.started.wait()
            tasks.cancel_scope.cancel()
        elif how == "client-left":
            await ex.started.wait()
            ex.leave()
    # The test's own reference, so that only the adapter's could make a cycle: the error's
    # traceback holds Exchange.send's frame and its Exchange.
    ex.send_error = None
    # The worker raised the stop, closed the body and finished its job.
    assert await adapter.pool.drain(5)


def _endless(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"tick"], endless=True)


def _writes_until_it_fails(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    # Takes the OSError from write() as its cue to stop, and returns normally.
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    with contextlib.suppress(OSError):
        while True:
            write(b"tick")
    return []


class _Gone(Exception):
    pass


def _translates_the_stop(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    # Turns the OSError into an error of its own, as frameworks do.
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        while True:
            write(b"tick")
    except OSError:
        raise _Gone from None


@pytest.mark.parametrize("app", [_endless, _writes_until_it_fails, _translates_the_stop])
@pytest.mark.parametrize("how", ["client-left", "send-oserror", "send-raises", "cancelled"])
async def test_a_request_cut_short_leaves_no_reference_cycles(
    make: Callable[..., WSGIToASGI], how: str, app: WSGIApp
) -> None:
    """A stop is kept and raised in the worker, and send()'s error re-raised: their
    tracebacks must not tie the request (and the chunks it holds) into a cycle, whether the
    app lets the stop through, swallows it or raises another error in its place."""
    adapter = make(app, budget=120)
    for _ in range(3):
        await _cut_short(adapter, how)
    with no_new_cycles():
        for _ in range(5):
            await _cut_short(adapter, how)


async def test_an_app_failing_after_its_headers_leaves_no_reference_cycles(
    make: Callable[..., WSGIToASGI],
) -> None:
    """The app's error crosses to the loop through the response channel and goes on to the
    server: the channel must not keep it, or its traceback would hold the channel."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"x" * 50
        raise ValueError("the app's bug, after its headers")

    adapter = make(app, budget=120)

    async def one() -> None:
        with pytest.raises(ValueError, match="after its headers"):
            await Exchange().run(adapter)
        assert await adapter.pool.drain(5)

    for _ in range(3):
        await one()
    with no_new_cycles():
        for _ in range(5):
            await one()


@pytest.mark.parametrize("error", [ValueError, SystemExit])
async def test_an_app_failing_before_its_headers_leaves_no_reference_cycles(
    make: Callable[..., WSGIToASGI], error: type[BaseException]
) -> None:
    """The app's error waits on the request while the 500 goes out, then leaves for the
    server: the request must let go of it, or its traceback (which holds the worker's and
    the loop's frames) would tie them into a cycle."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if error is SystemExit:
            start_response("200 OK", [])
            return _ClosingRaises([b"x"])
        raise error("the app's bug, before its headers")

    adapter = make(app, budget=120)

    async def one() -> None:
        with pytest.raises(error):
            await Exchange().run(adapter)
        assert await adapter.pool.drain(5)

    for _ in range(3):
        await one()
    with no_new_cycles():
        for _ in range(5):
            await one()


class _ClosingRaises(list[bytes]):
    def close(self) -> None:
        raise SystemExit("closing failed")


@pytest.fixture
def data_file() -> Iterator[str]:
    with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
        handle.write(b"0123456789" * 1000)
    yield handle.name
    os.unlink(handle.name)


def file_app(path: str, opened: list[Any], block: int | None = None) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        handle = open(path, "rb")  # noqa: SIM115 - the adapter closes it
        opened.append(handle)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper = environ["wsgi.file_wrapper"]
        result: Iterable[bytes] = wrapper(handle) if block is None else wrapper(handle, block)
        return result

    return app


async def test_file_wrapper_streams_in_blocks(
    make: Callable[..., WSGIToASGI], data_file: str
) -> None:
    opened: list[Any] = []
    ex = await Exchange().run(make(file_app(data_file, opened, 4096)))
    assert ex.body_bytes == b"0123456789" * 1000
    assert ex.complete
    assert opened[0].closed


async def test_file_wrapper_uses_pathsend(make: Callable[..., WSGIToASGI], data_file: str) -> None:
    opened: list[Any] = []
    ex = Exchange(extensions={"http.response.pathsend": {}})
    await ex.run(make(file_app(data_file, opened)))
    assert ex.messages[1] == {"type": "http.response.pathsend", "path": data_file}
    assert opened[0].closed


async def test_file_wrapper_uses_zerocopysend(
    make: Callable[..., WSGIToASGI], data_file: str
) -> None:
    opened: list[Any] = []
    ex = Exchange(extensions={"http.response.zerocopysend": {}})
    await ex.run(make(file_app(data_file, opened)))
    message = ex.messages[1]
    assert message["type"] == "http.response.zerocopysend"
    assert message["file"] is opened[0]
    assert (message["offset"], message["count"]) == (0, 10000)
    assert opened[0].closed


async def test_file_wrapper_over_a_non_file_streams(make: Callable[..., WSGIToASGI]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        result: Iterable[bytes] = environ["wsgi.file_wrapper"](io.BytesIO(b"in memory"), 2)
        return result

    ex = Exchange(extensions={"http.response.pathsend": {}, "http.response.zerocopysend": {}})
    await ex.run(make(app))
    assert ex.body_bytes == b"in memory"
    assert ex.complete
