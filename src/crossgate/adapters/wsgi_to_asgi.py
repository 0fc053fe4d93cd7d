"""Run a PEP 3333 (WSGI) application on any ASGI 3 server.

One request is one job in a bounded worker pool: the job calls the application, iterates its
body and calls ``close()``, all on the same worker thread. A list or tuple body crosses to
the loop whole, through the request's first-delivery future (one hop: start and body go
out together). Any other iterable streams through a byte-budgeted
:class:`~crossgate.adapters._bridge.ThreadToLoop` channel, opened with its first chunk and
drained by the request coroutine, in batches, the worker blocking once the budget is in
flight. A stream that outlives its first batch gets a watcher for ``http.disconnect``; a
disconnect, or a ``send()`` that raises, stops the request, so the worker's next put raises
and the iterable is closed.
``wsgi.input`` pulls from ``receive()`` on demand, sharing it with the watcher.
Translation (scope -> environ, status and header checks) is ``environ.py``'s.

Specifications quoted beside the code:

* PEP 3333: https://peps.python.org/pep-3333/
* ASGI HTTP: https://asgi.readthedocs.io/en/latest/specs/www.html
* ASGI lifespan: https://asgi.readthedocs.io/en/latest/specs/lifespan.html
* ASGI extensions: https://asgi.readthedocs.io/en/latest/extensions.html
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Final

from crossgate._errors import (
    ClientDisconnected,
    InvalidResponse,
    RequestBodyTooLarge,
)
from crossgate._types import Environ, Message, OptExcInfo, Receive, Send, WriteCallable, WSGIApp
from crossgate.adapters._bridge import (
    DEFAULT_BUDGET,
    DEFAULT_WORKERS,
    ThreadToLoop,
    WorkerPool,
    call_in_loop,
    post_threadsafe,
    resolve_threadsafe,
)
from crossgate.adapters.environ import build_environ, check_status, encode_response_headers

__all__ = ["WsgiToAsgi", "wsgi_to_asgi"]

logger = logging.getLogger("crossgate")

_ERROR_BODY: Final = b"Internal Server Error"
_TOO_LARGE_BODY: Final = b"Content Too Large"
_PLAIN: Final = b"text/plain; charset=utf-8"
#: Small batches of streamed chunks are joined into one ``http.response.body`` message.
_JOIN_BELOW: Final = 64 * 1024
_FILE_BLOCK: Final = 64 * 1024


def _plain_response(status: int, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(b"content-type", _PLAIN), (b"content-length", str(len(body)).encode("ascii"))]
    return status, headers, body


class _ErrorStream:
    """``wsgi.errors``: what the application writes is logged on the ``crossgate`` logger.

    PEP 3333: "wsgi.errors [...] An output stream (file-like object) to which error output
    can be written [...] a "text mode" file".
    """

    __slots__ = ()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors.write() takes str, not {type(text).__name__}")
        message = text.rstrip("\r\n")
        if message:
            logger.error("%s", message)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Records go to the logger at once: nothing to flush."""


_ERRORS: Final = _ErrorStream()


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


class _Input:
    """``wsgi.input``: a read-only file over the request body, pulled from ``receive()``.

    Each refill takes the message the loop read ahead, if one is there, without a trip to
    the loop; otherwise it is one trip that receives just enough messages for the call at
    hand (``read()`` to the end, ``read(n)`` until n bytes, ``readline()`` until a newline).
    Either way the loop then reads one message ahead, so that an app reading a long body
    in pieces waits for the loop only when it outpaces the client. Nothing is received
    beyond what was asked plus one message.
    The unread bytes are the tail of one received chunk from an offset, so a read copies
    each byte once: a slice of the chunk, or a join of the chunks it spans.
    """

    __slots__ = ("_data", "_eof", "_pos", "_request", "_started")

    def __init__(self, request: _Request, head: bytes = b"", eof: bool = False) -> None:
        self._request = request
        # The first body message, received on the loop before the app started: a body
        # that fits in it (most requests) is read with no trip to the loop at all.
        self._data = head
        self._pos = 0
        self._eof = eof
        self._started = False

    def _start(self) -> None:
        # The app has started on the message received before it ran: the loop may now
        # read the next one ahead (if there is one).
        self._started = True
        if not self._eof:
            self._request.ask_ahead()

    def _fill(self, want: int, line: bool) -> list[bytes]:
        """The next body chunks: at least one byte, or all that is left (``want`` < 0 and
        not ``line``), unless the body ends first. ``line``: a chunk holding a newline is
        enough.
        """
        request = self._request
        ahead = request.ahead
        if ahead is not None:
            # Read ahead by the loop; only the loop sets `ahead`, and only while it is None,
            # so taking it needs no lock.
            request.ahead = None
            body, more = ahead
            if not more:
                self._eof = True
                return [body] if body else []
            request.ask_ahead()  # the app has asked into this message: read the next one
            if body and (want >= 0 or line):
                return [body]  # the caller asks again if it needs more; read() needs all
            chunks = [body] if body else []
        else:
            chunks = []
        got, more = call_in_loop(request.loop, request.pull, want, line)
        if not more:
            self._eof = True
        chunks += got
        return chunks

    def _rest(self) -> bytes:
        """The unread bytes of the current chunk, which is then used up."""
        data, pos = self._data, self._pos
        self._data, self._pos = b"", 0
        return data[pos:] if pos else data

    def read(self, size: int | None = -1) -> bytes:
        if not self._started and size != 0:
            self._start()
        data, pos = self._data, self._pos
        available = len(data) - pos
        if size is None or size < 0:
            # One trip receives up to more_body=False, unless an error cuts it short: then
            # the next trip raises, and what came before stays readable.
            chunks = [self._rest()]
            try:
                while not self._eof:
                    chunks += self._fill(-1, False)
            except BaseException:
                self._keep(chunks)
                raise
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if available >= size:
            if not pos and available == size:
                self._data = b""
                return data
            self._pos = pos + size
            return data[pos : pos + size]
        parts: list[bytes | memoryview[int]] = [memoryview(data)[pos:]] if available else []
        got = available
        last = b""
        try:
            while got < size and not self._eof:
                for last in self._fill(size - got, False):
                    parts.append(last)
                    got += len(last)
        except BaseException:
            self._keep(parts)  # what came before the error is still the app's to read
            raise
        if got <= size:
            self._data, self._pos = b"", 0
            if len(parts) == 1 and type(parts[0]) is bytes:
                return parts[0]
            return b"".join(parts)
        # The last chunk runs past the read: its tail is the next read's start.
        cut = len(last) - (got - size)
        parts[-1] = memoryview(last)[:cut]
        self._data, self._pos = last, cut
        return b"".join(parts)

    def _keep(self, parts: Sequence[bytes | memoryview[int]]) -> None:
        self._data, self._pos = b"".join(parts), 0

    def readline(self, size: int | None = -1) -> bytes:
        if not self._started and size != 0:
            self._start()
        limit = -1 if size is None or size < 0 else size
        data, pos = self._data, self._pos
        end = len(data) if limit < 0 else min(len(data), pos + limit)
        newline = data.find(b"\n", pos, end)
        if newline < 0 and end == len(data) and (limit < 0 or end - pos < limit) and not self._eof:
            # The line goes on past this chunk: gather chunks up to one holding a newline
            # (or the limit, or the end), then cut the line from them.
            parts = [self._rest()]
            got = len(parts[0])
            try:
                while not self._eof and (limit < 0 or got < limit):
                    chunks = self._fill(limit - got if limit >= 0 else -1, True)
                    parts += chunks
                    got += sum(map(len, chunks))
                    if any(b"\n" in chunk for chunk in chunks):
                        break
            except BaseException:
                self._keep(parts)
                raise
            data, pos = b"".join(parts), 0
            end = len(data) if limit < 0 else min(len(data), limit)
            newline = data.find(b"\n", 0, end)
        if newline >= 0:
            end = newline + 1
        self._data, self._pos = data, end
        if not pos and end == len(data):
            self._data, self._pos = b"", 0
            return data
        return data[pos:end]

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """The server owns the stream; closing it is a no-op."""


# A response the worker had whole at once (status, headers, body): it reaches the loop
# through the request's first-delivery future, with no channel involved.
_Whole = tuple[int, list[tuple[bytes, bytes]], "bytes | list[bytes]"]


class _Request:
    """One HTTP request: the WSGI side (worker thread) and its ASGI side (loop)."""

    __slots__ = (
        "_done",
        "_lock",
        "_space",
        "adapter",
        "ahead",
        "channel",
        "disconnected",
        "finished",
        "first",
        "head_unread",
        "headers",
        "headers_sent",
        "loop",
        "more_body",
        "raised",
        "reader",
        "receive",
        "received",
        "remaining",
        "scope",
        "send",
        "sent_by_worker",
        "status",
        "stopped",
        "too_large",
        "watcher",
        "whole",
    )

    def __init__(
        self,
        adapter: WsgiToAsgi,
        loop: asyncio.AbstractEventLoop,
        scope: Message,
        receive: Receive,
        send: Send,
    ) -> None:
        self.adapter = adapter
        self.loop = loop
        self.scope = scope
        self.receive = receive
        self.send = send
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_sent = False
        self.remaining: int | None = None  # Content-Length still allowed on the wire
        # How the response reaches the loop, which awaits `first`: the worker resolves it
        # once, with the whole response (the usual case: one hand-off, no lock) or with
        # None, meaning "read `channel`" (a stream, or an end that went through it).
        self.first: asyncio.Future[_Whole | None] = loop.create_future()
        self.whole: _Whole | None = None  # a whole response, handed over as the job ends
        # A BaseException (SystemExit) from the app's close() after a whole response: the
        # loop sends the response, then raises it to the server.
        self.raised: BaseException | None = None
        # Opened by the worker when the response streams, and announced through `first`
        # at once (see _stream): a whole response, the usual case, needs none.
        self.channel: ThreadToLoop[bytes] | None = None
        # Set on the loop once nobody will take the response (the client left, send()
        # failed, the task was cancelled): the worker's next put raises it, so the app stops.
        self.stopped: BaseException | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.sent_by_worker = False  # pathsend / zerocopysend went out from the worker
        # Set by the worker once the app and its close() are done; the loop waits on _done
        # only when it gets there first (an early exit), so the usual request needs no
        # second wake-up of the loop.
        self.finished = False
        self._done: asyncio.Future[None] | None = None
        # Request body state, touched on the loop only.
        self.more_body = True
        self.disconnected = False
        self.too_large = False
        self.received = 0
        self._lock: asyncio.Lock | None = None
        # A body message received before the app asked for it, accounted for (its body and
        # whether more follows): set on the loop while None, taken by the worker or the loop.
        self.ahead: tuple[bytes, bool] | None = None
        self.reader: asyncio.Task[None] | None = None  # receiving a message ahead
        # The first body message (received before the app ran) has more after it and the
        # app has not asked for more yet: it counts as the one message read ahead.
        self.head_unread = False
        self._space: asyncio.Event | None = None

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
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                # As PEP 3333's example gateway does: "exc_info = None  # avoid dangling
                # circular ref" (frame -> traceback -> frame).
                exc_info = None
            # PEP 3333: "If exc_info is supplied, and no HTTP headers have been output yet,
            # start_response should replace the currently-stored HTTP response headers with
            # the newly-supplied ones, thus allowing the application to "change its mind"".
        elif self.status is not None:
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
        self.status = code
        self.headers = encoded
        self.remaining = remaining
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: queued for the loop at once (the loop sends it in order)."""
        if self.status is None:
            raise InvalidResponse("write() called before start_response()")
        if type(data) is not bytes:
            data = _as_bytes(data)
        # PEP 3333: headers go out "upon the application's first invocation of the write()
        # callable", even an empty one.
        self.headers_sent = True
        if data:
            self._emit(data)

    def _emit(self, chunk: bytes) -> bool:
        """Queue a non-empty chunk; True once the declared Content-Length is reached."""
        if self.status is None:
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
        self.headers_sent = True
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
            channel = self.channel = ThreadToLoop(self.loop, self.adapter.budget)
            # The loop sets `stopped` before it looks for a channel to close, and the
            # worker opens the channel before it looks at `stopped`: one of them sees the
            # other, so a stop is never missed (it may be applied twice, which is harmless).
            stopped = self.stopped
            if stopped is not None:
                channel.close(stopped)
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
        error: BaseException | None = None
        try:
            iterable = app(environ, self.start_response)
            try:
                if not self.headers_sent and type(iterable) in (list, tuple):
                    self._whole(iterable)  # type: ignore[arg-type]
                elif not self.headers_sent and type(iterable) is FileWrapper:
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
                        logger.exception("crossgate: the WSGI iterable's close() raised")
        except Exception as exc:
            self._failed(exc)
        except BaseException as exc:  # SystemExit and the like: the server's to handle
            error = exc
        # Finished before the channel ends: the loop, woken by the end, then finds the
        # work done and need not be woken a second time.
        self._finish()
        whole = self.whole
        if whole is not None:
            # Written before `first` resolves, so the loop sees it once it has `whole`.
            self.raised = error
            return functools.partial(resolve_threadsafe, self.first, whole)
        # A stream; or write(b"") alone, a file sent by the server, an error after the
        # headers: all end through the channel.
        self._stream().close(error, keep=True)
        return None

    def _finish(self) -> None:
        self.finished = True
        # Read after the write above; wait_finished() writes `_done` before it reads
        # `finished`: either the loop sees the job finished or this sees its future.
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
            if sum(map(len, parts)) <= self.adapter.budget:
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
        if not self.headers_sent:
            self._whole(())

    def _file(self, wrapper: FileWrapper) -> None:
        """Hand a file to the server when it can send it itself, else read it in blocks."""
        if self.status is None:
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
        self.headers_sent = True
        # Sent from here, so that close() (the finally in run) comes after the server took it.
        call_in_loop(self.loop, self._send_file, message)
        self.sent_by_worker = True

    def _failed(self, exc: Exception) -> None:
        if self.stopped is not None:  # stopped by the loop side: the client left, quietly
            logger.debug("crossgate: WSGI response stopped: %r", exc)
        elif self.headers_sent:
            # After the headers went out: abort the response, the server sees the error
            # once it has sent the chunks the app produced before it (PEP 3333 counts them
            # as sent; dropping them would turn an aborted response into a 500).
            self._stream().close(exc, keep=True)
        else:
            if isinstance(exc, ClientDisconnected) and self.disconnected:
                logger.info("crossgate: the client left while the WSGI app read the body")
            else:
                # Before the headers: a 500 replaces the response, the traceback is logged.
                logger.error("crossgate: the WSGI application raised", exc_info=exc)
            self.whole = _plain_response(500, _ERROR_BODY)

    # ------------------------------------------------------------------------ loop side

    async def pull(self, want: int, line: bool) -> tuple[list[bytes], bool]:
        """Receive body chunks for ``wsgi.input``: ``want`` bytes (-1: all), or up to a
        chunk holding a newline when ``line``; returns them and whether more may follow.
        """
        if self.head_unread:
            self._asked()
        chunks: list[bytes] = []
        got = 0
        while True:
            ahead = self.ahead
            body: bytes | None
            if ahead is not None:  # read ahead meanwhile: it comes first
                self.ahead = None
                self._asked()
                body = ahead[0]
            else:
                if chunks and (self.too_large or self.disconnected):
                    break  # what came before the error is the app's; the next pull raises
                if self.too_large:
                    raise self._too_large()
                if not self.more_body:
                    break
                if self.disconnected:
                    raise ClientDisconnected(
                        "the client disconnected before the request body ended"
                    )
                async with self._receiving():  # the watcher or the read-ahead may be in one
                    # Whoever held the lock may have changed the state: a message read
                    # ahead, the end of the body, or a disconnect, after which receive()
                    # may never return again.
                    if not self._may_receive():
                        continue
                    message = await self.receive()
                body = self._accept(message)
                if body is None:
                    # Too large or a disconnect (or another type of message): the top of
                    # the loop delivers what came before, or raises. ASGI: http.disconnect
                    # is "sent to the application if receive is called after a response
                    # has been sent or after the HTTP connection has been closed". Before
                    # more_body=False it means a truncated upload.
                    continue
            if body:
                chunks.append(body)
                got += len(body)
                if (want >= 0 and got >= want) or (line and b"\n" in body):
                    break
        self._read_ahead()
        return chunks, self.more_body

    def _accept(self, message: Message) -> bytes | None:
        """Account for a received message: its body (http.request) or None."""
        kind = message["type"]
        if kind == "http.request":
            body: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                self.more_body = False
            if body:
                self.received += len(body)
                limit = self.adapter.max_request_body
                if limit is not None and self.received > limit:
                    self.too_large = True
                    return None
            return body
        if kind == "http.disconnect":
            self._disconnect()
        return None

    def ask_ahead(self) -> None:
        """From the worker: the app has asked into the message held ahead (or the first
        one); the loop may read the next one ahead."""
        # Once the loop is closed (False) the request is over: nothing to read ahead for.
        post_threadsafe(self.loop, self._asked_ahead)

    def _asked_ahead(self) -> None:
        self._asked()
        self._read_ahead()

    def _asked(self) -> None:
        """The message held ahead is the app's now: the watcher may receive again."""
        self.head_unread = False
        if self._space is not None:
            self._space.set()

    def _may_receive(self) -> bool:
        """More of the body may come, and no message received is waiting for the app."""
        return (
            self.ahead is None and self.more_body and not self.disconnected and not self.too_large
        )

    def _receiving(self) -> asyncio.Lock:
        """The lock that keeps receive() to one caller at a time, made on first use."""
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        return lock

    def _read_ahead(self) -> None:
        """Receive the next body message before the app asks for it, if none is held."""
        if (
            self._may_receive()
            and not self.head_unread
            and (self.reader is None or self.reader.done())
        ):
            self.reader = self.loop.create_task(self._receive_ahead())

    async def _receive_ahead(self) -> None:
        async with self._receiving():
            if not self._may_receive():
                return
            message = await self.receive()
        self._hold(message)

    def _hold(self, message: Message) -> None:
        """Account for a message received before the app asked: its body is held ahead."""
        body = self._accept(message)
        if body is not None:
            self.ahead = (body, self.more_body)

    def _too_large(self) -> RequestBodyTooLarge:
        return RequestBodyTooLarge(
            f"the request body is larger than max_request_body={self.adapter.max_request_body}"
        )

    def _disconnect(self) -> None:
        self.disconnected = True
        # Nobody is left to answer: the worker's next put() of a chunk raises, so a
        # generator stops and its close() runs.
        self._stop(ClientDisconnected("the client disconnected"))

    def _stop(self, exc: BaseException) -> None:
        """Nobody will take the response: the worker's next put raises ``exc``."""
        self.stopped = exc  # before the read of `channel`: see _stream
        channel = self.channel
        if channel is not None:
            channel.close(exc)

    async def _watch(self) -> None:
        """Listen for http.disconnect while the response streams.

        It shares ``receive()`` with ``wsgi.input`` under one lock and holds at most one body
        message ahead for the reader, so the body is never read ahead by more than a message.
        """
        lock = self._receiving()
        while not self.disconnected:
            if self._holds_unasked():
                # The reader has not taken the message held ahead yet: receiving again would
                # read ahead a second message. (After the final body message only a
                # disconnect can come, so that one does not stop the watch.)
                space = self._space
                if space is None:
                    space = self._space = asyncio.Event()
                space.clear()
                await space.wait()
                continue
            async with lock:
                if self._holds_unasked() or self.disconnected:
                    continue
                message = await self.receive()
            if self.more_body or message["type"] != "http.request":
                self._hold(message)

    def _holds_unasked(self) -> bool:
        # A method, not an inline test: the state changes while the watcher awaits.
        if self.too_large:
            # The body over the limit is refused, not drained: receiving on would read
            # it all. A client that leaves is still noticed, by a send() that fails.
            return True
        ahead = self.ahead
        if ahead is None:
            return self.head_unread
        return ahead[1]

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
        started = False
        while True:
            if started and self.watcher is None and not channel.closed and not self.disconnected:
                # The response outlives its first batch: from now on a client that leaves
                # must be noticed. (A short response, such as a framework's one-chunk
                # iterator, has closed the channel by now and needs no watcher task.)
                self.watcher = self.loop.create_task(self._watch())
            try:
                chunks = await channel.get()
            except ClientDisconnected:
                return  # the client left; the worker stops at its next chunk
            # Any other error is the application's, after the headers: it aborts the
            # response and propagates to the server (no final more_body=False goes out).
            if not chunks:
                break
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

    def _start_message(self) -> Message:
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}

    async def _send_all(self, messages: list[Message]) -> bool:
        """Send ``messages``; False (and the worker released) if the client is gone."""
        send = self.send
        try:
            for message in messages:
                await send(message)
        except BaseException as exc:
            return self._send_failed(exc)
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
            return self._send_failed(exc)
        return True

    def _send_failed(self, exc: BaseException) -> bool:
        """Release the worker after ``send()`` raised ``exc``: False for a client gone
        (an OSError), else re-raise."""
        if isinstance(exc, OSError):
            # ASGI: send() after a disconnect raises an OSError. The worker must stop rather
            # than wait forever for a consumer: its next put() raises.
            self.disconnected = True
            self._stop(ClientDisconnected("send() failed: the client is gone"))
            return False
        self._stop(ClientDisconnected("send() failed"))
        raise exc

    async def _send_file(self, message: Message) -> None:
        try:
            await self.send(self._start_message())
            await self.send(message)
        except OSError:
            self.disconnected = True

    async def wait_finished(self) -> None:
        """Return once the worker is done with the app (and its ``close()``)."""
        done = self._done = self.loop.create_future()
        if self.finished:  # read after `_done` is set: see _finish
            return
        await done

    def abort(self) -> None:
        """The request task is gone (cancelled) or failed: release the worker."""
        self._stop(ClientDisconnected("the request was cancelled"))
        if self.watcher is not None:
            self.watcher.cancel()
        self.stop_reading()

    def stop_reading(self) -> None:
        """The app is done: a message still being received ahead is nobody's."""
        reader = self.reader
        if reader is not None:
            reader.cancel()

    async def stop_watching(self) -> None:
        watcher = self.watcher
        if watcher is not None and not watcher.done():
            watcher.cancel()
            try:
                await watcher
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we are cancelled too, not only the watcher


def _as_bytes(data: object) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, bytes):
        return bytes(data)
    raise TypeError(
        f"WSGI body chunks must be bytes, not {type(data).__name__} (PEP 3333: 'the "
        "application [...] must return an iterable yielding zero or more bytestrings')"
    )


class WsgiToAsgi:
    """An ASGI 3 application that runs the WSGI application ``app``.

    ``workers`` bounds the threads (one pool per adapter, created on first request);
    ``budget`` bounds the response bytes in flight per request; ``max_request_body`` (bytes)
    answers 413 to a larger declared body and makes ``wsgi.input`` raise
    :class:`RequestBodyTooLarge` when a streamed body crosses it. ``on_startup`` and
    ``on_shutdown`` are sync callables run in the pool on lifespan events; shutdown waits up
    to ``shutdown_timeout`` seconds for requests in flight before stopping the pool.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        workers: int = DEFAULT_WORKERS,
        on_startup: Iterable[Callable[[], object]] = (),
        on_shutdown: Iterable[Callable[[], object]] = (),
        max_request_body: int | None = None,
        budget: int = DEFAULT_BUDGET,
        multiprocess: bool = True,
        shutdown_timeout: float = 30.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers!r}")
        if budget < 1:
            raise ValueError(f"budget must be at least 1 byte, not {budget!r}")
        if max_request_body is not None and max_request_body < 0:
            raise ValueError(f"max_request_body must be None or >= 0, not {max_request_body!r}")
        self.app = app
        self.workers = workers
        self.on_startup = tuple(on_startup)
        self.on_shutdown = tuple(on_shutdown)
        self.max_request_body = max_request_body
        self.budget = budget
        self.multiprocess = multiprocess
        self.shutdown_timeout = shutdown_timeout
        self._pool: WorkerPool | None = None
        self._environ_extra: dict[str, Any] = {
            "wsgi.errors": _ERRORS,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            # ASGI (WSGI compatibility): the body ends where the server says it does.
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    @property
    def pool(self) -> WorkerPool:
        """The adapter's worker pool, created on first use (again after a shutdown)."""
        pool = self._pool
        if pool is None:
            pool = self._pool = WorkerPool(self.workers, name="crossgate-wsgi")
        return pool

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        # The http path is written out here rather than in a method of its own: one
        # coroutine less on the path every request takes.
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        limit = self.max_request_body
        if limit is not None and _declared_length(scope) > limit:
            code, fields, text = _plain_response(413, _TOO_LARGE_BODY)
            await send({"type": "http.response.start", "status": code, "headers": fields})
            await send({"type": "http.response.body", "body": text})
            return
        # The first request message is received here, before the app runs (the one message
        # of read-ahead the body allows): a GET's empty body, or a small POST's whole one,
        # then costs the worker no trip back to the loop.
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            return  # the client left before its request was handled: nobody to answer
        loop = asyncio.get_running_loop()
        request = _Request(self, loop, scope, receive, send)
        head = b""
        if kind == "http.request":
            head = message.get("body", b"")
            request.more_body = request.head_unread = bool(message.get("more_body", False))
            request.received = len(head)
            if limit is not None and len(head) > limit:
                request.too_large = True
                head = b""
        environ = build_environ(scope, self._environ_extra)
        environ["wsgi.input"] = _Input(
            request, head, not request.more_body and not request.too_large
        )
        environ["asgi.scope"] = scope
        # The job runs on a worker, which hands the response back through request.first
        # (and request.channel for a stream). pool.start sets the origin loop and copies
        # the context; nothing else is delivered back.
        (self._pool or self.pool).start(request.run, self.app, environ, loop=loop)
        try:
            whole = await request.first
            if whole is None:
                try:
                    await request.respond()
                finally:
                    if request.watcher is not None:
                        await request.stop_watching()
            else:
                status, headers, body = whole
                if isinstance(body, bytes):
                    # The usual response, whole and in one piece: sent from here.
                    try:
                        await send(
                            {"type": "http.response.start", "status": status, "headers": headers}
                        )
                        await send({"type": "http.response.body", "body": body})
                    except BaseException as exc:
                        request._send_failed(exc)
                else:
                    await request.send_parts(status, headers, body)
            # True is final; on False, wait_finished() registers and then reads it again.
            if not request.finished:
                await request.wait_finished()
            if request.reader is not None:
                request.stop_reading()
            if request.raised is not None:
                # After the whole response, as a streamed response's error comes after its
                # chunks: SystemExit and the like are the server's to handle.
                raise request.raised
        except BaseException:
            request.abort()  # a job still queued is skipped; a running one stops at its put
            raise

    async def _other(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._refuse_websocket(receive, send)
        else:
            # ASGI: "Applications should raise an exception when they do not understand
            # the scope type" (https://asgi.readthedocs.io/en/latest/specs/main.html).
            raise ValueError(
                f"crossgate.WsgiToAsgi cannot handle ASGI scope type {kind!r}: a WSGI "
                "application serves only 'http' (plus 'lifespan' hooks)"
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "lifespan.startup":
                error = await self._run_hooks(self.on_startup)
                if error is not None:
                    # Lifespan: "lifespan.startup.failed [...] message (Unicode string) --
                    # Optional; if missing defaults to ''."
                    await send({"type": "lifespan.startup.failed", "message": error})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                error = await self._shutdown()
                if error is not None:
                    await send({"type": "lifespan.shutdown.failed", "message": error})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _run_hooks(self, hooks: Sequence[Callable[[], object]]) -> str | None:
        if not hooks:
            return None

        def run_all() -> None:
            for hook in hooks:
                hook()

        try:
            await self.pool.run(run_all)
        except Exception as exc:
            logger.exception("crossgate: a lifespan hook raised")
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _shutdown(self) -> str | None:
        pool = self._pool
        if pool is not None and not await pool.drain(self.shutdown_timeout):
            logger.warning(
                "crossgate: WSGI requests still running after %s s at shutdown",
                self.shutdown_timeout,
            )
        error = await self._run_hooks(self.on_shutdown)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        return error

    async def _refuse_websocket(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] == "websocket.connect":
            # ASGI: websocket.close "If this is sent before the socket is accepted, the server
            # must close the connection with a HTTP 403 error code (Forbidden)".
            await send({"type": "websocket.close", "code": 1000, "reason": ""})


def _declared_length(scope: Message) -> int:
    """The request's Content-Length (-1 when absent or unreadable)."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length" or name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return -1


#: ``wsgi_to_asgi(app, **options)``, the functional spelling: the class itself, so that its
#: options are declared (and typed) once.
wsgi_to_asgi = WsgiToAsgi
