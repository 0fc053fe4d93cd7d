"""Run a PEP 3333 (WSGI) application on any ASGI 3 server.

One request is one job in a bounded worker pool: the job calls the application, iterates its
body and calls ``close()``, all on the same worker thread. A list or tuple body crosses to
the loop whole, through the request's first-delivery future (one hop: start and body go
out together). Any other iterable streams through a byte-budgeted
:class:`~crossgate.adapters._bridge.ThreadToLoop` channel, opened with its first chunk and
drained by the request coroutine, in batches; once the budget is in flight the worker's
next chunk waits for the loop to take them. A stream that outlives its first batch gets a
watcher for ``http.disconnect``; a disconnect, or a ``send()`` that raises, stops the
request, so the worker's next put raises and the iterable is closed.
``wsgi.input`` pulls from ``receive()`` on demand, sharing it with the watcher.

This module is the adapter and its other scopes (lifespan, websocket). The parts of one
request import in a line and are made here, each given what it needs: the body's loop
side (:mod:`._wsgi_body`), the file over it that the app reads (``wsgi.input``,
:mod:`._wsgi_input`), and the app's run and its response (:mod:`._wsgi_call`), which the
body tells when the client leaves; translation (scope -> environ, status and header
checks) is :mod:`.environ`'s.
The specifications quoted beside the code are listed once, in :mod:`crossgate`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final, TypeVar

from crossgate._deprecated import renamed
from crossgate._types import Message, Receive, Send, WSGIApp
from crossgate.adapters._bridge import (
    DEFAULT_BUDGET,
    DEFAULT_WORKERS,
    WorkerPool,
    asyncio_loop,
    thread_cap,
    timeout,
    trio_loop,
)
from crossgate.adapters._kind import refuse_the_wrong_kind
from crossgate.adapters._wsgi_body import BodyReceiver
from crossgate.adapters._wsgi_call import (
    FINISHED,
    FileWrapper,
    WSGIJob,
    plain_response,
    timed_out_response,
)
from crossgate.adapters._wsgi_input import InputStream
from crossgate.adapters.environ import build_environ
from crossgate.adapters.lifespan import DEFAULT_STARTUP_TIMEOUT, Hook, Hooks, serve_lifespan

__all__ = ["WSGIToASGI", "wsgi_to_asgi"]

logger = logging.getLogger(__name__)

_TOO_LARGE_BODY: Final = b"Content Too Large"
#: Methods whose requests have no body as a rule: their first message is received without
#: the body timeout (a GET's comes at once), to keep the timer off the common path.
_BODILESS: Final = frozenset(("GET", "HEAD"))
#: Request bodies up to this size are received whole on the loop before the app runs
#: (``body_prefetch``).
PREFETCH_LIMIT: Final = 64 * 1024
#: The most bytes the process holds for bodies received that way, all requests together;
#: past it, bodies stream as they come (read on the app's thread).
PREFETCH_CAP: Final = 64 * 1024 * 1024
#: Seconds a request body may go without a byte before the client is dropped (408).
DEFAULT_BODY_TIMEOUT: Final = 60.0


class _Reservations:
    """Bytes held for bodies received before their app runs, across the process."""

    __slots__ = ("_lock", "cap", "held")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.held = 0
        self._lock = threading.Lock()  # one loop per thread, but loops may share a process

    def take(self, size: int) -> bool:
        with self._lock:
            if self.held + size > self.cap:
                return False
            self.held += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.held -= size


_PREFETCHED: Final = _Reservations(PREFETCH_CAP)


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

_T = TypeVar("_T")


class WSGIToASGI:
    """An ASGI 3 application that runs the WSGI application ``app``.

    Each request is one job in the adapter's worker pool (created on first use): the app
    is called, its body iterated and closed on one worker thread. A request whose thread
    waits on the network (for body bytes, or for room in the response budget), or whose
    response streams on past its first chunk, does not count against ``workers``.

    Lifespan: the hooks run as ``with_lifespan``'s do (sync or async, a hook taking one
    argument given the lifespan state dict, the first failure reported to the server),
    sync ones in the pool; at shutdown the requests in flight are waited for, then the
    shutdown hooks run, then the pool stops.

    Args:
        app: the WSGI application.
        workers: the most requests at work in the app at once.
        max_threads: the most threads, requests waiting on the network included
            (default 400, at least ``workers``); past it, requests queue.
        on_startup: one callable or several, sync or async, taking nothing or the state
            dict; run in order on ``lifespan.startup``.
        on_shutdown: as ``on_startup``, on ``lifespan.shutdown``.
        max_request_body: bytes: a larger declared body is answered 413 without the app,
            and ``wsgi.input`` raises :class:`RequestBodyTooLarge` when a streamed body
            crosses it (None: no limit).
        budget: the most response bytes in flight per request.
        body_prefetch: request bodies up to this size are received whole before the app
            runs, so that a slow client costs no thread (0: never).
        body_timeout: seconds a request body may go without a byte before the client is
            dropped (408 if no response went out yet); None: no bound.
        multiprocess: the environ's ``wsgi.multiprocess``.
        shutdown_timeout: seconds shutdown waits for requests in flight, and then seconds
            the shutdown hooks together may take.
        startup_timeout: seconds the startup hooks together may take (None: no bound).

    Raises:
        TypeError: ``app`` is an ASGI app, or a hook is not callable or takes more than
            one argument.
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        workers: int = DEFAULT_WORKERS,
        max_threads: int | None = None,
        on_startup: Hook | Iterable[Hook] = (),
        on_shutdown: Hook | Iterable[Hook] = (),
        max_request_body: int | None = None,
        budget: int = DEFAULT_BUDGET,
        body_prefetch: int = PREFETCH_LIMIT,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
        multiprocess: bool = True,
        shutdown_timeout: float = 30.0,
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
    ) -> None:
        refuse_the_wrong_kind(app, "wsgi")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers!r}")
        if budget < 1:
            raise ValueError(f"budget must be at least 1 byte, not {budget!r}")
        if body_prefetch < 0:
            raise ValueError(f"body_prefetch must be >= 0 bytes, not {body_prefetch!r}")
        if body_timeout is not None and not body_timeout > 0:
            raise ValueError(f"body_timeout must be None or > 0 seconds, not {body_timeout!r}")
        if max_request_body is not None and max_request_body < 0:
            raise ValueError(f"max_request_body must be None or >= 0, not {max_request_body!r}")
        self.app = app
        self.workers = workers
        self.max_threads = thread_cap(workers, max_threads)
        # Sync hooks run in the pool, on the threads that run the app.
        self.hooks = Hooks(
            on_startup,
            on_shutdown,
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
            run_sync=self._in_pool,
        )
        self.on_startup = self.hooks.on_startup
        self.on_shutdown = self.hooks.on_shutdown
        self.max_request_body = max_request_body
        self.budget = budget
        self.body_prefetch = body_prefetch
        self.body_timeout = body_timeout
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
            pool = self._pool = WorkerPool(
                self.workers, max_threads=self.max_threads, name="crossgate-wsgi"
            )
        return pool

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        # The http path is written out here rather than in a method of its own: one
        # coroutine less on the path every request takes.
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        limit = self.max_request_body
        if limit is not None and _declared_length(scope) > limit:
            code, fields, text = plain_response(413, _TOO_LARGE_BODY)
            await send({"type": "http.response.start", "status": code, "headers": fields})
            await send({"type": "http.response.body", "body": text})
            return
        # The first request message is received here, before the app runs: a GET's empty
        # body then costs the worker no trip back to the loop. A body that comes in more
        # messages is received whole here when it is small (see _prefetch): a client that
        # sends it slowly costs the loop a little memory, and no thread.
        held = 0
        if scope["method"] in _BODILESS or self.body_timeout is None:
            message = await receive()
        else:
            first = await self._receive_within(receive, send)
            if first is None:
                return  # timed out (answered 408)
            message = first
        if message.get("more_body", False):
            prefetched, held = await self._prefetch(scope, message, receive, send)
            if prefetched is None:
                return
            message = prefetched
        elif message["type"] == "http.disconnect":
            return  # the client left before its request was handled: nobody to answer
        # The request's loop, through the bridge's backend: asyncio's (a C call), else trio's.
        loop = asyncio_loop() or trio_loop()
        receiver = BodyReceiver(loop, receive, message, self.max_request_body, self.body_timeout)
        request = WSGIJob(loop, scope, send, receiver, self.budget)
        environ = build_environ(scope, self._environ_extra)
        environ["wsgi.input"] = InputStream(receiver)
        environ["asgi.scope"] = scope
        # The job runs on a worker, which hands the response back through request.first
        # (and request.channel for a stream). pool.start sets the origin loop and copies
        # the context; nothing else is delivered back.
        (self._pool or self.pool).start(request.run, self.app, environ, loop=loop)
        try:
            whole = await request.first
            if whole is None:
                await request.respond()
            else:
                status, headers, body = whole
                if request.stopped is not None:
                    status, headers, body = request.stopped_response() or whole
                if isinstance(body, bytes):
                    # The usual response, whole and in one piece: sent from here.
                    try:
                        await send(
                            {"type": "http.response.start", "status": status, "headers": headers}
                        )
                        await send({"type": "http.response.body", "body": body})
                    except BaseException as exc:
                        if not request.send_failed(exc):
                            raise
                else:
                    await request.send_parts(status, headers, body)
            # FINISHED is final; short of it, wait_finished() registers and then reads again.
            if request.state is not FINISHED:
                await request.wait_finished()
            error = request.raised
            if error is not None:
                # After the whole response (the 500 the app's error left, or a response
                # whose close() raised SystemExit), as a streamed response's error comes
                # after its chunks. Taken back from the request first, and no local keeps
                # it: its traceback will hold this frame (see WSGIJob.raised).
                request.raised = None
                try:
                    raise error
                finally:
                    del error
        except BaseException:
            request.abort()  # a job still queued is skipped; a running one stops at its put
            raise
        finally:
            # Before an error leaves: the server sees it once the request is cleaned up.
            receiver.finish()
            if held:
                _PREFETCHED.release(held)

    async def _receive_within(self, receive: Receive, send: Send) -> Message | None:
        """The next request message, or None (408 sent) if none came within
        ``body_timeout`` seconds."""
        try:
            async with timeout(self.body_timeout):
                return await receive()
        except TimeoutError:
            await _send_plain(send, *timed_out_response(self.body_timeout))
            return None

    async def _prefetch(
        self, scope: Message, first: Message, receive: Receive, send: Send
    ) -> tuple[Message | None, int]:
        """The request's first message, with the rest of a small body received into it
        before the app runs; and the bytes held for it against the process-wide cap.

        Small: a Content-Length of at most ``body_prefetch``, or no Content-Length (then the
        first ``body_prefetch`` bytes, the rest streaming). A larger body, or one that would
        take the process past PREFETCH_CAP, streams as it comes, the app reading it on its
        thread. None: the client left, or sent nothing for ``body_timeout`` (408 sent).
        """
        limit = self.body_prefetch
        declared = _declared_length(scope)
        if declared > limit or not limit:
            return first, 0
        held = declared if declared >= 0 else limit
        if not _PREFETCHED.take(held):
            return first, 0
        chunks = [first.get("body", b"")]
        size = len(chunks[0])
        message = first
        try:
            while message.get("more_body", False) and size <= limit:
                if self.body_timeout is None:
                    message = await receive()
                else:
                    next_message = await self._receive_within(receive, send)
                    if next_message is None:
                        _PREFETCHED.release(held)
                        return None, 0
                    message = next_message
                if message["type"] != "http.request":
                    # http.disconnect: the client left before its request was handled.
                    _PREFETCHED.release(held)
                    return None, 0
                body = message.get("body", b"")
                if body:
                    chunks.append(body)
                    size += len(body)
        except BaseException:
            _PREFETCHED.release(held)
            raise
        more = bool(message.get("more_body", False))
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": more}
        return whole, held

    async def _other(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # Lifespan spec: "state [...] Optional; if missing the server does not support
            # this feature": the hooks that take it get one all the same.
            state: dict[str, Any] | None = scope.get("state")
            await serve_lifespan(receive, send, self._running({} if state is None else state))
        elif kind == "websocket":
            await self._refuse_websocket(receive, send)
        else:
            # ASGI: "Applications should raise an exception when they do not understand
            # the scope type" (https://asgi.readthedocs.io/en/latest/specs/main.html).
            raise ValueError(
                f"crossgate.WSGIToASGI cannot handle ASGI scope type {kind!r}: a WSGI "
                "application serves only 'http' (plus 'lifespan' hooks)"
            )

    @contextlib.asynccontextmanager
    async def _running(self, state: dict[str, Any]) -> AsyncIterator[None]:
        """The adapter's lifespan: the startup hooks, then, at the block's end, the
        requests in flight drained, the shutdown hooks, and the pool stopped."""
        await self.hooks.startup(state)
        yield
        pool = self._pool
        if pool is not None and not await pool.drain(self.shutdown_timeout):
            logger.warning(
                "WSGI requests still running after %s s at shutdown",
                self.shutdown_timeout,
            )
        try:
            await self.hooks.shutdown(state)
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown()

    async def _in_pool(self, fn: Callable[..., _T], /, *args: Any) -> _T:
        return await self.pool.run(fn, *args)

    async def _refuse_websocket(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] == "websocket.connect":
            # ASGI: websocket.close "If this is sent before the socket is accepted, the server
            # must close the connection with a HTTP 403 error code (Forbidden)".
            await send({"type": "websocket.close", "code": 1000, "reason": ""})


async def _send_plain(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except OSError:
        pass  # ASGI: send() after a disconnect raises an OSError; nobody is left to tell


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
wsgi_to_asgi = WSGIToASGI


#: Names before the WSGI/ASGI capitalisation of 0.1, kept for one release.
_RENAMED: Final = {
    "WsgiToAsgi": "WSGIToASGI",
}


def __getattr__(name: str) -> Any:
    return renamed(__name__, _RENAMED, globals())(name)
