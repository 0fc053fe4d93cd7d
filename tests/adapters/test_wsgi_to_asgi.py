"""WsgiToAsgi: a PEP 3333 app behind an in-process ASGI server, one behaviour per test.

Bodies are fed whole, in many chunks (one byte at a time, empty chunks too) and cut off by a
disconnect; test apps run inside ``wsgiref.validate.validator`` where the behaviour allows
(pytest turns its warnings into errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import itertools
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import quote
from wsgiref.validate import validator

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossgate._errors import ClientDisconnected, InvalidResponse, RequestBodyTooLarge
from crossgate._types import Environ, Message, Receive, StartResponse, WSGIApp
from crossgate.adapters import wsgi_to_asgi as wsgi_to_asgi_module
from crossgate.adapters._bridge import call_in_loop
from crossgate.adapters._wsgi_input import BodyState, RequestBody
from crossgate.adapters._wsgi_request import FileWrapper, Request, ResponseState
from crossgate.adapters.environ import build_environ
from crossgate.adapters.wsgi_to_asgi import WsgiToAsgi, wsgi_to_asgi
from tests.adapters.support import no_new_cycles

pytestmark = pytest.mark.anyio

Chunking = Callable[[bytes], list[bytes]]


def whole(body: bytes) -> list[bytes]:
    return [body]


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))] or [b""]


def ragged(body: bytes) -> list[bytes]:
    """Chunks of 1, 0, 2, 0, 3, ... bytes: lines span chunks, empty chunks in between."""
    chunks: list[bytes] = []
    at, size = 0, 1
    while at < len(body):
        chunks += [body[at : at + size], b""]
        at += size
        size = size % 5 + 1
    return chunks or [b""]


CHUNKINGS = [pytest.param(whole, id="whole"), pytest.param(bytewise, id="bytewise")]
CHUNKINGS.append(pytest.param(ragged, id="ragged"))


class Exchange:
    """One request against an in-process ASGI server that records everything."""

    def __init__(
        self,
        body: Sequence[bytes] = (),
        *,
        cut: bool = False,
        pending: bool = False,
        stalled: bool = False,
        method: str = "GET",
        path: str = "/",
        query: bytes = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        extensions: dict[str, Any] | None = None,
    ) -> None:
        self.body = list(body)
        self.cut = cut
        # pending: the body's last message is still on its way when the response ends (a
        # server may send the final empty message late: granian does) and receive() waits
        # until it is cancelled.
        self.pending = pending
        # stalled: the client sends the messages given, then nothing, until it leaves.
        self.stalled = stalled
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": quote(path, safe="/").encode("ascii"),  # as sent: percent-encoded
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "extensions": extensions or {},
        }
        self.messages: list[Message] = []
        self.receives = 0
        self.gone = asyncio.Event()  # the response ended or the client left
        self.send_error: BaseException | None = None
        self.send_gate: asyncio.Event | None = None
        self.sent_bytes = 0  # body bytes the "server" took, read by the budget test's app
        self.started = asyncio.Event()  # the first message was sent

    async def receive(self) -> Message:
        self.receives += 1
        if self.body:
            chunk = self.body.pop(0)
            more = bool(self.body) or self.cut or self.pending or self.stalled
            return {"type": "http.request", "body": chunk, "more_body": more}
        if self.receives == 1:
            return {"type": "http.request", "body": b"", "more_body": self.cut}
        if self.pending:
            await asyncio.Event().wait()
        if self.stalled:
            await self.gone.wait()
            return {"type": "http.disconnect"}
        if not self.cut:
            await self.gone.wait()
        self.gone.set()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            if self.send_gate is not None:
                await self.send_gate.wait()
            if self.send_error is not None:
                raise self.send_error
        self.messages.append(message)
        self.sent_bytes += len(message.get("body", b""))
        self.started.set()
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.gone.set()

    def leave(self) -> None:
        self.gone.set()

    async def run(self, app: WsgiToAsgi, timeout: float = 10.0) -> Exchange:
        with anyio.fail_after(timeout):
            await app(self.scope, self.receive, self.send)
        return self

    @property
    def status(self) -> int:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        status: int = starts[0]["status"]
        return status

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        headers: list[tuple[bytes, bytes]] = start["headers"]
        return headers

    @property
    def body_bytes(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    @property
    def complete(self) -> bool:
        """Exactly one start first, body messages after, the last one final."""
        kinds = [m["type"] for m in self.messages]
        if not kinds or kinds[0] != "http.response.start" or kinds.count(kinds[0]) != 1:
            return False
        bodies = self.messages[1:]
        return (
            bool(bodies)
            and all(m["type"] == "http.response.body" for m in bodies)
            and all(m.get("more_body", False) for m in bodies[:-1])
            and not bodies[-1].get("more_body", False)
        )


@pytest.fixture
def make() -> Iterator[Callable[..., WsgiToAsgi]]:
    """Build adapters; their pools are shut down after the test."""
    made: list[WsgiToAsgi] = []

    def factory(app: WSGIApp, **options: Any) -> WsgiToAsgi:
        # Most tests here are about wsgi.input streaming from receive(): small bodies are
        # not received whole before the app runs unless a test asks for it.
        options.setdefault("body_prefetch", 0)
        adapter = wsgi_to_asgi(app, **options)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.pool.shutdown()


class Closing:
    """A body iterable that records each chunk pulled, close() and the threads involved."""

    def __init__(self, chunks: Iterable[bytes], *, endless: bool = False) -> None:
        self.chunks = list(chunks)
        self.endless = endless
        self.pulled = 0
        self.closed = threading.Event()
        self.close_calls = 0
        self.close_thread: int | None = None
        self.gate: threading.Event | None = None

    def __iter__(self) -> Iterator[bytes]:
        index = 0
        while self.endless or index < len(self.chunks):
            if self.gate is not None and self.pulled:
                self.gate.wait(5)
            self.pulled += 1
            yield self.chunks[index % len(self.chunks)]
            index += 1

    def close(self) -> None:
        self.close_calls += 1
        self.close_thread = threading.get_ident()
        self.closed.set()


def app_returning(
    body: Iterable[bytes],
    status: str = "200 OK",
    headers: Sequence[tuple[str, str]] = (("Content-Type", "text/plain"),),
    seen: dict[str, Any] | None = None,
) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if seen is not None:
            seen["thread"] = threading.get_ident()
            seen["environ"] = environ
        start_response(status, list(headers))
        return body

    return app


# ------------------------------------------------------------------------------ responses


async def test_list_body_is_one_start_and_one_body_message(make: Callable[..., WsgiToAsgi]) -> None:
    # No validator here: it wraps the list in an iterator, and this is the list fast path.
    app = make(app_returning([b"Hello, ", b"", b"world"]))
    ex = await Exchange().run(app)
    assert [m["type"] for m in ex.messages] == ["http.response.start", "http.response.body"]
    assert ex.status == 200
    assert ex.headers == [(b"content-type", b"text/plain")]
    assert ex.body_bytes == b"Hello, world"
    assert ex.complete


async def test_large_list_body_is_sent_without_joining(make: Callable[..., WsgiToAsgi]) -> None:
    chunks = [b"a" * 100, b"b" * 100, b"c" * 100]
    ex = await Exchange().run(make(app_returning(chunks), budget=150))
    assert [m["body"] for m in ex.messages[1:-1]] == chunks
    assert ex.complete
    assert ex.body_bytes == b"".join(chunks)


@pytest.mark.parametrize("kind", ["list", "generator", "write"])
async def test_body_kinds_give_the_same_bytes(make: Callable[..., WsgiToAsgi], kind: str) -> None:
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


async def test_write_then_returned_iterable_keep_order(make: Callable[..., WsgiToAsgi]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"b")
        return [b"c", b"d"]

    ex = await Exchange().run(make(validator(app)))
    assert ex.body_bytes == b"abcd"
    assert ex.complete


async def test_headers_wait_for_the_first_non_empty_chunk(make: Callable[..., WsgiToAsgi]) -> None:
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


async def test_empty_generator_sends_headers_at_the_end(make: Callable[..., WsgiToAsgi]) -> None:
    ex = await Exchange().run(
        make(validator(app_returning(iter([b"", b""]), "204 No Content", [])))
    )
    assert ex.status == 204
    assert ex.body_bytes == b""
    assert ex.complete


async def test_exc_info_before_body_replaces_the_status(make: Callable[..., WsgiToAsgi]) -> None:
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


async def test_exc_info_after_headers_reraises_and_aborts(make: Callable[..., WsgiToAsgi]) -> None:
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
    make: Callable[..., WsgiToAsgi],
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
    make: Callable[..., WsgiToAsgi], status: Any, headers: list[Any]
) -> None:
    """start_response refuses it in the app: the client gets a 500, the server the error."""
    ex = Exchange()
    with pytest.raises(InvalidResponse):
        await ex.run(make(app_returning([b"body"], status, headers)))
    assert ex.status == 500
    assert ex.body_bytes == b"Internal Server Error"
    assert ex.complete


async def test_non_bytes_body_gives_500(make: Callable[..., WsgiToAsgi]) -> None:
    ex = Exchange()
    with pytest.raises(TypeError, match="bytes"):
        await ex.run(make(app_returning(["text"])))  # type: ignore[list-item]
    assert ex.status == 500


async def test_headers_as_two_item_lists_are_taken(make: Callable[..., WsgiToAsgi]) -> None:
    """gunicorn, waitress and every peer take ``[["X-A", "1"]]``; it gave 500."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [["Content-Type", "text/plain"], ["X-A", " 1"]])  # type: ignore[list-item]
        return [b"ok"]

    ex = await Exchange().run(make(app))
    assert ex.status == 200
    assert ex.headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert ex.body_bytes == b"ok"


@pytest.mark.parametrize("kind", ["list", "generator"])
async def test_content_length_overrun_is_cut(make: Callable[..., WsgiToAsgi], kind: str) -> None:
    body = Closing([b"hello", b" world", b"!" * 100, b"more"])
    headers = [("Content-Type", "text/plain"), ("Content-Length", "8")]
    result: Iterable[bytes] = list(body.chunks) if kind == "list" else body
    ex = await Exchange().run(make(app_returning(result, headers=headers)))
    assert ex.body_bytes == b"hello wo"
    assert ex.complete
    if kind == "generator":
        assert body.pulled == 2  # iteration stopped once the declared length was reached
        assert body.close_calls == 1


async def test_head_passes_the_body_through(make: Callable[..., WsgiToAsgi]) -> None:
    ex = await Exchange(method="HEAD").run(make(validator(app_returning([b"abc"]))))
    assert ex.status == 200
    assert ex.body_bytes == b"abc"


async def test_error_before_headers_is_a_500_then_raised_to_the_server(
    make: Callable[..., WsgiToAsgi], caplog: pytest.LogCaptureFixture
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
    make: Callable[..., WsgiToAsgi], caplog: pytest.LogCaptureFixture
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
    make: Callable[..., WsgiToAsgi], caplog: pytest.LogCaptureFixture
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


async def test_missing_start_response_gives_500(make: Callable[..., WsgiToAsgi]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return [b"no status"]

    ex = Exchange()
    with pytest.raises(InvalidResponse, match="without calling start_response"):
        await ex.run(make(app))
    assert ex.status == 500


# ------------------------------------------------------------------- streaming and budget


async def test_stream_keeps_at_most_the_budget_in_flight(make: Callable[..., WsgiToAsgi]) -> None:
    """Produced but unsent bytes stay bounded: one batch being sent plus the budget queued.

    A batch ends once it holds >= 35 bytes (4 chunks of 10), so at each chunk the worker
    makes, at most 4 are being sent, 4 queued and 1 in hand: 90 bytes.
    """
    ex = Exchange()
    ex.send_gate = asyncio.Event()  # send() is stuck until the worker had time to run ahead
    worst: list[int] = []
    stuck = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for index in range(200):
            worst.append(index * 10 - ex.sent_bytes)
            if index == 4:
                stuck.set()  # the first batch is stuck in send() and 4 chunks are queued
            yield b"x" * 10

    task = asyncio.ensure_future(ex.run(make(app, budget=35)))
    await asyncio.to_thread(stuck.wait, 5)
    ex.send_gate.set()
    await task
    assert ex.body_bytes == b"x" * 2000
    assert max(worst) <= 90


async def test_disconnect_stops_an_endless_generator_on_its_thread(
    make: Callable[..., WsgiToAsgi],
) -> None:
    body = Closing([b"tick"], endless=True)
    body.gate = threading.Event()  # slow producer: one chunk per gate opening
    seen: dict[str, Any] = {}
    ex = Exchange()
    task = asyncio.ensure_future(ex.run(make(app_returning(body, seen=seen))))
    await ex.started.wait()
    body.gate.set()
    ex.leave()
    await task
    assert body.closed.wait(5)
    assert body.close_calls == 1
    assert body.close_thread == seen["thread"]
    assert not ex.complete


async def test_a_client_leaving_while_the_first_send_waits_stops_the_app(
    make: Callable[..., WsgiToAsgi],
) -> None:
    """On HTTP/2 a send() can wait for flow control that a closed connection never grants
    (hypercorn): the client leaving during the first batch must still be heard, and the
    generator closed. It went unheard: the disconnect watcher started after that batch."""
    body = Closing([b"x" * 1024], endless=True)
    ex = Exchange()
    ex.send_gate = asyncio.Event()  # body sends wait until the test lets them go
    task = asyncio.ensure_future(ex.run(make(app_returning(body), budget=4096)))
    for _ in range(200):
        if body.pulled > 4:
            break
        await asyncio.sleep(0.01)
    ex.leave()
    assert await asyncio.to_thread(body.closed.wait, 5)
    ex.send_gate.set()  # the server lets its send() return at last
    await asyncio.wait_for(task, 5)


@pytest.mark.parametrize("error", [OSError("broken pipe"), ClientDisconnected("gone")])
async def test_send_raising_oserror_is_a_disconnect(
    make: Callable[..., WsgiToAsgi], error: BaseException
) -> None:
    body = Closing([b"tick"], endless=True)
    seen: dict[str, Any] = {}
    ex = Exchange()
    ex.send_error = error
    await ex.run(make(app_returning(body, seen=seen)))
    assert body.closed.wait(5)
    assert body.close_thread == seen["thread"]


async def test_send_raising_anything_else_propagates_without_hanging(
    make: Callable[..., WsgiToAsgi],
) -> None:
    body = Closing([b"tick"], endless=True)
    ex = Exchange()
    ex.send_error = RuntimeError("server bug")
    with pytest.raises(RuntimeError, match="server bug"):
        await ex.run(make(app_returning(body)))
    assert body.closed.wait(5)


async def test_cancelled_request_releases_the_worker(make: Callable[..., WsgiToAsgi]) -> None:
    body = Closing([b"tick"], endless=True)
    body.gate = threading.Event()
    ex = Exchange()
    task = asyncio.ensure_future(ex.run(make(app_returning(body))))
    await ex.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    body.gate.set()
    assert body.closed.wait(5)


async def test_a_request_cancelled_before_its_first_chunk_stops_the_app_at_that_chunk(
    make: Callable[..., WsgiToAsgi],
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
    task = asyncio.ensure_future(ex.run(make(app)))
    assert await asyncio.to_thread(computing.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    go_on.set()
    assert await asyncio.to_thread(body.closed.wait, 5)
    assert body.pulled == 1  # stopped at its first chunk, not after the budget filled up
    assert body.close_thread == seen["thread"]
    assert not ex.started.is_set()


async def test_no_tasks_are_left_behind(make: Callable[..., WsgiToAsgi]) -> None:
    body = Closing([b"a", b"b"])
    body.gate = threading.Event()
    before = asyncio.all_tasks()
    ex = Exchange()
    task = asyncio.ensure_future(ex.run(make(app_returning(body))))
    await ex.started.wait()
    body.gate.set()
    await task
    assert asyncio.all_tasks() == before


# ------------------------------------------------------------------------- request body


def reading_app(operation: Callable[[Any], object], seen: dict[str, Any]) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            seen["result"] = operation(environ["wsgi.input"])
        except OSError as exc:
            seen["error"] = exc
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    return app


BODY = b"first line\nsecond\n\nfourth line is longer\nno newline at the end"
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
    make: Callable[..., WsgiToAsgi],
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
    make: Callable[..., WsgiToAsgi], operation: Callable[[Any], object]
) -> None:
    seen: dict[str, Any] = {}
    await Exchange([], method="POST").run(make(reading_app(operation, seen)))
    assert "error" not in seen
    assert seen["result"] == operation(io.BytesIO(b""))


async def test_input_under_the_validator(make: Callable[..., WsgiToAsgi]) -> None:
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
    make: Callable[..., WsgiToAsgi], chunking: Chunking, operation: Callable[[Any], object]
) -> None:
    seen: dict[str, Any] = {}
    await Exchange(chunking(BODY), cut=True, method="POST").run(make(reading_app(operation, seen)))
    assert isinstance(seen["error"], ClientDisconnected)
    assert isinstance(seen["error"], OSError)


async def test_reads_after_a_disconnect_keep_raising(make: Callable[..., WsgiToAsgi]) -> None:
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


async def test_at_most_one_message_is_read_ahead(make: Callable[..., WsgiToAsgi]) -> None:
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
    make: Callable[..., WsgiToAsgi],
) -> None:
    """The message read ahead is a disconnect while a read waits for the receive() lock:
    the read raises, and does not call receive() again (on hypercorn, say, nothing more
    would ever come)."""
    seen: dict[str, Any] = {}
    calls: list[str] = []
    leave = asyncio.Event()

    async def receive() -> Message:
        calls.append("receive")
        if len(calls) == 1:
            return {"type": "http.request", "body": b"ab", "more_body": True}
        if len(calls) == 2:
            await leave.wait()
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # nothing after the disconnect: a hang
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    def op(f: Any) -> bytes:
        data: bytes = f.read(2)  # the first message; the loop now reads the next ahead
        asyncio.run_coroutine_threadsafe(_set_soon(leave), loop)
        more: bytes = f.read(2)  # waits behind the read-ahead, which gets the disconnect
        return data + more

    loop = asyncio.get_running_loop()
    scope = Exchange(method="POST").scope
    with anyio.fail_after(5):
        await make(reading_app(op, seen))(scope, receive, send)
    assert isinstance(seen["error"], ClientDisconnected)
    assert calls == ["receive", "receive"]


async def _set_soon(event: asyncio.Event) -> None:
    await asyncio.sleep(0.05)  # the read has made its trip and waits for the lock by now
    event.set()


async def test_read_0_asks_for_nothing_and_reads_nothing_ahead(
    make: Callable[..., WsgiToAsgi],
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
    make: Callable[..., WsgiToAsgi],
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

    monkeypatch.setattr("crossgate.adapters._wsgi_input.call_in_loop", counting_call_in_loop)
    return trips


async def test_the_message_read_ahead_is_read_without_a_trip_to_the_loop(
    make: Callable[..., WsgiToAsgi], monkeypatch: pytest.MonkeyPatch
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


def slow_client(parts: Sequence[bytes], calls: list[str]) -> Receive:
    """receive() for a client slower than the app: ``parts`` as the body, every message
    after the first 30 ms late, then nothing until the response ends. Each call is
    recorded in ``calls``."""

    async def receive() -> Message:
        calls.append("receive")
        if len(calls) > 1:
            await asyncio.sleep(0.03)
        if len(calls) <= len(parts):
            more = len(calls) < len(parts)
            return {"type": "http.request", "body": parts[len(calls) - 1], "more_body": more}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def test_a_read_waits_for_the_message_being_read_ahead_without_a_trip(
    make: Callable[..., WsgiToAsgi], monkeypatch: pytest.MonkeyPatch
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


async def test_a_read_handed_the_message_it_waited_for_reads_only_one_more_ahead(
    make: Callable[..., WsgiToAsgi],
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


async def test_a_worker_waiting_for_the_reader_gets_the_message_the_watcher_received() -> None:
    """While the response streams, the disconnect watcher shares receive() with the reader
    and may take a body message first, then keep receive() (after the last message, until
    the client leaves). A worker waiting for the reader must be handed that message."""
    loop = asyncio.get_running_loop()
    release = asyncio.Event()
    calls: list[str] = []

    async def receive() -> Message:
        calls.append("receive")
        await release.wait()  # the reader's receive(): nothing comes through it
        return {"type": "http.disconnect"}

    class Stub:
        def stop(self, exc: BaseException) -> None:
            pass

    first: Message = {"type": "http.request", "body": b"a", "more_body": True}
    body = RequestBody(Stub(), loop, receive, None, first)  # type: ignore[arg-type]
    reads: list[bytes] = []
    reading_ahead = threading.Event()

    def worker() -> None:
        reads.append(body.read(1))  # the first message; the loop starts reading ahead
        reading_ahead.wait(5)
        reads.append(body.read(1))  # waits for the reader

    thread = asyncio.create_task(asyncio.to_thread(worker))
    with anyio.fail_after(5):
        while calls != ["receive"]:  # noqa: ASYNC110 - a thread's progress has no awaitable
            await asyncio.sleep(0.001)
        reading_ahead.set()  # the reader is in receive()
        while not body._worker_waits:  # noqa: ASYNC110 - a thread's progress has no awaitable
            await asyncio.sleep(0.001)
        # The watcher's receive() returns the last body message meanwhile.
        body._hold({"type": "http.request", "body": b"b", "more_body": False})
        await thread
    assert reads == [b"a", b"b"]
    body.finish()
    release.set()


class _Stops:
    """Stands in for the request a body tells when its client leaves."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def stop(self, reason: str) -> None:
        self.reasons.append(reason)


def _body(first: Message, *, limit: int | None = None) -> tuple[RequestBody, _Stops]:
    stops = _Stops()

    async def receive() -> Message:
        raise AssertionError("not received in these tests")

    loop = asyncio.get_running_loop()
    return RequestBody(stops, loop, receive, limit, first), stops  # type: ignore[arg-type]


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
    body, stops = _body({"type": "http.request", **first}, limit=3)
    for message in messages:
        body._accept({"type": "http.request", **message})
    assert (body.state, body.disconnected) == (state, disconnected)
    assert bool(stops.reasons) == disconnected


async def test_a_body_refuses_a_move_its_state_does_not_allow() -> None:
    body, _ = _body({"type": "http.request", "body": b"ab"})
    assert body.state is BodyState.COMPLETE
    with pytest.raises(RuntimeError, match="cannot go from complete to cut"):
        body._move(BodyState.CUT)
    body.client_left()  # the client leaving after the body ended changes the connection only
    assert (body.state, body.disconnected) == (BodyState.COMPLETE, True)


async def test_the_response_state_moves_forward_only(make: Callable[..., WsgiToAsgi]) -> None:
    """CALLING, STARTED (again with exc_info), COMMITTED, FINISHED: one place moves it,
    and it refuses a move backwards."""
    adapter = make(app_returning([]))
    loop = asyncio.get_running_loop()

    async def receive() -> Message:
        raise AssertionError("not received here")

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent here")

    first: Message = {"type": "http.request", "body": b"", "more_body": False}
    request = Request(adapter, loop, Exchange().scope, receive, send, first=first)

    def state(request: Request) -> ResponseState:  # read anew each time (no narrowing)
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
    request.body.finish()


async def test_streaming_without_reading_the_body_reads_no_further(
    make: Callable[..., WsgiToAsgi],
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
    task = asyncio.ensure_future(ex.run(make(validator(app))))
    await ex.started.wait()
    for _ in range(20):  # let the response loop start its watcher and the watcher run
        await asyncio.sleep(0)
    assert ex.receives == 1
    gate.set()
    await task
    assert ex.body_bytes == b"firstsecond"


async def test_readline_stops_receiving_at_the_newline(make: Callable[..., WsgiToAsgi]) -> None:
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


# ------------------------------------------------------- small bodies, silent clients


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
    make: Callable[..., WsgiToAsgi], declared: bool
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
    make: Callable[..., WsgiToAsgi],
) -> None:
    chunks = ragged(BODY)
    headers = [(b"content-length", str(len(BODY)).encode())]
    ex = Exchange(chunks, method="POST", headers=headers)
    await ex.run(make(_with_receives(ex, _counting_app), body_prefetch=len(BODY) - 1))
    assert ex.body_bytes == b"%d 1" % len(BODY)  # the app started after the first message


async def test_a_body_of_unknown_length_is_received_up_to_the_prefetch_then_streams(
    make: Callable[..., WsgiToAsgi],
) -> None:
    chunks = [BODY[i : i + 10] for i in range(0, len(BODY), 10)]
    ex = Exchange(chunks, method="POST")
    await ex.run(make(_with_receives(ex, _counting_app), body_prefetch=25))
    assert ex.body_bytes == b"%d 3" % len(BODY)  # 30 bytes received: past 25, it streams


async def test_a_client_leaving_mid_small_body_never_reaches_the_app(
    make: Callable[..., WsgiToAsgi],
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
    make: Callable[..., WsgiToAsgi], monkeypatch: pytest.MonkeyPatch
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
    make: Callable[..., WsgiToAsgi],
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
    make: Callable[..., WsgiToAsgi],
) -> None:
    ex = Exchange([], stalled=True, method="POST")
    ex.receives = 1  # the first receive() already waits, as for headers sent alone
    await ex.run(make(app_returning([b"never"]), body_timeout=0.05))
    assert ex.status == 408


async def test_a_client_silent_while_the_app_reads_its_body_is_dropped(
    make: Callable[..., WsgiToAsgi],
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
    make: Callable[..., WsgiToAsgi],
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        with contextlib.suppress(OSError):
            environ["wsgi.input"].read()
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"Django's error page"]

    ex = Exchange([b"part"], stalled=True, method="POST")
    await ex.run(make(app, body_prefetch=0, body_timeout=0.05))
    assert ex.status == 408


async def test_client_gone_before_the_request_is_handled(make: Callable[..., WsgiToAsgi]) -> None:
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
    make: Callable[..., WsgiToAsgi],
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


@pytest.mark.parametrize("chunking", CHUNKINGS)
async def test_streamed_body_over_the_limit_raises_from_read(
    make: Callable[..., WsgiToAsgi], chunking: Chunking
) -> None:
    seen: dict[str, Any] = {}
    app = make(reading_app(lambda f: f.read(), seen), max_request_body=10)
    await Exchange(chunking(b"y" * 25), method="POST").run(app)
    assert isinstance(seen["error"], RequestBodyTooLarge)


async def test_a_body_over_the_limit_is_not_drained_while_the_response_streams(
    make: Callable[..., WsgiToAsgi],
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


async def test_body_within_the_limit_is_read(make: Callable[..., WsgiToAsgi]) -> None:
    seen: dict[str, Any] = {}
    app = make(reading_app(lambda f: f.read(), seen), max_request_body=10)
    await Exchange([b"12345", b"67890"], method="POST", headers=[(b"content-length", b"10")]).run(
        app
    )
    assert seen["result"] == b"1234567890"


async def test_generator_reads_the_body_while_streaming(make: Callable[..., WsgiToAsgi]) -> None:
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


# ------------------------------------------------------------------ environ and threads


async def test_environ_has_the_wsgi_keys(make: Callable[..., WsgiToAsgi]) -> None:
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
    make: Callable[..., WsgiToAsgi], caplog: pytest.LogCaptureFixture
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


async def test_context_variables_reach_the_app(make: Callable[..., WsgiToAsgi]) -> None:
    seen: dict[str, str] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen["id"] = REQUEST_ID.get()
        start_response("200 OK", [])
        return []

    REQUEST_ID.set("abc-123")
    await Exchange().run(make(app))
    assert seen["id"] == "abc-123"


async def test_saturated_pool_queues_requests(make: Callable[..., WsgiToAsgi]) -> None:
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
    await asyncio.gather(*(ex.run(adapter) for ex in exchanges))
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
    make: Callable[..., WsgiToAsgi],
) -> None:
    """Event streams step away from `workers` once they stream on: with one worker and
    four open streams, a short request is still answered; the streams hold threads up to
    max_threads, which return to `workers` once they end."""
    adapter = make(_hello_or_stream, workers=1, max_threads=8)
    streams = [Exchange(path="/events") for _ in range(4)]
    tasks = [asyncio.ensure_future(ex.run(adapter)) for ex in streams]
    for ex in streams:
        await asyncio.wait_for(ex.started.wait(), 5)
    hello = await Exchange(path="/hello").run(adapter, timeout=5)
    assert hello.body_bytes == b"hello"
    assert adapter.pool.thread_count == 5  # the request ran on a thread of its own
    for ex in streams:
        ex.leave()
    await asyncio.gather(*tasks)
    assert await adapter.pool.drain(5)
    # Threads beyond `workers` end after a second without work.
    for _ in range(300):
        if adapter.pool.thread_count == 1:
            break
        await asyncio.sleep(0.02)
    assert adapter.pool.thread_count == 1
    assert (await Exchange(path="/hello").run(adapter)).body_bytes == b"hello"


async def test_uploads_waiting_on_their_client_do_not_hold_a_worker(
    make: Callable[..., WsgiToAsgi],
) -> None:
    """A thread blocked in wsgi.input.read() waits on the client, not at work."""
    adapter = make(_hello_or_stream, workers=1, max_threads=4)
    stalled = [Exchange([b"x"], stalled=True, method="POST", path="/upload") for _ in range(3)]
    tasks = [asyncio.ensure_future(ex.run(adapter)) for ex in stalled]
    for _ in range(100):  # every upload is in the app, waiting for the rest of its body
        if adapter.pool.thread_count == 3:
            break
        await asyncio.sleep(0.01)
    assert adapter.pool.thread_count == 3
    hello = await Exchange(path="/hello").run(adapter, timeout=5)
    assert hello.body_bytes == b"hello"
    for ex in stalled:
        ex.leave()
    await asyncio.gather(*tasks)
    assert await adapter.pool.drain(5)


async def test_past_max_threads_requests_queue_and_run_later(
    make: Callable[..., WsgiToAsgi],
) -> None:
    """The hard cap holds: with every thread streaming, a short request waits its turn
    (never a deadlock) and is answered once a stream ends."""
    adapter = make(_hello_or_stream, workers=1, max_threads=2)
    streams = [Exchange(path="/events") for _ in range(2)]
    tasks = [asyncio.ensure_future(ex.run(adapter)) for ex in streams]
    for ex in streams:
        await asyncio.wait_for(ex.started.wait(), 5)
    hello = asyncio.ensure_future(Exchange(path="/hello").run(adapter))
    await asyncio.sleep(0.1)
    assert not hello.done()
    assert adapter.pool.thread_count == 2
    streams[0].leave()
    assert (await asyncio.wait_for(hello, 5)).body_bytes == b"hello"
    streams[1].leave()
    await asyncio.gather(*tasks)


async def test_pool_is_created_lazily() -> None:
    adapter = WsgiToAsgi(app_returning([]))
    assert adapter._pool is None


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
    make: Callable[..., WsgiToAsgi],
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


async def _cut_short(adapter: WsgiToAsgi, how: str) -> None:
    """One streamed request the client leaves (``http.disconnect``, or ``send()`` fails) or
    the server cancels."""
    ex = Exchange()
    if how == "send-oserror":
        ex.send_error = OSError("broken pipe")
    elif how == "send-raises":
        ex.send_error = RuntimeError("server bug")
    task = asyncio.ensure_future(ex.run(adapter))
    if how == "cancelled":
        await ex.started.wait()
        task.cancel()
    elif how == "client-left":
        await ex.started.wait()
        ex.leave()
    with contextlib.suppress(asyncio.CancelledError, RuntimeError):
        await task
    # The test's own references, so that only the adapter's could make a cycle: the task
    # keeps the error it ended with, and the error's traceback holds this frame (and, for
    # the error Exchange.send raised, that frame and its Exchange).
    del task
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
    make: Callable[..., WsgiToAsgi], how: str, app: WSGIApp
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
    make: Callable[..., WsgiToAsgi],
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
    make: Callable[..., WsgiToAsgi], error: type[BaseException]
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


# -------------------------------------------------------------------------- file_wrapper


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
    make: Callable[..., WsgiToAsgi], data_file: str
) -> None:
    opened: list[Any] = []
    ex = await Exchange().run(make(file_app(data_file, opened, 4096)))
    assert ex.body_bytes == b"0123456789" * 1000
    assert ex.complete
    assert opened[0].closed


async def test_file_wrapper_uses_pathsend(make: Callable[..., WsgiToAsgi], data_file: str) -> None:
    opened: list[Any] = []
    ex = Exchange(extensions={"http.response.pathsend": {}})
    await ex.run(make(file_app(data_file, opened)))
    assert ex.messages[1] == {"type": "http.response.pathsend", "path": data_file}
    assert opened[0].closed


async def test_file_wrapper_uses_zerocopysend(
    make: Callable[..., WsgiToAsgi], data_file: str
) -> None:
    opened: list[Any] = []
    ex = Exchange(extensions={"http.response.zerocopysend": {}})
    await ex.run(make(file_app(data_file, opened)))
    message = ex.messages[1]
    assert message["type"] == "http.response.zerocopysend"
    assert message["file"] is opened[0]
    assert (message["offset"], message["count"]) == (0, 10000)
    assert opened[0].closed


async def test_file_wrapper_over_a_non_file_streams(make: Callable[..., WsgiToAsgi]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        result: Iterable[bytes] = environ["wsgi.file_wrapper"](io.BytesIO(b"in memory"), 2)
        return result

    ex = Exchange(extensions={"http.response.pathsend": {}, "http.response.zerocopysend": {}})
    await ex.run(make(app))
    assert ex.body_bytes == b"in memory"
    assert ex.complete


# ---------------------------------------------------------------------------- other scopes


class LifespanServer:
    def __init__(self, *events: str) -> None:
        self.events = [{"type": e} for e in events]
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self.events.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self, app: WsgiToAsgi) -> list[str]:
        with anyio.fail_after(10):
            await app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.receive, self.send)
        return [m["type"] for m in self.sent]


async def test_lifespan_runs_hooks_in_the_pool(make: Callable[..., WsgiToAsgi]) -> None:
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


async def test_lifespan_startup_failure_is_reported(make: Callable[..., WsgiToAsgi]) -> None:
    def broken() -> None:
        raise RuntimeError("no database")

    server = LifespanServer("lifespan.startup")
    assert await server.run(make(app_returning([]), on_startup=[broken])) == [
        "lifespan.startup.failed"
    ]
    assert "no database" in server.sent[0]["message"]


async def test_lifespan_shutdown_failure_is_reported(make: Callable[..., WsgiToAsgi]) -> None:
    def broken() -> None:
        raise RuntimeError("cannot flush")

    server = LifespanServer("lifespan.startup", "lifespan.shutdown")
    result = await server.run(make(app_returning([]), on_shutdown=[broken]))
    assert result == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert "cannot flush" in server.sent[1]["message"]


async def test_shutdown_waits_for_requests_in_flight(make: Callable[..., WsgiToAsgi]) -> None:
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
    request = asyncio.ensure_future(Exchange().run(adapter))
    await asyncio.to_thread(running.wait, 5)
    shutdown = asyncio.ensure_future(LifespanServer("lifespan.shutdown").run(adapter))
    for _ in range(10):  # let the shutdown start (and, were it wrong, run the hook early)
        await asyncio.sleep(0)
    assert not shutdown.done()
    release.set()
    await request
    assert await shutdown == ["lifespan.shutdown.complete"]
    assert finished == ["request", "hook"]


async def test_shutdown_gives_up_waiting_after_the_timeout(
    make: Callable[..., WsgiToAsgi], caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    running = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        running.set()
        release.wait(10)
        start_response("200 OK", [])
        return []

    adapter = make(app, shutdown_timeout=0.05)
    request = asyncio.ensure_future(Exchange().run(adapter))
    await asyncio.to_thread(running.wait, 5)
    assert await LifespanServer("lifespan.shutdown").run(adapter) == ["lifespan.shutdown.complete"]
    assert "still running" in caplog.text
    release.set()
    await request  # the stuck request still completes on its (now shut down) pool


async def test_websocket_is_refused(make: Callable[..., WsgiToAsgi]) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await make(app_returning([]))({"type": "websocket", "path": "/"}, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


async def test_unknown_scope_type_raises(make: Callable[..., WsgiToAsgi]) -> None:
    async def receive() -> Message:
        raise AssertionError("not called")

    async def send(message: Message) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="scope type 'telepathy'"):
        await make(app_returning([]))({"type": "telepathy"}, receive, send)


def test_options_are_validated() -> None:
    app = app_returning([])
    with pytest.raises(ValueError, match="workers"):
        WsgiToAsgi(app, workers=0)
    with pytest.raises(ValueError, match="budget"):
        WsgiToAsgi(app, budget=0)
    with pytest.raises(ValueError, match="max_request_body"):
        WsgiToAsgi(app, max_request_body=-1)


# ------------------------------------------------------------------------------ properties

TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1)
HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
CHUNKS = st.lists(st.binary(max_size=40), max_size=8)


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


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

    adapter = WsgiToAsgi(app, workers=2, body_prefetch=prefetch)
    clean = [(n, v.replace(b"\r", b"").replace(b"\n", b"")) for n, v in headers]
    ex = Exchange(_split(body, cuts), method=method, path="/" + path, query=query, headers=clean)
    try:
        asyncio.run(ex.run(adapter))
    finally:
        adapter.pool.shutdown()
    assert ex.status == 200
    expected = build_environ(ex.scope)
    assert {k: seen["environ"][k] for k in expected} == expected
    assert seen["body"] == body


@settings(max_examples=40, deadline=None)
@given(
    code=st.integers(100, 599).filter(lambda c: c >= 200),
    reason=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10),
    headers=st.lists(st.tuples(TOKEN, HEADER_VALUE), max_size=4),
    chunks=CHUNKS,
    kind=st.sampled_from(["list", "tuple", "generator", "write", "write+list", "closing"]),
)
def test_property_messages_match_what_the_app_produced(
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

    adapter = WsgiToAsgi(app, workers=2, budget=64)
    ex = Exchange()
    try:
        asyncio.run(ex.run(adapter))
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
    body: bytes, cuts: list[int], ops: list[tuple[str, int]]
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
    adapter = WsgiToAsgi(reading_app(run, seen), workers=1)
    try:
        asyncio.run(Exchange(_split(body, cuts), method="POST").run(adapter))
    finally:
        adapter.pool.shutdown()
    assert seen["result"] == run(io.BytesIO(body))
