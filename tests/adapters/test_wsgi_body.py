"""The loop's side of the request body (``_wsgi_body``): its state, reading one message
ahead and no more, the disconnect watcher, ``max_request_body`` and ``body_timeout``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

import anyio
import anyio.lowlevel
import pytest

from crossgate._errors import ClientDisconnected, RequestBodyTooLarge
from crossgate._types import Environ, Message, StartResponse
from crossgate.adapters._bridge import running_loop
from crossgate.adapters._wsgi_body import BodyReceiver, BodyState
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from tests.adapters.wsgi_server import (
    CHUNKINGS,
    Chunking,
    Exchange,
    Flag,
    reading_app,
    slow_client,
)

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]


async def test_at_most_one_message_is_read_ahead(make: Callable[..., WSGIToASGI]) -> None:
    seen: dict[str, Any] = {}
    ex = Exchange([b"ab", b"cd", b"ef", b"gh", b"ij"], method="POST")
    probe: dict[str, int] = {}

    def op(f: Any) -> bytes:
        data: bytes = f.read(3)
        time.sleep(0.05)  # time enough for the loop to read further ahead, were it to
        probe["receives"] = ex.receives
        return data

    await ex.run(make(reading_app(op, seen)))
    assert seen["result"] == b"abc"
    # Two messages hold the 3 bytes asked for; the loop receives the third ahead of the
    # app's next read, and not the fourth.
    assert probe["receives"] == 3
    assert ex.receives == 3


async def test_a_read_waiting_behind_the_read_ahead_sees_its_disconnect(
    make: Callable[..., WSGIToASGI],
) -> None:
    """The message read ahead is a disconnect while a read waits for the receive() lock:
    the read raises, and does not call receive() again (on hypercorn, say, nothing more
    would ever come)."""
    seen: dict[str, Any] = {}
    calls: list[str] = []
    leave = Flag()

    async def receive() -> Message:
        calls.append("receive")
        if len(calls) == 1:
            return {"type": "http.request", "body": b"ab", "more_body": True}
        if len(calls) == 2:
            await leave.wait()
            return {"type": "http.disconnect"}
        await anyio.sleep_forever()  # nothing after the disconnect: a hang
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    def op(f: Any) -> bytes:
        data: bytes = f.read(2)  # the first message; the loop now reads the next ahead
        # In 50 ms the read has made its trip and waits for the lock.
        loop.call_soon_threadsafe(loop.call_later, 0.05, leave.set)
        more: bytes = f.read(2)  # waits behind the read-ahead, which gets the disconnect
        return data + more

    loop = running_loop()
    scope = Exchange(method="POST").scope
    with anyio.fail_after(5):
        await make(reading_app(op, seen))(scope, receive, send)
    assert isinstance(seen["error"], ClientDisconnected)
    assert calls == ["receive", "receive"]


async def test_a_read_handed_the_message_it_waited_for_reads_only_one_more_ahead(
    make: Callable[..., WSGIToASGI],
) -> None:
    """The loop reads on as it hands a waiting worker its message: one message ahead of
    the app, never two, however long the app then takes."""
    seen: dict[str, Any] = {}
    parts = [b"ab", b"cd", b"ef", b"gh", b"ij"]
    calls: list[str] = []

    receive = slow_client(parts, calls)

    probe: dict[str, int] = {}

    def op(f: Any) -> list[bytes]:
        first: bytes = f.read(2)
        time.sleep(0.01)  # the loop starts receiving the next message ahead meanwhile
        second: bytes = f.read(2)  # waits for it, and is handed it
        time.sleep(0.2)  # time enough for the loop to read far ahead, were it to
        probe["receives"] = len(calls)
        return [first, second]

    async def send(message: Message) -> None:
        pass

    with anyio.fail_after(5):
        await make(reading_app(op, seen))(Exchange(method="POST").scope, receive, send)
    assert seen["result"] == [b"ab", b"cd"]
    assert probe["receives"] == 3  # "ab" before the app, "cd" asked for, "ef" ahead


def _body(first: Message, *, limit: int | None = None) -> tuple[BodyReceiver, list[str]]:
    """A body over ``first``, and the reasons it gives when its client leaves."""
    reasons: list[str] = []

    async def receive() -> Message:
        raise AssertionError("not received in these tests")

    loop = running_loop()
    body = BodyReceiver(loop, receive, first, limit, None)
    body.on_disconnect = reasons.append
    return body, reasons


@pytest.mark.parametrize(
    ("first", "messages", "state", "disconnected"),
    [
        pytest.param({"body": b"ab"}, [], BodyState.COMPLETE, False, id="whole-at-once"),
        pytest.param(
            {"body": b"a", "more_body": True},
            [{"body": b"b"}],
            BodyState.COMPLETE,
            False,
            id="whole-in-two",
        ),
        pytest.param(
            {"body": b"a", "more_body": True},
            [{"type": "http.disconnect"}],
            BodyState.CUT,
            True,
            id="cut",
        ),
        pytest.param(
            {"body": b"ab"},
            [{"type": "http.disconnect"}],
            BodyState.COMPLETE,
            True,
            id="left-after-the-body",
        ),
        pytest.param(
            {"body": b"a", "more_body": True},
            [{"body": b"bcd", "more_body": True}],
            BodyState.TOO_LARGE,
            False,
            id="too-large",
        ),
        pytest.param({"body": b"abcd"}, [], BodyState.TOO_LARGE, False, id="too-large-at-once"),
        pytest.param(
            {"body": b"ab"},
            [{"body": b"stray"}],
            BodyState.COMPLETE,
            False,
            id="a-stray-message-after-the-end-changes-nothing",
        ),
    ],
)
async def test_the_body_state_moves_once(
    first: dict[str, Any],
    messages: list[dict[str, Any]],
    state: BodyState,
    disconnected: bool,
) -> None:
    body, reasons = _body({"type": "http.request", **first}, limit=3)
    for message in messages:
        body._accept({"type": "http.request", **message})
    assert (body.state, body.disconnected) == (state, disconnected)
    assert bool(reasons) == disconnected


async def test_a_body_refuses_a_move_its_state_does_not_allow() -> None:
    body, _ = _body({"type": "http.request", "body": b"ab"})
    assert body.state is BodyState.COMPLETE
    with pytest.raises(RuntimeError, match="cannot go from complete to cut"):
        body._move(BodyState.CUT)
    body.client_left()  # the client leaving after the body ended changes the connection only
    assert (body.state, body.disconnected) == (BodyState.COMPLETE, True)


async def test_streaming_without_reading_the_body_reads_no_further(
    make: Callable[..., WSGIToASGI],
) -> None:
    """The first body message was received before the app ran: the disconnect watcher must
    not receive a second one while the app has not asked for the body."""
    gate = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        gate.wait(5)
        yield b"second"

    ex = Exchange([b"a", b"b", b"c"], method="POST")
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ex.run, make(validator(app)))
        await ex.started.wait()
        for _ in range(20):  # let the response loop start its watcher and the watcher run
            await anyio.lowlevel.checkpoint()
        assert ex.receives == 1
        gate.set()
    assert ex.body_bytes == b"firstsecond"


async def test_a_client_silent_while_the_app_reads_its_body_is_dropped(
    make: Callable[..., WSGIToASGI],
) -> None:
    """The app's read raises ClientDisconnected saying why; the client, still there, gets
    408 and the connection closes. A streamed upload costs a thread while it lasts, but
    no longer than the timeout between two messages."""
    seen: dict[str, BaseException] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except ClientDisconnected as exc:
            seen["error"] = exc
            raise
        start_response("200 OK", [])
        return []

    ex = Exchange([b"part"], stalled=True, method="POST")
    await ex.run(make(app, body_prefetch=0, body_timeout=0.05))
    assert "sent no request body bytes for 0.05 s" in str(seen["error"])
    assert ex.status == 408
    assert ex.complete


async def test_an_app_that_answers_after_its_client_went_silent_is_replaced_by_408(
    make: Callable[..., WSGIToASGI],
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        with contextlib.suppress(OSError):
            environ["wsgi.input"].read()
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"Django's error page"]

    ex = Exchange([b"part"], stalled=True, method="POST")
    await ex.run(make(app, body_prefetch=0, body_timeout=0.05))
    assert ex.status == 408


@pytest.mark.parametrize("chunking", CHUNKINGS)
async def test_streamed_body_over_the_limit_raises_from_read(
    make: Callable[..., WSGIToASGI], chunking: Chunking
) -> None:
    seen: dict[str, Any] = {}
    app = make(reading_app(lambda f: f.read(), seen), max_request_body=10)
    await Exchange(chunking(b"y" * 25), method="POST").run(app)
    assert isinstance(seen["error"], RequestBodyTooLarge)


async def test_a_body_over_the_limit_is_not_drained_while_the_response_streams(
    make: Callable[..., WSGIToASGI],
) -> None:
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        try:
            environ["wsgi.input"].read()
        except RequestBodyTooLarge as exc:
            errors.append(exc)
        start_response("413 Content Too Large", [("Content-Type", "text/plain")])
        for part in (b"too ", b"large"):
            time.sleep(0.02)  # the response outlives its first batch: the watcher runs
            yield part

    ex = Exchange([b"ab", b"cdef", b"gh", b"ij", b"kl"], method="POST")
    await ex.run(make(app, max_request_body=4))
    assert len(errors) == 1
    assert ex.status == 413
    assert ex.body_bytes == b"too large"
    assert ex.receives == 2  # the first message and the one that crossed the limit


async def test_body_within_the_limit_is_read(make: Callable[..., WSGIToASGI]) -> None:
    seen: dict[str, Any] = {}
    app = make(reading_app(lambda f: f.read(), seen), max_request_body=10)
    await Exchange([b"12345", b"67890"], method="POST", headers=[(b"content-length", b"10")]).run(
        app
    )
    assert seen["result"] == b"1234567890"


async def test_generator_reads_the_body_while_streaming(make: Callable[..., WSGIToASGI]) -> None:
    """The disconnect watcher and wsgi.input share receive(): no message is lost."""
    parts = [b"line %d\n" % i for i in range(30)]

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"echo:"
        for line in environ["wsgi.input"]:
            yield line.upper()

    ex = await Exchange(parts, method="POST").run(make(validator(app)))
    assert ex.body_bytes == b"echo:" + b"".join(parts).upper()
    assert ex.complete
