"""``wsgi.input`` (``_wsgi_input``), the worker's side of the request body: a file however
the body is chunked, cut off by a disconnect, refilled from the message read ahead without
a trip to the loop.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any
from wsgiref.validate import validator

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossgate._errors import ClientDisconnected
from crossgate._types import Message
from crossgate.adapters._bridge import call_in_loop, running_loop
from crossgate.adapters._wsgi_body import BodyReceiver
from crossgate.adapters._wsgi_input import InputStream
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from tests.adapters.wsgi_server import (
    BODY,
    CHUNKINGS,
    Chunking,
    Exchange,
    _split,
    ragged,
    reading_app,
    slow_client,
)
from tests.loops import LOOPS, run_on

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]


OPERATIONS: list[Any] = [
    pytest.param(lambda f: f.read(), id="read()"),
    pytest.param(lambda f: f.read(-1), id="read(-1)"),
    pytest.param(lambda f: f.read(None), id="read(None)"),
    pytest.param(lambda f: [f.read(7) for _ in range(12)], id="read(7)"),
    pytest.param(lambda f: [f.read(1) for _ in range(80)], id="read(1)"),
    pytest.param(lambda f: [f.read(0), f.read(5), f.read()], id="read(0)-read(5)-read()"),
    pytest.param(lambda f: [f.readline() for _ in range(8)], id="readline()"),
    pytest.param(lambda f: [f.readline(4) for _ in range(25)], id="readline(4)"),
    pytest.param(lambda f: [f.readline(0), f.readline(-1), f.readline(None)], id="readline(0)"),
    pytest.param(lambda f: f.readlines(), id="readlines()"),
    pytest.param(lambda f: [f.readlines(15), f.readlines(1), f.readlines()], id="readlines(hint)"),
    pytest.param(list, id="iterate"),
    pytest.param(lambda f: [f.readline(), f.read(3), next(iter(f)), f.read()], id="mixed"),
]


@pytest.mark.parametrize(
    "prefetch", [0, 20, 64 * 1024], ids=["streamed", "first-20-bytes-received", "received"]
)
@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("operation", OPERATIONS)
async def test_input_behaves_like_a_file_however_chunked(
    make: Callable[..., WSGIToASGI],
    chunking: Chunking,
    operation: Callable[[Any], object],
    prefetch: int,
) -> None:
    seen: dict[str, Any] = {}
    adapter = make(reading_app(operation, seen), body_prefetch=prefetch)
    await Exchange(chunking(BODY), method="POST").run(adapter)
    assert seen["result"] == operation(io.BytesIO(BODY))


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda f: f.read(), id="read"),
        pytest.param(lambda f: f.readline(), id="readline"),
        pytest.param(lambda f: f.readlines(), id="readlines"),
        pytest.param(list, id="iterate"),
    ],
)
async def test_empty_body_reads_as_empty(
    make: Callable[..., WSGIToASGI], operation: Callable[[Any], object]
) -> None:
    seen: dict[str, Any] = {}
    await Exchange([], method="POST").run(make(reading_app(operation, seen)))
    assert "error" not in seen
    assert seen["result"] == operation(io.BytesIO(b""))


async def test_input_under_the_validator(make: Callable[..., WSGIToASGI]) -> None:
    seen: dict[str, Any] = {}

    def op(f: Any) -> list[object]:
        return [f.readline(), f.read(4), f.readlines(), f.read(1)]

    app = make(validator(reading_app(op, seen)))
    await Exchange(ragged(BODY), method="POST").run(app)
    assert seen["result"] == op(io.BytesIO(BODY))


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda f: f.read(), id="read"),
        pytest.param(lambda f: [f.read(3) for _ in range(100)], id="read(3)"),
        pytest.param(lambda f: f.readlines(), id="readlines"),
        pytest.param(list, id="iterate"),
    ],
)
async def test_disconnect_mid_upload_raises_oserror(
    make: Callable[..., WSGIToASGI], chunking: Chunking, operation: Callable[[Any], object]
) -> None:
    seen: dict[str, Any] = {}
    await Exchange(chunking(BODY), cut=True, method="POST").run(make(reading_app(operation, seen)))
    assert isinstance(seen["error"], ClientDisconnected)
    assert isinstance(seen["error"], OSError)


async def test_reads_after_a_disconnect_keep_raising(make: Callable[..., WSGIToASGI]) -> None:
    errors: list[BaseException] = []

    def op(f: Any) -> None:
        for _ in range(3):
            try:
                f.read()
            except OSError as exc:
                errors.append(exc)

    await Exchange([b"abc"], cut=True, method="POST").run(make(reading_app(op, {})))
    assert len(errors) == 3
    assert all(isinstance(e, ClientDisconnected) for e in errors)


async def test_read_0_asks_for_nothing_and_reads_nothing_ahead(
    make: Callable[..., WSGIToASGI],
) -> None:
    seen: dict[str, Any] = {}
    ex = Exchange([b"ab", b"cd", b"ef"], method="POST")
    probe: dict[str, int] = {}

    def op(f: Any) -> list[bytes]:
        parts = [f.read(0), f.readline(0)]
        time.sleep(0.05)  # time enough for the loop to read ahead, were it to
        probe["receives"] = ex.receives
        return parts

    await ex.run(make(reading_app(op, seen)))
    assert seen["result"] == [b"", b""]
    assert probe["receives"] == 1  # only the first message, received before the app ran


async def test_bytes_received_before_a_disconnect_stay_readable(
    make: Callable[..., WSGIToASGI],
) -> None:
    seen: dict[str, Any] = {}

    def op(f: Any) -> list[object]:
        outcomes: list[object] = []
        for size in (10, 4, 1):
            try:
                outcomes.append(f.read(size))
            except ClientDisconnected as exc:
                outcomes.append(type(exc))
        return outcomes

    await Exchange([b"ab", b"cd"], cut=True, method="POST").run(make(reading_app(op, seen)))
    # The read that ran into the disconnect raised; the bytes before it are still there,
    # as in a file, and reading past them raises again.
    assert seen["result"] == [ClientDisconnected, b"abcd", ClientDisconnected]


def count_trips(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record each trip ``wsgi.input`` makes to the loop (the coroutine it runs there)."""
    trips: list[object] = []

    def counting_call_in_loop(*args: Any, **kwargs: Any) -> Any:
        trips.append(args[1])
        return call_in_loop(*args, **kwargs)

    monkeypatch.setattr("crossgate.adapters._wsgi_body.call_in_loop", counting_call_in_loop)
    return trips


async def test_the_message_read_ahead_is_read_without_a_trip_to_the_loop(
    make: Callable[..., WSGIToASGI], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    ex = Exchange([b"ab", b"cd", b"ef", b"gh"], method="POST")
    trips = count_trips(monkeypatch)

    def op(f: Any) -> list[bytes]:
        parts = []
        for _ in range(4):
            parts.append(f.read(2))
            time.sleep(0.02)  # the loop has long received the next message ahead
        parts.append(f.read(2))
        return parts

    await ex.run(make(reading_app(op, seen)))
    assert seen["result"] == [b"ab", b"cd", b"ef", b"gh", b""]
    # "ab" came before the app ran; each later message, the end of the body included, was
    # received while the app worked on the one before.
    assert trips == []


async def test_a_read_waits_for_the_message_being_read_ahead_without_a_trip(
    make: Callable[..., WSGIToASGI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app that reads faster than the client sends waits for the message the loop is
    already receiving, instead of asking the loop for it: no trip per message."""
    seen: dict[str, Any] = {}
    parts = [b"ab", b"cd", b"ef", b"gh"]
    calls: list[str] = []

    receive = slow_client(parts, calls)

    trips = count_trips(monkeypatch)

    def op(f: Any) -> list[bytes]:
        first: bytes = f.read(2)
        time.sleep(0.01)  # the loop starts receiving the next message ahead meanwhile
        return [first] + [f.read(2) for _ in range(4)]

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await make(reading_app(op, seen))(Exchange(method="POST").scope, receive, send)
    assert seen["result"] == [b"ab", b"cd", b"ef", b"gh", b""]
    assert trips == []  # each message was waited for, none asked for
    assert calls == ["receive"] * 4  # and none received beyond the body


async def test_a_worker_waiting_for_the_reader_gets_the_message_the_watcher_received() -> None:
    """While the response streams, the disconnect watcher shares receive() with the reader
    and may take a body message first, then keep receive() (after the last message, until
    the client leaves). A worker waiting for the reader must be handed that message."""
    loop = running_loop()
    release = anyio.Event()
    calls: list[str] = []

    async def receive() -> Message:
        calls.append("receive")
        await release.wait()  # the reader's receive(): nothing comes through it
        return {"type": "http.disconnect"}

    first: Message = {"type": "http.request", "body": b"a", "more_body": True}
    receiver = BodyReceiver(loop, receive, first, None, None)
    body = InputStream(receiver)
    reads: list[bytes] = []
    reading_ahead = threading.Event()

    def worker() -> None:
        reads.append(body.read(1))  # the first message; the loop starts reading ahead
        reading_ahead.wait(5)
        reads.append(body.read(1))  # waits for the reader

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.to_thread.run_sync, worker)
            while calls != ["receive"]:  # noqa: ASYNC110 - a thread's progress has no awaitable
                await anyio.sleep(0.001)
            reading_ahead.set()  # the reader is in receive()
            while not receiver._worker_waits:  # noqa: ASYNC110 - a thread's progress has no awaitable
                await anyio.sleep(0.001)
            # The watcher's receive() returns the last body message meanwhile.
            receiver._hold({"type": "http.request", "body": b"b", "more_body": False})
    assert reads == [b"a", b"b"]
    receiver.finish()
    release.set()


async def test_readline_stops_receiving_at_the_newline(make: Callable[..., WSGIToASGI]) -> None:
    ex = Exchange([b"ab", b"c\nd", b"ef\n", b"gh"], method="POST")
    probe: dict[str, int] = {}

    def op(f: Any) -> bytes:
        line: bytes = f.readline()
        probe["receives"] = ex.receives
        return line

    seen: dict[str, Any] = {}
    await ex.run(make(reading_app(op, seen)))
    assert seen["result"] == b"abc\n"
    # The newline is in the second message; the loop may have received the third ahead of
    # the app's next read (one message ahead), never the fourth.
    assert 2 <= probe["receives"] <= 3
    assert ex.receives <= 3


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=30, deadline=None)
@given(
    body=st.binary(max_size=120).map(lambda b: b.replace(b"\r", b"\n")),
    cuts=st.lists(st.integers(0, 120), max_size=8),
    ops=st.lists(
        st.tuples(st.sampled_from(["read", "readline", "readlines", "next"]), st.integers(-1, 30)),
        max_size=10,
    ),
)
def test_property_input_matches_bytesio(
    loop: str, body: bytes, cuts: list[int], ops: list[tuple[str, int]]
) -> None:
    """Any chunking and any sequence of reads: the same results as io.BytesIO."""

    def run(stream: Any) -> list[object]:
        results: list[object] = []
        for name, arg in ops:
            if name == "next":
                results.append(next(stream, None))
            else:
                results.append(getattr(stream, name)(arg))
        results.append(stream.read())
        return results

    seen: dict[str, Any] = {}
    adapter = WSGIToASGI(reading_app(run, seen), workers=1)
    try:
        run_on(loop, Exchange(_split(body, cuts), method="POST").run, adapter)
    finally:
        adapter.pool.shutdown()
    assert seen["result"] == run(io.BytesIO(body))
