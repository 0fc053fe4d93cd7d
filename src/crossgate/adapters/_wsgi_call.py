"""One WSGI call of :class:`~crossgate.adapters.wsgi_to_asgi.WSGIToASGI`: the app run on a
worker thread for one request, its response handed to the loop and sent from there.

A list or tuple body crosses to the loop whole, through the request's first-delivery
future (one hop: start and body go out together). Any other iterable streams through a
byte-budgeted :class:`~crossgate.adapters._bridge.ThreadToLoop` channel, opened with its
first chunk and drained by the request coroutine in batches; once the budget is in flight
the worker's next chunk waits for the loop to take them. A disconnect, or a ``send()``
that raises, stops the request: the worker's next put raises, and the iterable is closed
on the thread that ran it.

The request body's loop side, :class:`~crossgate.adapters._wsgi_body.BodyReceiver`, is
given to the call, which it tells when the client leaves; its worker side, the file the
app reads, is :mod:`._wsgi_input`'s.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Final

from crossgate._errors import ClientDisconnected, InvalidResponse, caused_by_disconnect
from crossgate._state import State, refused_move
from crossgate._types import Environ, Message, OptExcInfo, Send, WriteCallable, WSGIApp
from crossgate.adapters._bridge import (
    Loop,
    ThreadToLoop,
    Waiter,
    call_in_loop,
    resolve_threadsafe,
    step_away,
)
from crossgate.adapters._wsgi_body import TIMED_OUT, BodyReceiver
from crossgate.adapters.environ import check_status, encode_response_headers

__all__ = ["FileWrapper", "ResponseState", "WSGIJob", "plain_response", "timed_out_response"]

logger = logging.getLogger(__name__)

_ERROR_BODY: Final = b"Internal Server Error"
_TIMED_OUT_BODY: Final = b"Request Timeout"
_PLAIN: Final = b"text/plain; charset=utf-8"
#: Small batches of streamed chunks are joined into one ``http.response.body`` message;
#: larger joins cost servers without backpressure memory (CHANGELOG, "Changed").
_JOIN_BELOW: Final = 64 * 1024
_FILE_BLOCK: Final = 64 * 1024


def plain_response(status: int, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(b"content-type", _PLAIN), (b"content-length", str(len(body)).encode("ascii"))]
    return status, headers, body


def timed_out_response(seconds: float | None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """408 for a client that sent no body bytes for ``seconds``; the connection closes.

    RFC 9110 15.5.9: "The 408 (Request Timeout) status code indicates that the server did
    not receive a complete request message within the time that it was prepared to wait."
    A server that sends it "SHOULD send the "close" connection option".
    """
    status, headers, body = plain_response(408, _TIMED_OUT_BODY)
    headers.append((b"connection", b"close"))
    return status, headers, body


class FileWrapper:
    """``wsgi.file_wrapper``: a file body the adapter can hand to the server whole.

    PEP 3333 (Optional Platform-Specific File Handling): "the wrapper must be an iterable
    object [...] If the "file-like" object has a close() method, the returned object must
    also have a close() method, and when called, must call the file-like object's close()".
    When the server advertises ``http.response.pathsend`` or ``http.response.zerocopysend``
    the file goes out through it; otherwise it is read in blocks on the worker thread.
    """

    def __init__(self, filelike: IO[bytes], block_size: int = _FILE_BLOCK) -> None:
        self.filelike = filelike
        self.block_size = block_size if block_size > 0 else _FILE_BLOCK

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.block_size
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class ResponseState(State):
    """Where the app's response stands. Only the worker thread moves it, in
    :meth:`WSGIJob._move`; the loop reads FINISHED (see ``WSGIJob._finish``)."""

    #: The app runs; start_response() not called yet.
    CALLING = "calling"
    #: Status and headers given, not sent: start_response(..., exc_info) may replace them.
    STARTED = "started"
    #: Headers sent (PEP 3333: with the first non-empty chunk, or at the first write()).
    COMMITTED = "committed"
    #: The app and its close() are done.
    FINISHED = "finished"


# The members as module constants: a global is read in a few nanoseconds, an enum member
# in about 90 (see _wsgi_body).
CALLING: Final = ResponseState.CALLING
STARTED: Final = ResponseState.STARTED
COMMITTED: Final = ResponseState.COMMITTED
FINISHED: Final = ResponseState.FINISHED
_MOVES: Final[dict[ResponseState, frozenset[ResponseState]]] = {
    CALLING: frozenset((STARTED, FINISHED)),
    STARTED: frozenset((STARTED, COMMITTED, FINISHED)),  # exc_info: STARTED again
    COMMITTED: frozenset((FINISHED,)),
    FINISHED: frozenset(),
}


# A response the worker had whole at once (status, headers, body): it reaches the loop
# through the request's first-delivery future, with no channel involved.
_Whole = tuple[int, list[tuple[bytes, bytes]], "bytes | list[bytes]"]


class WSGIJob:
    """One call of the WSGI app for one request: its run (worker thread) and its response
    sent (loop).

    Args:
        loop: the request's event loop.
        scope: the request's ASGI scope.
        send: the request's ``send()``.
        body: the loop's side of the request body; the call becomes its
            ``on_disconnect``.
        budget: the most response bytes in flight (the adapter's ``budget``).
    """

    __slots__ = (
        "_done",
        "body",
        "budget",
        "channel",
        "first",
        "headers",
        "loop",
        "raised",
        "remaining",
        "scope",
        "send",
        "sent_by_worker",
        "state",
        "status",
        "stopped",
        "whole",
    )

    def __init__(
        self,
        loop: Loop,
        scope: Message,
        send: Send,
        body: BodyReceiver,
        budget: int,
    ) -> None:
        self.loop = loop
        self.scope = scope
        self.send = send
        self.budget = budget
        self.body = body
        body.on_disconnect = self.stop  # a client that leaves stops this call
        self.state = CALLING  # the response's, moved by the worker only (see _move)
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.remaining: int | None = None  # Content-Length still allowed on the wire
        # How the response reaches the loop, which awaits `first`: the worker resolves it
        # once, with the whole response (the usual case: one hand-off, no lock) or with
        # None, meaning "read `channel`" (a stream, or an end that went through it).
        self.first: Waiter[_Whole | None] = loop.create_future()
        self.whole: _Whole | None = None  # a whole response, handed over as the job ends
        # What the app raised when its response went whole: the app's error behind a 500,
        # or a SystemExit from its close(). The loop sends the response, then raises it
        # to the server (and takes it back: kept here, its traceback, which holds the
        # frames of run() and of the loop's call, would tie them to this request).
        self.raised: BaseException | None = None
        # Opened by the worker when the response streams, and announced through `first`
        # at once (see _stream): a whole response, the usual case, needs none.
        self.channel: ThreadToLoop[bytes] | None = None
        # Why nobody will take the response, once the loop knows (the client left, send()
        # failed, the task was cancelled): the worker's next put raises, so the app stops.
        # A reason, not the exception: see stop().
        self.stopped: str | None = None
        self.sent_by_worker = False  # pathsend / zerocopysend went out from the worker
        # The loop waits on _done only when it finds the state short of FINISHED (an early
        # exit), so the usual request needs no second wake-up of the loop.
        self._done: Waiter[None] | None = None

    # ---------------------------------------------------------------- worker thread side

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> WriteCallable:
        """PEP 3333 ``start_response``; validates now, so a bad status fails in the app."""
        if exc_info is not None and exc_info[0] is not None:
            try:
                # PEP 3333 (https://peps.python.org/pep-3333/#the-start-response-callable):
                # "if exc_info is provided, and the HTTP headers have already been sent,
                # start_response must raise an error, and should re-raise using the exc_info
                # tuple. That is: raise exc_info[1].with_traceback(exc_info[2])"
                if self.state is COMMITTED:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                # As PEP 3333's example gateway does: "exc_info = None  # avoid dangling
                # circular ref" (frame -> traceback -> frame).
                exc_info = None
            # PEP 3333: "If exc_info is supplied, and no HTTP headers have been output yet,
            # start_response should replace the currently-stored HTTP response headers with
            # the newly-supplied ones, thus allowing the application to "change its mind"".
        elif self.state is not CALLING:
            # PEP 3333: "it is a fatal error to call start_response without the exc_info
            # argument if start_response has already been called within the current
            # invocation of the application."
            raise InvalidResponse("start_response() called a second time without exc_info")
        code = check_status(status)
        encoded = encode_response_headers(headers)
        remaining = None
        for name, value in encoded:
            if name == b"content-length":
                if not value.isdigit():
                    raise InvalidResponse(f"invalid Content-Length header {value!r}")
                remaining = int(value)
                break
        self._move(STARTED)
        self.status = code
        self.headers = encoded
        self.remaining = remaining
        return self.write

    def _move(self, state: ResponseState) -> None:
        """The one place where the response's state changes (see ResponseState)."""
        if state not in _MOVES[self.state]:
            raise refused_move("WSGI response", self.state, state)
        self.state = state

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: queued for the loop at once (the loop sends it in order)."""
        state = self.state
        if state is CALLING:
            raise InvalidResponse("write() called before start_response()")
        if type(data) is not bytes:
            data = _as_bytes(data)
        # PEP 3333: headers go out "upon the application's first invocation of the write()
        # callable", even an empty one.
        if state is STARTED:
            self._move(COMMITTED)
        if data:
            self._emit(data)

    def _emit(self, chunk: bytes) -> bool:
        """Queue a non-empty chunk; True once the declared Content-Length is reached."""
        state = self.state
        if state is CALLING:
            # PEP 3333: "the application must invoke the start_response() callable before
            # the iterable yields its first body bytestring". Without this, a start message
            # with no status would reach the server.
            raise InvalidResponse("the WSGI iterable yielded body data before start_response()")
        remaining = self.remaining
        stop = False
        if remaining is not None:
            # A body that overruns its Content-Length is cut: the excess never reaches the
            # wire (it would be read as the start of the next response on the connection).
            if len(chunk) >= remaining:
                chunk = chunk[:remaining]
                stop = True
            self.remaining = remaining - len(chunk)
            if not chunk:
                return stop
        # From the first chunk on, status and headers are committed: PEP 3333 "sent".
        if state is STARTED:
            self._move(COMMITTED)
        channel = self.channel
        if channel is None:
            # Before the put, which may wait for a loop that is still awaiting `first`.
            channel = self._stream()
        channel.put(chunk, len(chunk))
        return stop

    def _stream(self) -> ThreadToLoop[bytes]:
        """The response's channel, opened on first use and announced to the loop then.

        Never called once ``whole`` is set: a response goes one way or the other.
        """
        channel = self.channel
        if channel is None:
            channel = self.channel = ThreadToLoop(self.loop, self.budget)
            # The loop sets `stopped` before it looks for a channel to close, and the
            # worker opens the channel before it looks at `stopped`: one of them sees the
            # other, so a stop is never missed (it may be applied twice, which is harmless).
            stopped = self.stopped
            if stopped is not None:
                channel.close(ClientDisconnected(stopped))
            resolve_threadsafe(self.first, None)
        return channel

    def run(self, app: WSGIApp, environ: Environ) -> Callable[[], None] | None:
        """The worker job: call the app, hand its body to the loop, always close it.

        A whole response is handed over last, by the returned callable, which the pool
        calls once it counts this thread idle: the loop, woken then, finds the GIL free
        and the work done, where a wake-up any earlier would have it wait for both.
        """
        if self.stopped is not None:
            # The request was abandoned (its task cancelled) while this job was queued.
            self._finish()
            return None
        try:
            iterable = app(environ, self.start_response)
            try:
                if self.state is not COMMITTED and type(iterable) in (list, tuple):
                    self._whole(iterable)  # type: ignore[arg-type]
                elif self.state is not COMMITTED and type(iterable) is FileWrapper:
                    self._file(iterable)
                else:
                    self._iterate(iterable)
            finally:
                close = getattr(iterable, "close", None)
                if close is not None:
                    # PEP 3333: "If the iterable returned by the application has a close()
                    # method, the server or gateway must call that method upon completion
                    # of the current request, whether the request was completed normally,
                    # or terminated early due to an application error during iteration or
                    # an early disconnect of the browser."
                    try:
                        close()
                    except Exception:
                        logger.exception("the WSGI iterable's close() raised")
        except Exception as exc:
            self._failed(exc)
        except BaseException as exc:  # SystemExit and the like: the server's to handle
            # An attribute, not a local: this frame is in the error's traceback.
            self.raised = exc
        # Finished before the channel ends: the loop, woken by the end, then finds the
        # work done and need not be woken a second time.
        self._finish()
        whole = self.whole
        if whole is not None:
            # `raised` is written before `first` resolves: the loop sees it with `whole`.
            return functools.partial(resolve_threadsafe, self.first, whole)
        # A stream; or write(b"") alone, a file sent by the server, an error after the
        # headers: all end through the channel, which takes the error over.
        self._stream().close(self.raised, keep=True)
        self.raised = None
        return None

    def _finish(self) -> None:
        self._move(FINISHED)
        # Read after the write above; wait_finished() writes `_done` before it reads the
        # state: either the loop sees the job finished or this sees its future.
        done = self._done
        if done is not None:
            resolve_threadsafe(done, None)

    def _whole(self, chunks: Sequence[bytes]) -> None:
        """A list or tuple body: the response goes to the loop in one piece."""
        status = self.status
        if status is None:
            raise InvalidResponse("the WSGI application returned without calling start_response()")
        remaining = self.remaining
        body: bytes | list[bytes]
        if len(chunks) == 1:
            body = chunks[0] if type(chunks[0]) is bytes else _as_bytes(chunks[0])
            if remaining is not None and len(body) > remaining:
                body = body[:remaining]
        else:
            parts = [chunk if type(chunk) is bytes else _as_bytes(chunk) for chunk in chunks]
            if sum(map(len, parts)) <= self.budget:
                body = b"".join(parts)
                if remaining is not None and len(body) > remaining:
                    body = body[:remaining]
            else:
                # Big and already in memory: sent as they are rather than copied into one.
                body = []
                for part in parts:
                    if remaining is not None:
                        if len(part) >= remaining:
                            if remaining:
                                body.append(part[:remaining])
                            break
                        remaining -= len(part)
                    if part:
                        body.append(part)
        # Handed over as the job's last act (see run); a list or tuple has no close().
        self.whole = (status, self.headers, body)

    def _iterate(self, iterable: Iterable[bytes]) -> None:
        emit = self._emit
        put = None
        for item in iterable:
            chunk = item if type(item) is bytes else _as_bytes(item)
            # PEP 3333: headers wait for "the first iteration of the application return
            # value that yields a non-empty bytestring": empty chunks are skipped.
            if not chunk:
                continue
            if put is not None:
                put(chunk, len(chunk))  # the hot loop: streaming, no Content-Length to keep
            elif emit(chunk):
                break
            elif self.remaining is None:
                put = self._stream().put
                # A response that streams on past its first chunk may be long-lived (an
                # event stream, a long poll, a download): from here on the job does not
                # count against the pool's `workers`, so it cannot starve short requests
                # (it still counts against `max_threads`).
                step_away()
        if self.state is not COMMITTED:
            self._whole(())

    def _file(self, wrapper: FileWrapper) -> None:
        """Hand a file to the server when it can send it itself, else read it in blocks."""
        if self.state is CALLING:
            raise InvalidResponse("the WSGI application returned without calling start_response()")
        extensions = self.scope.get("extensions") or {}
        filelike = wrapper.filelike
        try:
            fileno = filelike.fileno()
            offset = filelike.tell()
            size = os.fstat(fileno).st_size
        except (AttributeError, OSError, ValueError):
            self._iterate(wrapper)
            return
        count = size - offset
        if self.remaining is not None:
            count = min(count, self.remaining)
        if "http.response.zerocopysend" in extensions and count >= 0:
            # Extensions: "file: An opened file descriptor object with an underlying OS
            # file descriptor that can be used to call os.sendfile."
            message: Message = {
                "type": "http.response.zerocopysend",
                "file": filelike,
                "offset": offset,
                "count": count,
                "more_body": False,
            }
        else:
            path = getattr(filelike, "name", None)
            if (
                "http.response.pathsend" not in extensions
                or not isinstance(path, str)
                or not os.path.isabs(path)
                or offset != 0
                or count != size
            ):
                self._iterate(wrapper)
                return
            # Extensions: "path (Unicode string) - The string representation of the
            # absolute path of the file to be sent."
            message = {"type": "http.response.pathsend", "path": path}
        if self.state is STARTED:
            self._move(COMMITTED)
        # Sent from here, so that close() (the finally in run) comes after the server took it.
        call_in_loop(self.loop, self._send_file, message)
        self.sent_by_worker = True

    def _failed(self, exc: Exception) -> None:
        stopped = self.stopped
        if stopped is not None:
            # Stopped by the loop side (the client left, send() failed, the request was
            # cancelled): nobody takes a response, or an error after it, any more.
            if caused_by_disconnect(exc):
                # A client that leaves is not an application error: one line, no traceback.
                logger.debug("WSGI app stopped: %s (%r)", stopped, exc)
            else:
                logger.error(
                    "WSGI app raised after its request stopped (%s)", stopped, exc_info=exc
                )
        elif self.state is COMMITTED:
            # After the headers went out: abort the response, the server sees the error
            # once it has sent the chunks the app produced before it (PEP 3333 counts them
            # as sent; dropping them would turn an aborted response into a 500).
            self._stream().close(exc, keep=True)
        else:
            # Before the headers: a 500 replaces the response, and the error goes on to the
            # server after it, as every ASGI server expects of an app that failed (it logs
            # "Exception in ASGI application"; test clients re-raise it). Not logged here
            # as well: once is enough.
            self.whole = plain_response(500, _ERROR_BODY)
            self.raised = exc

    # ------------------------------------------------------------------------ loop side

    def stop(self, reason: str) -> None:
        """Nobody will take the response: the worker's next put raises
        :class:`ClientDisconnected` with ``reason``.

        The request keeps the reason, and only the channel the exception: the loop, which
        meets it once as the channel's consumer (in respond), then holds it in a traceback
        that holds respond's frame, and that frame this request. Kept here too, it would
        tie them into a reference cycle.
        """
        self.stopped = reason  # before the read of `channel`: see _stream
        channel = self.channel
        if channel is not None:
            channel.close(ClientDisconnected(reason))

    async def send_parts(
        self, status: int, headers: list[tuple[bytes, bytes]], parts: list[bytes]
    ) -> None:
        """Send a response the worker had whole, its body in several parts."""
        await self._send_all(
            [
                {"type": "http.response.start", "status": status, "headers": headers},
                *({"type": "http.response.body", "body": p, "more_body": True} for p in parts),
                {"type": "http.response.body", "body": b""},
            ]
        )

    async def respond(self) -> None:
        """Send the chunks the worker streams through the channel, as they come."""
        channel = self.channel
        # The worker opens the channel before it resolves `first` with None.
        assert channel is not None
        body = self.body
        started = False
        try:
            while True:
                try:
                    chunks = await channel.get()
                except ClientDisconnected:
                    # The client left (see stop); the worker stops at its next chunk. One
                    # that went silent mid-body is still there: it is told why, if nothing
                    # was sent yet.
                    if body.state is TIMED_OUT and not started:
                        await self._send_all(_messages(*timed_out_response(body.timeout)))
                    return
                # Any other error is the application's, after the headers: it aborts the
                # response and propagates to the server (no final more_body=False goes out).
                if not chunks:
                    break
                if body.watcher is None and not channel.closed:
                    # More is to come: from now on a client that leaves must be noticed,
                    # the first batch's send() included (on HTTP/2 it may wait for flow
                    # control that a closed connection never grants). A short response,
                    # such as a framework's one-chunk iterator, has closed the channel by
                    # now and needs no watcher task.
                    body.watch()
                if len(chunks) > 1 and sum(map(len, chunks)) <= _JOIN_BELOW:
                    chunks = [b"".join(chunks)]
                if not await self._send_chunks(chunks, not started):
                    return
                started = True
            if self.sent_by_worker:
                return
            final: list[Message] = [{"type": "http.response.body", "body": b"", "more_body": False}]
            if not started:  # write(b"") and nothing else: the headers are due all the same
                final.insert(0, self._start_message())
            await self._send_all(final)
        finally:
            if body.watcher is not None:
                await body.stop_watching()

    def stopped_response(self) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """What to send instead of the app's whole response once the request stopped:
        408 if the client went silent mid-body (it is still there to be told), else None
        (the app's response goes out; to a client that left, send() fails quietly)."""
        if self.body.state is TIMED_OUT:
            return timed_out_response(self.body.timeout)
        return None

    def _start_message(self) -> Message:
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}

    async def _send_all(self, messages: list[Message]) -> bool:
        """Send ``messages``; False (and the worker released) if the client is gone."""
        send = self.send
        try:
            for message in messages:
                await send(message)
        except BaseException as exc:
            if self.send_failed(exc):
                return False
            raise
        return True

    async def _send_chunks(self, chunks: list[bytes], start: bool) -> bool:
        """:meth:`_send_all` for body chunks (the streaming hot loop), after the start."""
        send = self.send
        try:
            if start:
                await send(self._start_message())
            for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except BaseException as exc:
            if self.send_failed(exc):
                return False
            raise
        return True

    def send_failed(self, exc: BaseException) -> bool:
        """Release the worker after ``send()`` raised ``exc``. True: the client is gone
        (an OSError) and the response ends quietly; False: the caller re-raises ``exc``.

        The caller re-raises with a bare ``raise``: raised from here, the exception's
        traceback would hold this frame, and this frame the exception, a cycle.
        """
        if isinstance(exc, OSError):
            # ASGI: send() after a disconnect raises an OSError. The worker must stop rather
            # than wait forever for a consumer: its next put() raises.
            self.body.client_left()
            self.stop("send() failed: the client is gone")
            return True
        self.stop("send() failed")
        return False

    async def _send_file(self, message: Message) -> None:
        try:
            await self.send(self._start_message())
            await self.send(message)
        except OSError:
            self.body.client_left()

    async def wait_finished(self) -> None:
        """Return once the worker is done with the app (and its ``close()``)."""
        done = self._done = self.loop.create_future()
        if self.state is FINISHED:  # read after `_done` is set: see _finish
            return
        await done

    def abort(self) -> None:
        """The request task is gone (cancelled) or failed: release the worker."""
        self.stop("the request was cancelled")
        self.body.abort()


def _messages(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> list[Message]:
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


def _as_bytes(data: object) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, bytes):
        return bytes(data)
    raise TypeError(
        f"WSGI body chunks must be bytes, not {type(data).__name__} (PEP 3333: 'the "
        "application [...] must return an iterable yielding zero or more bytestrings')"
    )
