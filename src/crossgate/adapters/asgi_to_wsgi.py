"""Run an ASGI application on a WSGI server.

``asgi_to_wsgi(app)`` returns a PEP 3333 application. Every request of a process runs on the
bridge's portal loop (one per process, started by the first request, rebuilt after fork),
where the app's lifespan also ran, so what the app made at startup stays usable.

Per request, on the WSGI server's thread: the scope is built (:mod:`.environ`), the request
coroutine is spawned on the portal loop (one wake-up), and the thread blocks on a
:class:`~crossgate.adapters._bridge.LoopToThread` channel. While it waits it also reads
``wsgi.input`` for the app (``channel.ask``), so no other thread is involved. The loop
side puts the response start together with the first body message (the ASGI spec lets a
server hold the start until then), so a response sent in one go reaches the thread in one
batch and is returned as a list: two hops per request in all. Longer responses stream
through the channel, whose byte budget makes the app's ``send()`` wait when the server
falls behind.

Specifications quoted beside the code: PEP 3333 (https://peps.python.org/pep-3333/), the
ASGI HTTP spec (https://asgi.readthedocs.io/en/latest/specs/www.html) and its extensions
(https://asgi.readthedocs.io/en/latest/extensions.html).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from functools import partial
from typing import IO, Any, Final, Literal, NoReturn

from crossgate._errors import (
    BridgeClosed,
    ClientDisconnected,
    InvalidResponse,
    LifespanError,
    ResponseTimeout,
)
from crossgate._types import ASGIApp, Environ, ExcInfo, Message, StartResponse
from crossgate.adapters._bridge import DEFAULT_BUDGET, LoopToThread, Portal, get_portal
from crossgate.adapters.environ import build_scope, decode_response_headers, status_line
from crossgate.adapters.lifespan import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LifespanManager,
)

__all__ = ["DEFAULT_DISCONNECT_GRACE", "AsgiToWsgi", "LifespanMode", "asgi_to_wsgi"]

logger = logging.getLogger("crossgate")

LifespanMode = Literal["auto", "on", "off"]

#: Seconds an app gets to finish after the server closed its response early, before it is
#: cancelled.
DEFAULT_DISCONNECT_GRACE: Final = 3.0
#: Request bodies up to this size (by Content-Length) are read before the app starts, so
#: its ``receive()`` answers without a thread hop.
PREFETCH_LIMIT: Final = 64 * 1024
#: Size of each ``wsgi.input`` read of a chunked body (no Content-Length), the smallest
#: read of any body, and the size of file blocks. A body of known length is read up to
#: ``budget`` bytes at a time instead (see ``_Exchange._read``).
READ_SIZE: Final = 64 * 1024
_CANCEL_GRACE: Final = 1.0

# PEP 3333: "Applications and middleware are forbidden from using HTTP/1.1 "hop-by-hop"
# features or headers". ASGI: "You may send a Transfer-Encoding header in this message, but
# the server must ignore it." wsgiref's handler refuses these outright, so they are dropped.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_ERROR_BODY: Final = b"Internal Server Error"
_ERROR_HEADERS: Final = (
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(_ERROR_BODY))),
)
_TIMEOUT_BODY: Final = b"Gateway Timeout"
_TIMEOUT_HEADERS: Final = (
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(_TIMEOUT_BODY))),
)
_PATHSEND: Final = "http.response.pathsend"
# Batches of body chunks up to this size are joined before they reach the server.
_COALESCE: Final = 64 * 1024

# One lock for creating per-process state; re-made in a forked child, where a copy held by
# a thread of the parent would never be released.
_process_lock = threading.Lock()


def _reset_process_lock() -> None:
    global _process_lock
    _process_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_process_lock)


# --------------------------------------------------------------------------------------------
# What travels through the channel (loop -> server thread)
# --------------------------------------------------------------------------------------------
#
# * _Head: the response start with the first body message (bytes, or a _PathSend);
# * bytes: a body chunk with more to come;
# * tuple[bytes]: the last body chunk.


class _PathSend:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class _Head:
    __slots__ = ("body", "final", "headers", "status")

    def __init__(
        self, status: str, headers: list[tuple[str, str]], body: bytes | _PathSend, final: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.final = final


_Item = _Head | bytes | tuple[bytes]


def _collect(batch: list[_Item], start: int, first: bytes = b"") -> tuple[list[bytes], bool]:
    """The body chunks in ``batch[start:]`` (after ``first``), empty ones dropped, and
    whether the last chunk is among them.

    Large chunks pass as they are (copying a megabyte costs more than handing the server a
    few more writes); a run of small ones is joined, one write instead of many.
    """
    chunks: list[bytes] = [first] if first else []
    final = False
    total = len(first)
    for index in range(start, len(batch)):
        item = batch[index]
        if type(item) is not bytes:
            if type(item) is not tuple:
                continue
            item = item[0]
            final = True
        if item:
            chunks.append(item)
            total += len(item)
    if len(chunks) > 1 and total <= _COALESCE:
        return [b"".join(chunks)], final
    return chunks, final


# --------------------------------------------------------------------------------------------
# Per process: the portal, the lifespan and the app's tasks
# --------------------------------------------------------------------------------------------


class _Process:
    """What one process keeps for one adapter; a forked child builds its own."""

    __slots__ = (
        "closed",
        "failure",
        "lock",
        "manager",
        "pid",
        "portal",
        "ready",
        "shutdown_timeout",
        "state",
        "tasks",
    )

    def __init__(self, portal: Portal, shutdown_timeout: float | None) -> None:
        self.pid = os.getpid()
        self.portal = portal
        self.lock = threading.Lock()
        self.ready = False
        self.closed = False
        self.failure: LifespanError | None = None
        self.manager: LifespanManager | None = None
        self.state: dict[str, Any] | None = None
        self.shutdown_timeout = shutdown_timeout
        # Request tasks still running (streaming, or doing background work after their
        # response). Touched on the portal loop only.
        self.tasks: set[asyncio.Task[None]] = set()

    async def shutdown(self) -> None:
        """Wait for the app's remaining work, then run its lifespan shutdown (on the loop)."""
        if self.closed:
            return
        self.closed = True
        pending = {task for task in self.tasks if not task.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.shutdown_timeout)
            if pending:
                logger.warning(
                    "crossgate: cancelling %d ASGI request task(s) still running after %s s",
                    len(pending),
                    self.shutdown_timeout,
                )
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=_CANCEL_GRACE)
        if self.manager is not None:
            await self.manager.shutdown()


# --------------------------------------------------------------------------------------------
# One request: the loop side (receive, send, run, abort)
# --------------------------------------------------------------------------------------------


class _Exchange:
    __slots__ = (
        "app",
        "body",
        "channel",
        "complete",
        "disconnected",
        "error",
        "failed",
        "grace",
        "head_sent",
        "headers",
        "input",
        "input_done",
        "input_lost",
        "orphaned",
        "process",
        "reading",
        "remaining",
        "scope",
        "stash",
        "status",
        "task",
        "waiter",
    )

    def __init__(
        self,
        app: ASGIApp,
        scope: Any,
        channel: LoopToThread[_Item],
        process: _Process,
        grace: float,
    ) -> None:
        self.app = app
        self.scope = scope
        self.channel = channel
        self.process = process
        self.grace = grace
        # Request body: `body` is what was read up front (None: read on demand from `input`,
        # `remaining` bytes of it, or up to EOF when `remaining` is None).
        self.body: bytes | None = b""
        self.input: Any = None
        self.remaining: int | None = None
        self.input_done = False
        self.input_lost = False
        self.reading = False
        # A read whose receive() was cancelled, and what it got (written on the thread).
        self.orphaned = False
        self.stash: bytes | BaseException | None = None
        # Response.
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.complete = False
        self.failed = False
        self.error: BaseException | None = None  # what failed the response
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        tasks = self.process.tasks
        tasks.add(task)
        try:
            await self.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self._app_raised(exc)
            # A cancelled task ends cancelled. Anything else went to the server thread:
            # re-raised here, a SystemExit or KeyboardInterrupt would stop the portal loop
            # that every request of the process shares.
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if not self.complete and not self.failed and not self.disconnected:
                # An app that returns without (finishing) its response would leave the
                # server waiting forever.
                what = "the end of its response" if self.head_sent else "a response"
                self._fail(InvalidResponse(f"ASGI app returned without sending {what}"))
        finally:
            tasks.discard(task)
            self._wake_receiver()

    def _app_raised(self, exc: BaseException) -> None:
        if self.disconnected:
            # ASGI: servers "must be prepared to catch this exception if they raised it and
            # should not log it as an error in their server logs."
            logger.debug("crossgate: ASGI app ended after the client left: %r", exc)
        elif self.complete:
            logger.error("crossgate: ASGI app failed after its response was sent", exc_info=exc)
        elif self.failed:
            # The response already failed with `self.error` (logged by the server thread).
            # Anything else the app raises afterwards would be lost without this.
            if exc is not self.error and not isinstance(exc, asyncio.CancelledError):
                logger.error("crossgate: ASGI app raised after its response failed", exc_info=exc)
        else:
            if isinstance(exc, asyncio.CancelledError):
                # Not ours: the loop is going away (portal closing at exit). The server
                # thread gets an ordinary error (500 or an aborted response), not a
                # CancelledError it has no business with.
                error = BridgeClosed("the ASGI app was cancelled before its response ended")
                error.__cause__ = exc
                exc = error
            self._fail(exc)  # the server thread answers 500 or aborts, and logs it

    def _fail(self, exc: BaseException) -> None:
        """End the exchange with ``exc``: the server thread raises it (or answers 500)."""
        self.failed = True
        self.error = exc
        # Body already sent stays sent: ASGI servers "must flush any data passed to them
        # into the send buffer before returning from a send call", so the server thread
        # gets it, then the error (an aborted response, not a 500 in its place).
        self.channel.close(exc, keep=self.head_sent)
        self._wake_receiver()

    def _wake_receiver(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> Message:
        body = self.body
        if body is not None and not (self.disconnected or self.complete):
            self.body = None
            if self.input_lost:
                # Shorter than Content-Length: what came is delivered as an unfinished body,
                # the next receive() says the client is gone.
                return {"type": "http.request", "body": body, "more_body": True}
            self.input_done = True
            return {"type": "http.request", "body": body, "more_body": False}
        if not (self.input_done or self.input_lost or self.complete or self.disconnected):
            return await self._read()
        if not self.input_lost and not (self.complete or self.failed or self.disconnected):
            # ASGI: "http.disconnect -- Sent to the application if receive is called after a
            # response has been sent or after the HTTP connection has been closed." Until
            # then there is nothing to say: wait for either.
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self.waiter = None
        return {"type": "http.disconnect"}

    def _read_on_thread(self, size: int) -> bytes:
        """On the server thread: read, and keep the outcome until the loop has it."""
        try:
            data: bytes = self.input.read(size)
        except BaseException as exc:
            self.stash = exc
            raise
        self.stash = data
        return data

    def _take_stash(self) -> bytes:
        """On the server thread, after an orphaned read: what that read got."""
        stash, self.stash = self.stash, None
        if isinstance(stash, BaseException):
            raise stash
        return stash or b""

    async def _read(self) -> Message:
        remaining = self.remaining
        if self.orphaned:
            # A receive() was cancelled while its read was on its way (Starlette's
            # is_disconnected() does that on purpose). The thread runs asks in order, so
            # this one returns that read's data: no byte of the body is lost.
            call: Any = self._take_stash
        else:
            if remaining is None:
                # Chunked: the client may be streaming as it goes (a log, a feed), and a
                # read waits until it has its size, so the pieces stay small.
                size = READ_SIZE
            else:
                # Known length: each read is a thread hop, and a WSGI server's read(n)
                # returns n bytes unless the body ends, so up to the budget is read at
                # once (a 1 MiB upload on gunicorn gthread: 3.5x the requests/s of 64 KiB
                # reads, and less memory left fragmented across the server's threads).
                size = min(remaining, max(self.channel.budget, READ_SIZE))
            call = partial(self._read_on_thread, size)
        self.reading = self.orphaned = True
        try:
            # The server thread is blocked in channel.get() for this request: it runs the
            # read there, so wsgi.input is only ever touched by its own thread.
            data: bytes = await self.channel.ask(call)
        except (BridgeClosed, ClientDisconnected, ResponseTimeout):
            self.orphaned = False
            self.input_lost = True
            return {"type": "http.disconnect"}
        except asyncio.CancelledError:
            raise  # self.orphaned stays set: the next receive() collects the data
        except Exception as exc:  # the server's read failed: the client is gone
            self.orphaned = False
            logger.debug("crossgate: reading wsgi.input failed: %r", exc)
            self.input_lost = True
            return {"type": "http.disconnect"}
        finally:
            self.reading = False
        self.orphaned = False
        self.stash = None
        if remaining is None:
            # PEP 3333 (wsgi.input_terminated, mod_wsgi's convention): the input "will
            # return an empty bytestring at the end of the request body", so read to EOF.
            if not data:
                self.input_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": data, "more_body": True}
        if not data:
            # EOF before Content-Length: never endless empty messages; the client is gone.
            self.input_lost = True
            return {"type": "http.disconnect"}
        remaining -= len(data)
        self.remaining = remaining
        if remaining <= 0:
            self.input_done = True
            return {"type": "http.request", "body": data, "more_body": False}
        return {"type": "http.request", "body": data, "more_body": True}

    async def send(self, message: Message) -> None:
        try:
            kind = message.get("type")
        except AttributeError:
            # ASGI (specs/main.html): "Each event is a dict with a top-level type key".
            # Refused like any other invalid message, so the response fails instead of
            # carrying on after an app that swallowed the error.
            self._invalid(f"ASGI message must be a dict, not {type(message).__name__}")
        if kind == "http.response.body":
            if (
                self.head_sent
                and message.get("more_body", False)
                and not (self.complete or self.failed or self.disconnected)
            ):
                # The streaming hot path (a chunk after the first, more to come): no
                # coroutine call, no await unless the byte budget is spent.
                body = message.get("body", b"")
                if type(body) is not bytes:
                    body = self._as_bytes(body)
                if body:
                    channel = self.channel
                    try:
                        if not channel.put_nowait(body, len(body)):
                            await channel.put(b"", 0)  # wait for the server to catch up
                    except OSError:
                        self._client_gone()
                        raise
                return
            await self._send_body(message)
        elif kind == "http.response.start":
            self._start(message)
        elif kind == _PATHSEND:
            self._pathsend(message)
        else:
            # Only advertised extensions may be used; anything else would be lost silently.
            self._invalid(f"ASGI message type {kind!r} is not supported here")

    def _check_open(self, kind: str) -> None:
        if self.disconnected:
            # ASGI (Disconnected Client): "If send() is called on a closed connection the
            # server should raise a server-specific subclass of OSError."
            raise ClientDisconnected(f"{kind} after the WSGI server closed the response")
        if self.complete or self.failed:
            self._invalid(f"{kind} after the response ended")

    def _invalid(self, text: str) -> NoReturn:
        error = InvalidResponse(text)
        if not self.failed and not self.complete:
            self._fail(error)
        raise error

    def _start(self, message: Message) -> None:
        self._check_open("http.response.start")
        if self.status is not None:
            self._invalid("http.response.start sent twice")
        if message.get("trailers"):
            self._invalid("http.response.trailers is not supported (not in scope extensions)")
        try:
            status = status_line(message["status"])
            # ASGI: headers "Optional; if missing defaults to an empty list."
            headers = decode_response_headers(message.get("headers") or ())
        except KeyError:
            self._invalid("http.response.start without a status")
        except InvalidResponse as exc:
            self._fail(exc)
            raise
        for name, _ in headers:
            if name.lower() in _HOP_BY_HOP:
                headers = [pair for pair in headers if pair[0].lower() not in _HOP_BY_HOP]
                break
        # ASGI (Response Start): "Protocol servers need not flush the data generated by this
        # event to the send buffer until the first Response Body event is processed." It is
        # held here and travels with the first body message: one hop, and a 500 is still
        # possible if the app fails before its first body.
        self.status = status
        self.headers = headers

    async def _send_body(self, message: Message) -> None:
        self._check_open("http.response.body")
        status = self.status
        if status is None:
            self._invalid("http.response.body before http.response.start")
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = self._as_bytes(body)
        # ASGI: "more_body (bool) -- Signifies if there is additional content to come [...]
        # Optional; if missing defaults to False."
        more = bool(message.get("more_body", False))
        size = len(body)
        item: _Item
        if not self.head_sent:
            self.head_sent = True
            item = _Head(status, self.headers, body, not more)
        elif more:
            if not size:
                return
            item = body
        else:
            item = (body,)
        channel = self.channel
        try:
            if not more:
                channel.put_last(item, size)
            elif not channel.put_nowait(item, size):
                # Over the byte budget: wait until the server thread takes what is queued.
                # ("Protocol servers must flush any data passed to them into the send
                # buffer before returning from a send call.")
                await channel.put(b"", 0)
        except OSError:
            self._client_gone()
            raise
        if not more:
            self._completed()
            if self.reading:
                # A read is waiting on the thread, which is done with this request once it
                # has taken the last chunk: closing (without error) keeps what is queued
                # and ends the read with http.disconnect.
                channel.close()

    def _as_bytes(self, body: object) -> bytes:
        # ASGI: "body (byte string)". Starlette streams memoryviews too: any buffer of bytes
        # is taken (copied, as the app may reuse it); anything else is refused.
        if not isinstance(body, (bytearray, memoryview)):
            self._invalid(f"http.response.body body must be bytes, not {type(body).__name__}")
        return bytes(body)

    def _pathsend(self, message: Message) -> None:
        self._check_open(_PATHSEND)
        if self.status is None or self.head_sent:
            self._invalid(
                "http.response.pathsend must follow http.response.start, instead of a body"
            )
        path = message.get("path")
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            self._invalid(f"http.response.pathsend path must be str, not {type(path).__name__}")
        assert self.status is not None
        assert isinstance(path, str)
        # Extensions (Path Send): "path (Unicode string) -- The string representation of
        # the absolute path of the file to be sent." The server thread opens and streams it.
        self.head_sent = True
        try:
            self.channel.put_nowait(_Head(self.status, self.headers, _PathSend(path), True), 0)
        except OSError:
            self._client_gone()
            raise
        self._completed()

    def _client_gone(self) -> None:
        # The server thread closed the channel (early close, timeout) before the abort
        # reached the loop: from now on receive() says so too.
        self.disconnected = True
        self._wake_receiver()

    def _completed(self) -> None:
        # The WSGI iteration ends with this message; the app's remaining work (background
        # tasks) carries on on the loop, tracked in process.tasks until shutdown.
        self.complete = True
        self._wake_receiver()

    async def abort(self, grace: float) -> None:
        """The server closed the response early (or gave up): disconnect, then cancel."""
        self.disconnected = True
        self._wake_receiver()
        task = self.task
        if task is None or task.done() or self.complete:
            return
        current = asyncio.current_task()
        tasks = self.process.tasks
        if current is not None:
            tasks.add(current)
        try:
            if grace > 0:
                await asyncio.wait({task}, timeout=grace)
            if not task.done():
                logger.warning(
                    "crossgate: cancelling ASGI app still running %s s after the client left",
                    grace,
                )
                task.cancel()
                await asyncio.wait({task}, timeout=_CANCEL_GRACE)
        finally:
            if current is not None:
                tasks.discard(current)


# --------------------------------------------------------------------------------------------
# The server thread's side: the response iterable
# --------------------------------------------------------------------------------------------


class _Stream:
    """The WSGI iterable of a streamed response: yields body chunks as the app sends them."""

    __slots__ = ("_channel", "_chunks", "_done", "_exchange", "_grace", "_index", "_portal")

    def __init__(
        self, exchange: _Exchange, portal: Portal, grace: float, first: list[bytes]
    ) -> None:
        self._exchange = exchange
        self._channel = exchange.channel
        self._portal = portal
        self._grace = grace
        self._chunks = first
        self._index = 0
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        index = self._index
        chunks = self._chunks
        if index < len(chunks):
            self._index = index + 1
            return chunks[index]
        get = self._channel.get
        while not self._done:
            try:
                batch = get()
            except BaseException as exc:
                self._done = True
                if isinstance(exc, Exception):  # the app's error, passed on by the loop
                    logger.error(
                        "crossgate: ASGI app failed after starting its response", exc_info=exc
                    )
                else:  # KeyboardInterrupt, SystemExit in the server thread: stop the app
                    _abort(self._exchange, self._portal, 0.0, ClientDisconnected(repr(exc)))
                raise
            if not batch:  # closed without an error: nothing more comes
                self._done = True
                break
            chunks, self._done = _collect(batch, 0)
            if chunks:
                self._chunks = chunks
                self._index = 1
                return chunks[0]
        self._chunks = []
        self._index = 0
        raise StopIteration

    def close(self) -> None:
        """PEP 3333: called by the server when it is done with the response, early or not."""
        if self._done:
            return
        self._done = True
        _abort(
            self._exchange,
            self._portal,
            self._grace,
            ClientDisconnected("the WSGI server closed the response before its end"),
        )


class _FileStream:
    """A file's blocks, for servers without ``wsgi.file_wrapper``."""

    __slots__ = ("_file", "_size")

    def __init__(self, file: IO[bytes], size: int) -> None:
        self._file = file
        self._size = size

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        block = self._file.read(self._size)
        if not block:
            raise StopIteration
        return block

    def close(self) -> None:
        self._file.close()


def _abort(exchange: _Exchange, portal: Portal, grace: float, error: BaseException) -> None:
    """From the server thread: make the app's send() raise, its receive() disconnect."""
    exchange.channel.close(error)
    # RuntimeError: the portal is closed (interpreter exit), nothing is left to stop.
    with contextlib.suppress(RuntimeError):
        portal.spawn(exchange.abort, grace)


def _exc_info(exc: BaseException) -> ExcInfo:
    return (type(exc), exc, exc.__traceback__)  # type: ignore[return-value]


def _content_length(environ: Environ) -> int:
    value = environ.get("CONTENT_LENGTH")
    if not value:
        return 0
    # PEP 3333: CONTENT_LENGTH "May be empty or absent"; anything but digits is no body.
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    return 0


def _read_exactly(stream: Any, size: int) -> tuple[bytes, bool]:
    """``size`` bytes of ``stream``, and False if it ended (or failed) before that."""
    try:
        data = stream.read(size)
        if len(data) == size:
            return data, True
        parts = [data]
        got = len(data)
        while got < size:
            more = stream.read(size - got)
            if not more:
                return b"".join(parts), False
            parts.append(more)
            got += len(more)
        return b"".join(parts), True
    except Exception as exc:  # the server's read failed: the client is gone
        logger.debug("crossgate: reading wsgi.input failed: %r", exc)
        return b"", False


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


class AsgiToWsgi:
    """A WSGI application running an ASGI application on the per-process portal loop.

    ``lifespan``: ``"auto"`` runs the app's startup once per process before its first
    request (a failed startup answers every request 500), ``"on"`` makes a missing or failed
    lifespan an error raised to the server, ``"off"`` never sends lifespan events.
    ``budget`` (bytes) bounds the response queued for the server per request, and each
    ``wsgi.input`` read of a body of known length (one ``http.request`` message; reads
    are never smaller than 64 KiB). ``response_timeout`` (seconds until the response
    starts; default off) answers 504; ``disconnect_grace`` is how long the app may run on
    after the server closed its response early.
    :meth:`close` (and interpreter exit) waits for the app's background work and runs its
    shutdown.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: LifespanMode = "auto",
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
        response_timeout: float | None = None,
        disconnect_grace: float = DEFAULT_DISCONNECT_GRACE,
        budget: int = DEFAULT_BUDGET,
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        if budget < 1:
            raise ValueError(f"budget must be at least 1 byte, not {budget!r}")
        self.app = app
        self.lifespan: LifespanMode = lifespan
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.response_timeout = response_timeout
        self.disconnect_grace = disconnect_grace
        self.budget = budget
        self._process: _Process | None = None

    # -- process state and lifespan ------------------------------------------------------

    def _current(self) -> _Process:
        process = self._process
        if process is not None and process.pid == os.getpid():
            return process
        with _process_lock:
            process = self._process
            if process is None or process.pid != os.getpid():
                # A forked child gets a new portal (get_portal checks the pid) and runs its
                # own lifespan: the parent's loop, tasks and state do not exist here.
                process = self._process = _Process(get_portal(), self.shutdown_timeout)
            return process

    def _ready(self) -> _Process:
        process = self._current()
        if not process.ready:
            with process.lock:
                if not process.ready:
                    self._startup(process)
        return process

    def _startup(self, process: _Process) -> None:
        portal = process.portal
        if self.lifespan != "off":
            manager = LifespanManager(
                self.app,
                startup_timeout=self.startup_timeout,
                shutdown_timeout=self.shutdown_timeout,
            )
            try:
                # Lifespan spec: "lifespans and requests are run in the same event loop to
                # ensure that objects like database connection pools are not moved or
                # shared across event loops."
                process.state = portal.call(manager.startup)
            except LifespanError as exc:
                process.failure = exc
                logger.error("crossgate: %s", exc)
            except Exception as exc:
                process.failure = LifespanError(f"ASGI lifespan startup failed: {exc!r}")
                process.failure.__cause__ = exc
                logger.error("crossgate: ASGI lifespan startup failed", exc_info=exc)
            else:
                if manager.supported:
                    process.manager = manager
                elif self.lifespan == "on":
                    process.failure = LifespanError(
                        "ASGI app does not support the lifespan protocol (lifespan='on')"
                    )
                    process.failure.__cause__ = manager.error
        portal.on_close(process.shutdown)
        process.ready = True

    def start(self) -> None:
        """Run the app's lifespan startup in this process now, instead of at the first
        request. Raises :class:`LifespanError` when it failed and ``lifespan="on"``.
        """
        process = self._ready()
        if process.failure is not None and self.lifespan == "on":
            raise LifespanError(str(process.failure)) from process.failure

    def close(self) -> None:
        """Wait (``shutdown_timeout``) for the app's remaining work, then run its lifespan
        shutdown. A later request starts the app again.
        """
        with _process_lock:
            process = self._process
            if process is None or process.pid != os.getpid():
                return
            self._process = None
        if not process.portal.closed:
            process.portal.call(process.shutdown)

    @property
    def state(self) -> dict[str, Any] | None:
        """The lifespan state of this process (None before startup or without lifespan)."""
        process = self._process
        if process is None or process.pid != os.getpid():
            return None
        return process.state

    # -- requests ------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        process = self._process
        if process is None or not process.ready or process.pid != os.getpid():
            process = self._ready()
        if process.failure is not None:
            return self._lifespan_failed(process.failure, start_response)
        portal = process.portal
        scope = build_scope(environ, extensions={_PATHSEND: {}}, state=process.state)
        channel: LoopToThread[_Item] = LoopToThread(portal.loop, self.budget)
        exchange = _Exchange(self.app, scope, channel, process, self.disconnect_grace)

        # ASGI (Request): "body [...] If more_body is set, treat as start of body and
        # concatenate on further chunks." Small bodies are read now, on this thread.
        if environ.get("wsgi.input_terminated") and (
            not environ.get("CONTENT_LENGTH") or "HTTP_TRANSFER_ENCODING" in environ
        ):
            # The server marks the end of the input itself (gunicorn and waitress always
            # do): with no Content-Length, or a chunked upload, read to EOF, on demand.
            # With a Content-Length (and no Transfer-Encoding) it is the body's length:
            # the small-body path below still applies.
            exchange.body = None
            exchange.input = environ.get("wsgi.input") or io.BytesIO()
        else:
            length = _content_length(environ)
            if length:
                stream = environ.get("wsgi.input")
                if stream is None:
                    exchange.input_lost = True
                elif length <= PREFETCH_LIMIT:
                    body, whole = _read_exactly(stream, length)
                    exchange.body = body
                    exchange.input_lost = not whole
                else:
                    exchange.body = None
                    exchange.input = stream
                    exchange.remaining = length

        portal.spawn(exchange.run)
        try:
            batch = channel.get(self.response_timeout)
        except TimeoutError as exc:
            if self.response_timeout is None or channel.closed:  # the app's own error
                return self._failed(exc, environ, start_response, exchange.input_lost)
            error = ResponseTimeout(
                f"the ASGI app did not start its response within {self.response_timeout} s"
            )
            _abort(exchange, portal, 0.0, error)
            logger.error("crossgate: %s (%s %s)", error, scope["method"], scope["path"])
            start_response("504 Gateway Timeout", list(_TIMEOUT_HEADERS))
            return [_TIMEOUT_BODY]
        except Exception as exc:
            return self._failed(exc, environ, start_response, exchange.input_lost)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit in the server thread
            _abort(exchange, portal, 0.0, ClientDisconnected(f"server interrupted: {exc!r}"))
            raise

        head = batch[0]
        assert type(head) is _Head
        first = head.body
        try:
            if isinstance(first, _PathSend):
                return self._send_file(first.path, head, environ, start_response)
            if head.final:
                start_response(head.status, head.headers)
                return [first] if first else []
            chunks, done = _collect(batch, 1, first)
            start_response(head.status, head.headers)
        except BaseException:
            _abort(exchange, portal, 0.0, ClientDisconnected("start_response() failed"))
            raise
        if done:
            return chunks
        return _Stream(exchange, portal, self.disconnect_grace, chunks)

    def _send_file(
        self, path: str, head: _Head, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by the iterable's close()
        except OSError as exc:
            return self._failed(exc, environ, start_response)
        try:
            start_response(head.status, head.headers)
        except BaseException:
            file.close()
            raise
        # PEP 3333 (Optional Platform-Specific File Handling): "wsgi.file_wrapper [...] a
        # callable that accepts one required positional parameter, and one optional
        # positional parameter" (the block size); the server may then send it with
        # sendfile().
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            wrapped: Iterable[bytes] = wrapper(file, READ_SIZE)
            return wrapped
        return _FileStream(file, READ_SIZE)

    def _failed(
        self,
        exc: BaseException,
        environ: Environ,
        start_response: StartResponse,
        quiet: bool = False,
    ) -> list[bytes]:
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO")
        if quiet:
            # The request body was cut off: the app failing on it is the client's doing.
            logger.info(
                "crossgate: ASGI app failed on a truncated request (%s %s): %r", method, path, exc
            )
        else:
            logger.error(
                "crossgate: ASGI app failed before starting its response (%s %s)",
                method,
                path,
                exc_info=exc,
            )
        # PEP 3333: "The exc_info argument, if supplied, must be a Python sys.exc_info()
        # tuple. This argument should be supplied by the application only if
        # start_response is being called by an error handler."
        start_response("500 Internal Server Error", list(_ERROR_HEADERS), _exc_info(exc))
        return [_ERROR_BODY]

    def _lifespan_failed(
        self, failure: LifespanError, start_response: StartResponse
    ) -> list[bytes]:
        if self.lifespan == "on":
            raise LifespanError(str(failure)) from failure
        logger.error("crossgate: answering 500, the app's lifespan startup failed: %s", failure)
        start_response("500 Internal Server Error", list(_ERROR_HEADERS), _exc_info(failure))
        return [_ERROR_BODY]

    def __repr__(self) -> str:
        return f"<AsgiToWsgi {self.app!r} lifespan={self.lifespan}>"


#: ``asgi_to_wsgi(app, **options)``, the functional spelling: the class itself, so that its
#: options are declared (and typed) once.
asgi_to_wsgi = AsgiToWsgi
