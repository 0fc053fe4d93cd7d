"""The loop side of one request of :class:`~crossgate.adapters.asgi_to_wsgi.ASGIToWSGI`:
the ASGI app's ``receive()`` and ``send()``, its task, and what goes to the server thread.

The app runs on the portal loop. Its ``send()`` puts the response into a
:class:`~crossgate.adapters._bridge.LoopToThread` channel, the start held back until the
first body message so both travel together; its ``receive()`` returns the body read up
front, or asks the server thread (blocked on the channel) to read ``wsgi.input`` for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial
from typing import Any, Final, NoReturn

from crossgate._errors import BridgeClosed, ClientDisconnected, InvalidResponse, ResponseTimeout
from crossgate._types import ASGIApp, Message
from crossgate.adapters._bridge import (
    Handle,
    LoopToThread,
    Task,
    ThreadSensitive,
    Waiter,
    current_task,
    is_cancellation,
    running_loop,
    wait_tasks,
)
from crossgate.adapters.environ import decode_response_headers, status_line
from crossgate.adapters.lifespan import CANCEL_GRACE

__all__ = ["PATHSEND", "READ_SIZE", "Head", "Item", "LoopRequest", "PathSend"]

logger = logging.getLogger(__name__)

#: Size of each ``wsgi.input`` read of a chunked body (no Content-Length), the smallest
#: read of any body, and the size of file blocks. A body of known length is read up to
#: ``budget`` bytes at a time instead (see ``LoopRequest._read``).
READ_SIZE: Final = 64 * 1024
PATHSEND: Final = "http.response.pathsend"

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

# What travels through the channel (loop -> server thread):
#
# * Head: the response start with the first body message (bytes, or a PathSend);
# * bytes: a body chunk with more to come;
# * tuple[bytes]: the last body chunk.


class PathSend:
    """An ``http.response.pathsend`` for the server thread to open and send."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class Head:
    """The response start, with the first body message."""

    __slots__ = ("body", "final", "headers", "status")

    def __init__(
        self, status: str, headers: list[tuple[str, str]], body: bytes | PathSend, final: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.final = final


Item = Head | bytes | tuple[bytes]


class LoopRequest:
    """One request on the portal loop: the app's task, ``receive()`` and ``send()``.

    (The server thread's side is the channel it blocks on and, for a streamed response,
    :class:`~crossgate.adapters._asgi_stream.Stream`.)
    """

    __slots__ = (
        "app",
        "body",
        "channel",
        "complete",
        "disconnected",
        "error",
        "failed",
        "gave_up",
        "grace",
        "head_sent",
        "headers",
        "input",
        "input_done",
        "input_lost",
        "orphaned",
        "reading",
        "remaining",
        "scope",
        "stash",
        "status",
        "task",
        "tasks",
        "waiter",
    )

    def __init__(
        self,
        app: ASGIApp,
        scope: Any,
        channel: LoopToThread[Item],
        tasks: set[Task],
        grace: float = 3.0,
    ) -> None:
        """``grace``: seconds the app may take, once told its client left mid-body, to
        start a response (or end) before it is given up on and cancelled."""
        self.app = app
        self.grace = grace
        # The timer that gives up on an app told its client left mid-body (see _lost).
        self.gave_up: Handle | None = None
        self.scope = scope
        self.channel = channel
        # The process's request tasks still running, awaited at shutdown.
        self.tasks = tasks
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
        self.waiter: Waiter[None] | None = None
        self.task: Task | None = None

    async def run(self) -> None:
        try:
            task: Task | None = asyncio.current_task()
        except RuntimeError:  # not on asyncio: the trio portal
            task = current_task()
        assert task is not None
        self.task = task
        tasks = self.tasks
        tasks.add(task)
        try:
            # The request's thread-sensitive calls share a thread (entered and left
            # directly: an `async with` costs this path two coroutines).
            sensitive = ThreadSensitive()
            sensitive.enter()
            try:
                await self.app(self.scope, self.receive, self.send)
            finally:
                sensitive.exit()
        except BaseException as exc:
            self._app_raised(exc)
            # A cancelled task ends cancelled. Anything else went to the server thread:
            # re-raised here, a SystemExit or KeyboardInterrupt would stop the portal loop
            # that every request of the process shares.
            if is_cancellation(exc):
                raise
        else:
            if not self.complete and not self.failed and not self.disconnected:
                # An app that returns without (finishing) its response would leave the
                # server waiting forever.
                what = "the end of its response" if self.head_sent else "a response"
                self._fail(InvalidResponse(f"ASGI app returned without sending {what}"))
        finally:
            tasks.discard(task)
            gave_up, self.gave_up = self.gave_up, None
            if gave_up is not None:
                gave_up.cancel()
            # Only the checks above read it. Kept, the app's error would keep its traceback,
            # which holds this frame and this exchange: a cycle.
            self.error = None
            self._wake_receiver()

    def _app_raised(self, exc: BaseException) -> None:
        if self.disconnected:
            # ASGI: servers "must be prepared to catch this exception if they raised it and
            # should not log it as an error in their server logs."
            logger.debug("ASGI app ended after the client left: %r", exc)
        elif self.input_lost and (self.complete or self.failed) and not is_cancellation(exc):
            # The client left mid-body and the app stopped on it after answering (Starlette
            # raises ClientDisconnect, and its error middleware sends a 500 first, which
            # nobody will read). A client that leaves is not an application error. (Before
            # an answer, the server thread says the same in one line: see _fail below.)
            logger.info(
                "the client left before the request body ended (%s %s); the ASGI app "
                "stopped with %s",
                self.scope.get("method"),
                self.scope.get("path"),
                type(exc).__name__,
            )
        elif self.complete:
            logger.error("ASGI app failed after its response was sent", exc_info=exc)
        elif self.failed:
            # The response already failed with `self.error` (logged by the server thread).
            # Anything else the app raises afterwards would be lost without this.
            if exc is not self.error and not is_cancellation(exc):
                logger.error("ASGI app raised after its response failed", exc_info=exc)
        else:
            if is_cancellation(exc):
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
            waiter = self.waiter = running_loop().create_future()
            try:
                await waiter
            finally:
                self.waiter = None
        if self.input_lost:
            return self._lost()
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
            return self._lost()
        except asyncio.CancelledError:
            raise  # self.orphaned stays set: the next receive() collects the data
        except Exception as exc:  # the server's read failed: the client is gone
            self.orphaned = False
            logger.debug("reading wsgi.input failed: %r", exc)
            return self._lost()
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
            return self._lost()
        remaining -= len(data)
        self.remaining = remaining
        if remaining <= 0:
            self.input_done = True
            return {"type": "http.request", "body": data, "more_body": False}
        return {"type": "http.request", "body": data, "more_body": True}

    def _lost(self) -> Message:
        """The client left before its body ended: the app is told so (http.disconnect).

        The server thread still waits for a response; an app that neither starts one nor
        ends within ``grace`` seconds (it ignores the disconnect) is given up on then: the
        thread gets an error, so a server with one thread per request gets it back, and the
        app is cancelled. (After the response started, the server's early close does the
        same: see abort.)
        """
        self.input_lost = True
        if self.gave_up is None and not (self.head_sent or self.complete or self.failed):
            self.gave_up = running_loop().call_later(self.grace, self._give_up)
        return {"type": "http.disconnect"}

    def _give_up(self) -> None:
        if self.head_sent or self.complete or self.failed:
            return
        error = ClientDisconnected(
            f"the client left before the request body ended and the ASGI app did not "
            f"answer within {self.grace} s"
        )
        self._fail(error)
        task = self.task
        if task is not None and not task.done():
            task.cancel()

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
        elif kind == PATHSEND:
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
        item: Item
        if not self.head_sent:
            self.head_sent = True
            item = Head(status, self.headers, body, not more)
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
        self._check_open(PATHSEND)
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
            self.channel.put_nowait(Head(self.status, self.headers, PathSend(path), True), 0)
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
        # tasks) carries on on the loop, tracked in `tasks` until shutdown.
        self.complete = True
        self._wake_receiver()

    async def abort(self, grace: float) -> None:
        """The server closed the response early (or gave up): disconnect, then cancel."""
        self.disconnected = True
        self._wake_receiver()
        task = self.task
        if task is None or task.done() or self.complete:
            return
        current = current_task()
        tasks = self.tasks
        if current is not None:
            tasks.add(current)
        try:
            if grace > 0:
                await wait_tasks((task,), grace)
            if not task.done():
                logger.warning(
                    "cancelling ASGI app still running %s s after the client left",
                    grace,
                )
                task.cancel()
                await wait_tasks((task,), CANCEL_GRACE)
        finally:
            if current is not None:
                tasks.discard(current)
