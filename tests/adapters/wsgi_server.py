"""An in-process ASGI server for the WSGIToASGI tests, and the apps and bodies they share.

Bodies are fed whole, in many chunks (one byte at a time, empty chunks too) and cut off by a
disconnect.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import anyio
import pytest

from crossgate._types import Environ, Message, Receive, StartResponse, WSGIApp
from crossgate.adapters._bridge import asyncio_loop, trio_loop
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI

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


class Flag:
    """An event for the test server on any loop (asyncio, uvloop, trio), which may be made
    before a loop runs: anyio's own needs a running loop to be made."""

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


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
        self.gone = Flag()  # the response ended or the client left
        self.send_error: BaseException | None = None
        self.send_gate: Flag | None = None
        self.sent_bytes = 0  # body bytes the "server" took, read by the budget test's app
        self.started = Flag()  # the first message was sent

    async def receive(self) -> Message:
        self.receives += 1
        if self.body:
            chunk = self.body.pop(0)
            more = bool(self.body) or self.cut or self.pending or self.stalled
            return {"type": "http.request", "body": chunk, "more_body": more}
        if self.receives == 1:
            return {"type": "http.request", "body": b"", "more_body": self.cut}
        if self.pending:
            await anyio.sleep_forever()
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

    async def run(self, app: WSGIToASGI, timeout: float = 10.0) -> Exchange:
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


def slow_client(parts: Sequence[bytes], calls: list[str]) -> Receive:
    """receive() for a client slower than the app: ``parts`` as the body, every message
    after the first 30 ms late, then nothing until the response ends. Each call is
    recorded in ``calls``."""

    async def receive() -> Message:
        calls.append("receive")
        if len(calls) > 1:
            await anyio.sleep(0.03)
        if len(calls) <= len(parts):
            more = len(calls) < len(parts)
            return {"type": "http.request", "body": parts[len(calls) - 1], "more_body": more}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


async def run_cancelled(
    ex: Exchange, app: WSGIToASGI, ready: Callable[[], Awaitable[object]]
) -> bool:
    """Run ``ex`` through ``app`` in a task, cancel that task once ``ready()`` returned;
    True if the request ended by that cancellation (it reached the adapter, which let it
    through)."""
    ended: list[str] = []

    async def request() -> None:
        try:
            await ex.run(app)
        except anyio.get_cancelled_exc_class():
            ended.append("cancelled")
            raise
        ended.append("returned")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(request)
        await ready()
        tasks.cancel_scope.cancel()
    return ended == ["cancelled"]


def live_tasks() -> set[object]:
    """The tasks on the running loop that the test did not start: asyncio's own list, or
    on trio those the bridge started (its system tasks)."""
    if asyncio_loop() is not None:
        return set(asyncio.all_tasks())
    return set(trio_loop()._tasks.values())
