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

This module is the adapter, its per-process state and lifespan; the loop side of one
request is :mod:`._asgi_exchange`'s, the streamed response iterable :mod:`._asgi_stream`'s.
The specifications quoted beside the code are listed once, in :mod:`crossgate`.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any, Final, Literal

from crossgate._deprecated import renamed
from crossgate._errors import ClientDisconnected, LifespanError, ResponseTimeout
from crossgate._types import ASGIApp, Environ, ExcInfo, StartResponse
from crossgate.adapters._asgi_exchange import (
    PATHSEND,
    READ_SIZE,
    Head,
    Item,
    LoopRequest,
    PathSend,
)
from crossgate.adapters._asgi_stream import FileStream, Stream, abort, collect
from crossgate.adapters._bridge import (
    DEFAULT_BUDGET,
    BasePortal,
    LoopToThread,
    Task,
    get_portal,
    get_trio_portal,
    wait_tasks,
)
from crossgate.adapters._kind import refuse_the_wrong_kind
from crossgate.adapters.environ import build_scope
from crossgate.adapters.lifespan import (
    CANCEL_GRACE,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LifespanManager,
)

__all__ = ["DEFAULT_DISCONNECT_GRACE", "ASGIToWSGI", "Backend", "LifespanMode", "asgi_to_wsgi"]

logger = logging.getLogger(__name__)

LifespanMode = Literal["auto", "on", "off"]
#: The event loop library the app is written for (anyio's word for it).
Backend = Literal["asyncio", "trio"]

#: Seconds an app gets to finish after the server closed its response early, before it is
#: cancelled.
DEFAULT_DISCONNECT_GRACE: Final = 3.0
#: Request bodies up to this size (by Content-Length) are read before the app starts, so
#: its ``receive()`` answers without a thread hop.
PREFETCH_LIMIT: Final = 64 * 1024
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

# One lock for creating per-process state; re-made in a forked child, where a copy held by
# a thread of the parent would never be released.
_process_lock = threading.Lock()


def _reset_process_lock() -> None:
    global _process_lock
    _process_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_process_lock)


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

    def __init__(self, portal: BasePortal, shutdown_timeout: float | None) -> None:
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
        self.tasks: set[Task] = set()

    async def shutdown(self) -> None:
        """Wait for the app's remaining work, then run its lifespan shutdown (on the loop)."""
        if self.closed:
            return
        self.closed = True
        pending = {task for task in self.tasks if not task.done()}
        if pending:
            pending = await wait_tasks(pending, self.shutdown_timeout)
            if pending:
                logger.warning(
                    "cancelling %d ASGI request task(s) still running after %s s",
                    len(pending),
                    self.shutdown_timeout,
                )
                for task in pending:
                    task.cancel()
                await wait_tasks(pending, CANCEL_GRACE)
        if self.manager is not None:
            await self.manager.shutdown()


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
        logger.debug("reading wsgi.input failed: %r", exc)
        return b"", False


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


class ASGIToWSGI:
    """A WSGI application running an ASGI application on the per-process portal loop.

    :meth:`close` (and interpreter exit) waits for the app's background work and runs its
    shutdown.

    Args:
        app: The ASGI application.
        lifespan: ``"auto"`` runs the app's startup once per process before its first
            request (a failed startup answers every request 500), ``"on"`` makes a missing
            or failed lifespan an error raised to the server, ``"off"`` never sends
            lifespan events.
        startup_timeout: Seconds the app's lifespan startup may take.
        shutdown_timeout: Seconds the app's lifespan shutdown may take, and its request
            tasks still running at close.
        response_timeout: Seconds until the response starts, after which the server gets
            504 Gateway Timeout (default: no limit).
        disconnect_grace: Seconds the app may run on after the server closed its response
            early, before it is cancelled.
        budget: Bytes of the response queued for the server per request, and the largest
            ``wsgi.input`` read of a body of known length (one ``http.request`` message;
            reads are never smaller than 64 KiB).
        backend: The event loop library the app is written for: ``"asyncio"`` (the
            default; uvloop when installed, unless ``CROSSGATE_LOOP=asyncio``) or
            ``"trio"`` (Quart-Trio, apps written for trio; needs ``crossgate[trio]``).
            The app, its lifespan and its requests then run on a per-process trio portal
            instead of the asyncio one. It cannot be detected: nothing tells which library
            an app awaits until it runs, and by then it runs on the wrong one.
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
        backend: Backend = "asyncio",
    ) -> None:
        refuse_the_wrong_kind(app, "asgi")
        if backend not in ("asyncio", "trio"):
            raise ValueError(f"backend must be 'asyncio' or 'trio', not {backend!r}")
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
        self.backend: Backend = backend
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
                portal = get_trio_portal() if self.backend == "trio" else get_portal()
                process = self._process = _Process(portal, self.shutdown_timeout)
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
                logger.error("%s", exc)
            except Exception as exc:
                process.failure = LifespanError(f"ASGI lifespan startup failed: {exc!r}")
                process.failure.__cause__ = exc
                logger.error("ASGI lifespan startup failed", exc_info=exc)
            else:
                if manager.supported:
                    process.manager = manager
                elif self.lifespan == "on":
                    process.failure = LifespanError(
                        "ASGI app does not support the lifespan protocol (lifespan='on')"
                    )
                    process.failure.__cause__ = manager.error
        # The hook bounds itself (requests still running, then the lifespan shutdown,
        # shutdown_timeout each, and a grace for what is cancelled): under the portal's
        # default bound it could time out before the shutdown ran.
        timeout = self.shutdown_timeout
        portal.on_close(
            process.shutdown, timeout=None if timeout is None else 2 * (timeout + CANCEL_GRACE)
        )
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
        scope = build_scope(environ, extensions={PATHSEND: {}}, state=process.state)
        channel: LoopToThread[Item] = LoopToThread(portal.loop, self.budget)
        exchange = LoopRequest(self.app, scope, channel, process.tasks, self.disconnect_grace)

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
            abort(exchange, portal, 0.0, error)
            logger.error("%s (%s %s)", error, scope["method"], scope["path"])
            start_response("504 Gateway Timeout", list(_TIMEOUT_HEADERS))
            return [_TIMEOUT_BODY]
        except Exception as exc:
            return self._failed(exc, environ, start_response, exchange.input_lost)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit in the server thread
            abort(exchange, portal, 0.0, ClientDisconnected(f"server interrupted: {exc!r}"))
            raise

        head = batch[0]
        assert type(head) is Head
        first = head.body
        try:
            if isinstance(first, PathSend):
                return self._send_file(first.path, head, environ, start_response)
            if head.final:
                start_response(head.status, head.headers)
                return [first] if first else []
            chunks, done = collect(batch, 1, first)
            start_response(head.status, head.headers)
        except BaseException:
            abort(exchange, portal, 0.0, ClientDisconnected("start_response() failed"))
            raise
        if done:
            return chunks
        return Stream(exchange, portal, self.disconnect_grace, chunks)

    def _send_file(
        self, path: str, head: Head, environ: Environ, start_response: StartResponse
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
        return FileStream(file, READ_SIZE)

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
            logger.info("ASGI app failed on a truncated request (%s %s): %r", method, path, exc)
        else:
            logger.error(
                "ASGI app failed before starting its response (%s %s)",
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
        logger.error("answering 500, the app's lifespan startup failed: %s", failure)
        start_response("500 Internal Server Error", list(_ERROR_HEADERS), _exc_info(failure))
        return [_ERROR_BODY]

    def __repr__(self) -> str:
        backend = "" if self.backend == "asyncio" else f" backend={self.backend}"
        return f"<ASGIToWSGI {self.app!r} lifespan={self.lifespan}{backend}>"


#: ``asgi_to_wsgi(app, **options)``, the functional spelling: the class itself, so that its
#: options are declared (and typed) once.
asgi_to_wsgi = ASGIToWSGI


#: Names before the WSGI/ASGI capitalisation of 0.1, kept for one release.
_RENAMED: Final = {
    "AsgiToWsgi": "ASGIToWSGI",
}


def __getattr__(name: str) -> Any:
    return renamed(__name__, _RENAMED, globals())(name)
