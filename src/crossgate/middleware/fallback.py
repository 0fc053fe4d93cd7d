"""Serve each request from a primary app, and from a legacy app where the primary refuses it.

``fallback(fastapi_app, flask_app)`` is an ASGI app; ``fallback_wsgi(...)`` the same for
WSGI servers. It is the shape of a migration route by route: the endpoints already moved
answer from the new app, everything else from the old one, under the same URLs, with no
proxy in front. Rules shared by both:

* Each request goes to ``primary`` first. If its answer starts with a status in
  ``statuses`` (404 by default; add 405 when the two apps share paths under different
  methods), the answer is dropped unsent and the same request goes to ``legacy``, with the
  request body ``primary`` had read replayed first and the rest read live. Any other answer
  is ``primary``'s, streamed through as it comes.
* The body ``primary`` reads before it answers is kept for the replay up to ``max_replay``
  bytes. Past that, no replay is possible: ``primary``'s refusal goes to the client as it
  is (logged once per app at INFO). A body ``primary`` does not read costs no memory: a
  router that answers 404 before reading leaves it to ``legacy``, whatever its size.
* A client that leaves while ``primary`` decides is not handed to ``legacy``.
* Websockets: ``primary`` refuses by closing before it accepts, or by a denial response
  (``websocket.http.response.start``) with a status in ``statuses`` or 403; ``legacy`` then
  gets the handshake. Its refusal is final.
* Both apps see the request as the server sent it: ``root_path``, ``path``, ``SCRIPT_NAME``
  and ``PATH_INFO`` are unchanged, so ``url_for`` and ``reverse`` build the URLs they
  built before. Each app gets its own copy of the scope (or environ), so what ``primary``
  wrote into it (Starlette's router, werkzeug's request) never reaches ``legacy``.
* Lifespan reaches both apps, ``primary`` first, each through a :class:`LifespanManager`,
  with its own state; shutdown runs in reverse order (as ``dispatch`` does).
* ASGI: each request runs in one ``thread_sensitive()`` context, both apps included (as
  ``dispatch`` has it), so its thread-sensitive ``sync_to_async`` calls share a thread;
  ``thread_sensitive=False`` saves that context's cost where no such calls are made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Final

from asgiref.compatibility import guarantee_single_callable

from crossgate._deprecated import renamed
from crossgate._types import ASGIApp, Environ, Message, Receive, Send, StartResponse, WSGIApp
from crossgate.adapters._bridge import CancelHandle, Handle, TrioCancelScope, asyncio_loop
from crossgate.adapters._kind import shape
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI, LifespanMode
from crossgate.adapters.calls import thread_sensitive as sensitive_context
from crossgate.adapters.lifespan import (
    CANCEL_GRACE,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LifespanGroup,
)
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.middleware.dispatch import Kind, Mountable

__all__ = [
    "DEFAULT_MAX_REPLAY",
    "DEFAULT_STATUSES",
    "REFUSAL_GRACE",
    "Fallback",
    "WSGIFallback",
    "fallback",
    "fallback_wsgi",
]

logger = logging.getLogger(__name__)

#: The statuses by which ``primary`` says "not mine".
DEFAULT_STATUSES: Final = frozenset({404})
#: Bytes of request body kept for a replay: the size of a form post or a JSON document; a
#: larger upload is an endpoint's own business, not a router's.
DEFAULT_MAX_REPLAY: Final = 1 << 20

# The states of one attempt at ``primary`` (one per request), changed by its send() and
# start_response() alone: deciding -> passed (its answer goes out) or refused (dropped).
_DECIDING: Final = "deciding"
_PASSED: Final = "passed"
_REFUSED: Final = "refused"

# ASGI www spec: websocket.close "If this is sent before the socket is accepted, the server
# must close the connection with a HTTP 403 error code (Forbidden)".
_WEBSOCKET_REFUSED: Final = 403
#: Seconds primary may take to return after its refusal before it is cancelled; legacy
#: waits for it, so that the two never read the request at once.
REFUSAL_GRACE: Final = CANCEL_GRACE


def _cut_off(kind: str) -> Message:
    """What primary receives once refused: the request is no longer its own."""
    if kind == "http":
        return {"type": "http.disconnect"}
    # www spec, websocket.disconnect: "code (int) -- The WebSocket close code, as per the
    # WebSocket spec"; 1005 is "no status received".
    return {"type": "websocket.disconnect", "code": 1005}


def _resolve(role: str, value: object) -> tuple[Kind, Any]:
    """(kind, app) for one side, as ``dispatch`` detects them; raise naming the side."""
    app, found = value, None
    if isinstance(value, tuple):
        app, kind = value
        if kind not in ("asgi", "wsgi"):
            raise ValueError(f"{role}: kind must be 'asgi' or 'wsgi', not {kind!r}")
        found = "wsgi" if kind == "wsgi" else "asgi2" if shape(app) == "asgi2" else "asgi3"
    else:
        found = shape(value)
        if found is None:
            raise TypeError(
                f"{role}: cannot tell whether {value!r} is a WSGI or an ASGI app; "
                "pass it as (app, 'wsgi') or (app, 'asgi')"
            )
    if found == "wsgi":
        return "wsgi", app
    if found == "asgi2":
        app = guarantee_single_callable(app)  # type: ignore[no-untyped-call]
    return "asgi", app


def _statuses(statuses: Iterable[int]) -> frozenset[int]:
    found = frozenset(statuses)
    if not found or any(type(s) is not int or not 100 <= s <= 599 for s in found):
        raise ValueError(f"statuses must be HTTP status codes (100-599), not {statuses!r}")
    return found


def _max_replay(value: int) -> int:
    if value < 0:
        raise ValueError(f"max_replay must be 0 or more bytes, not {value!r}")
    return value


# -- ASGI ------------------------------------------------------------------------------------


class _Attempt:
    """One request's try at ``primary``: its state, and the tape of what it received.

    The tape holds the messages ``primary`` received while deciding (None once their bodies
    passed ``limit``: no replay then). ``gone`` is set when one of them was a disconnect.
    """

    __slots__ = (
        "_receive",
        "_send",
        "cut_off",
        "gone",
        "kind",
        "limit",
        "oversize",
        "size",
        "state",
        "statuses",
        "tape",
        "task",
        "timer",
    )

    def __init__(
        self, kind: str, receive: Receive, send: Send, statuses: frozenset[int], limit: int
    ) -> None:
        self.kind = kind
        self._receive = receive
        self._send = send
        self.statuses = statuses
        self.limit = limit
        self.state = _DECIDING
        self.tape: list[Message] | None = []
        self.size = 0
        self.gone = False
        self.oversize = False  # refused, but the tape had overflowed: the refusal went out
        # The one running primary: its task on asyncio, a cancel scope around it on trio.
        self.task: CancelHandle | None = None
        self.timer: Handle | None = None
        self.cut_off = False

    async def receive(self) -> Message:
        if self.state is _PASSED:
            return await self._receive()
        if self.state is _REFUSED:
            return _cut_off(self.kind)
        message = await self._receive()
        if self.state is not _PASSED:  # a receive() begun while deciding ended after it
            self._record(message)
            if self.state is _REFUSED:
                return _cut_off(self.kind)
        return message

    def _record(self, message: Message) -> None:
        kind = message["type"]
        if kind.endswith(".disconnect"):
            self.gone = True
        tape = self.tape
        if tape is None:
            return
        self.size += len(message.get("body") or b"") + len(message.get("bytes") or b"")
        if self.size > self.limit:
            self.tape = None
        else:
            tape.append(message)

    async def send(self, message: Message) -> None:
        state = self.state
        if state is _PASSED:
            await self._send(message)
        elif state is _DECIDING:
            decisive = self._decisive(message)
            if decisive is None:  # http.response.debug and the like: no answer yet
                await self._send(message)
            elif decisive and not self.gone and self.tape is not None:
                self.state = _REFUSED  # the tape is kept for the replay
                self._arm()
            else:
                self.oversize = decisive and not self.gone
                self.state = _PASSED
                self.tape = None
                await self._send(message)
        # refused: what primary sends after its refusal is dropped

    def _decisive(self, message: Message) -> bool | None:
        """Whether ``message`` refuses the request (None: it does not answer yet)."""
        kind = message["type"]
        if kind == "http.response.start":
            return message["status"] in self.statuses
        if kind == "websocket.accept":
            return False
        if kind == "websocket.close":  # before accept: a refusal
            return True
        if kind == "websocket.http.response.start":
            status = message["status"]
            return status in self.statuses or status == _WEBSOCKET_REFUSED
        return None  # http.response.debug, or a message out of order (the server's to refuse)

    def _arm(self) -> None:
        """Give primary ``REFUSAL_GRACE`` to return after its refusal, then cancel it."""
        task = self.task
        if task is not None:
            self.timer = task.get_loop().call_later(REFUSAL_GRACE, self._cut, task)

    def _cut(self, task: CancelHandle) -> None:
        self.cut_off = True
        task.cancel()

    def replay(self) -> Receive:
        """The receive() of ``legacy``: the tape, then the live receive()."""
        tape = self.tape or []
        tape.reverse()
        live = self._receive

        async def receive() -> Message:
            if tape:
                return tape.pop()
            return await live()

        return receive


class Fallback:
    """An ASGI app serving each request from ``primary``, or from ``legacy`` when
    ``primary`` refuses it (module docstring). Either side may be WSGI (run through
    :class:`WSGIToASGI`) or ASGI.

    Args:
        primary: the app asked first (``(app, "wsgi" | "asgi")`` skips detection).
        legacy: the app that answers what ``primary`` refuses.
        statuses: the statuses of ``primary``'s answer that hand the request on.
        max_replay: the most request-body bytes kept for the replay.
        startup_timeout: seconds each app's lifespan startup may take.
        shutdown_timeout: seconds each app's lifespan shutdown may take.
        thread_sensitive: run each request in one ``thread_sensitive()`` context, both
            apps included, as ``dispatch`` does (a few µs a request; off, an ASGI app's
            thread-sensitive ``sync_to_async`` calls share the process-wide thread, as
            they would with the app alone on the server).

    Raises:
        ValueError: a kind is neither ``"asgi"`` nor ``"wsgi"``, a status is not an HTTP
            status code, or ``max_replay`` is negative.
        TypeError: an app is neither WSGI nor ASGI by its shape (give its kind).
    """

    def __init__(
        self,
        primary: Mountable,
        legacy: Mountable,
        *,
        statuses: Iterable[int] = DEFAULT_STATUSES,
        max_replay: int = DEFAULT_MAX_REPLAY,
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
        thread_sensitive: bool = True,
    ) -> None:
        apps: list[ASGIApp] = []
        for role, value in (("primary", primary), ("legacy", legacy)):
            kind, app = _resolve(role, value)
            apps.append(WSGIToASGI(app) if kind == "wsgi" else app)
        self.primary, self.legacy = apps
        self.statuses = _statuses(statuses)
        self.max_replay = _max_replay(max_replay)
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.thread_sensitive = thread_sensitive
        # Both apps' lifespans, primary first (shutdown in reverse), as dispatch's mounts.
        self._lifespans = LifespanGroup(
            [("primary", self.primary), ("legacy", self.legacy)],
            name="crossgate.fallback",
            describe=_role_name,
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
        )
        self._logged_oversize = False

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            if kind == "lifespan":
                await self._lifespans.serve(scope, receive, send)
                return
            # ASGI: "Applications should raise an exception when they do not understand
            # the scope type" (https://asgi.readthedocs.io/en/latest/specs/main.html).
            raise ValueError(f"crossgate.fallback cannot serve ASGI scope type {kind!r}")
        if not self.thread_sensitive:
            await self._serve(kind, scope, receive, send)
            return
        # As dispatch does: the request's thread-sensitive calls (sync_to_async, asgiref's)
        # share one thread, on both sides of the fallback.
        async with sensitive_context():
            await self._serve(kind, scope, receive, send)

    async def _serve(self, kind: str, scope: Message, receive: Receive, send: Send) -> None:
        attempt = _Attempt(kind, receive, send, self.statuses, self.max_replay)
        # The current task on asyncio (two C calls: this is every request's path); on trio,
        # None, and primary runs in a cancel scope of its own (below).
        handle = asyncio.current_task() if asyncio_loop() is not None else None
        # A copy: routers write into the scope (Starlette's "router", "endpoint", ...), and
        # what primary wrote must not reach legacy.
        child = dict(scope)
        server_state = scope.get("state")
        states = self._lifespans.states
        primary_state = states.get("primary")
        if server_state is not None or primary_state:
            child["state"] = {**(server_state or {}), **(primary_state or {})}
        try:
            if handle is not None:
                attempt.task = handle
                await self.primary(child, attempt.receive, attempt.send)
            else:
                # trio: our cut cancels this scope, which absorbs its own cancellation.
                with TrioCancelScope() as attempt.task:
                    await self.primary(child, attempt.receive, attempt.send)
        except BaseException as exc:
            if attempt.state is not _REFUSED:
                raise  # primary's own answer: its error is the server's to report
            self._wound_down(attempt, exc)
        else:
            if attempt.state is not _REFUSED:
                if attempt.oversize:
                    self._log_oversize(scope, attempt.limit)
                return
            self._wound_down(attempt, None)
        legacy_scope = scope
        legacy_state = states.get("legacy")
        if legacy_state:
            legacy_scope = {**scope, "state": {**(server_state or {}), **legacy_state}}
        await self.legacy(legacy_scope, attempt.replay(), send)

    def _wound_down(self, attempt: _Attempt, error: BaseException | None) -> None:
        """primary returned (or raised) after its refusal: undo our cancel, log its error."""
        if attempt.timer is not None:
            attempt.timer.cancel()
        if attempt.cut_off and attempt.task is not None:
            # The cancel was ours (as asyncio.timeout does it): taken back, unless somebody
            # else cancelled the task too.
            others = attempt.task.uncancel()
            if isinstance(error, asyncio.CancelledError) and others == 0:
                return
        if isinstance(error, Exception):
            _failed_after_refusal(error)
        elif error is not None:
            raise error

    def _log_oversize(self, scope: Message, limit: int) -> None:
        if self._logged_oversize:
            return
        self._logged_oversize = True
        logger.info(
            "crossgate.fallback: the primary app refused %s %s after reading more than "
            "max_replay=%d body bytes: its refusal went to the client, the legacy app was "
            "not asked (logged once)",
            scope.get("method", "WEBSOCKET"),
            scope.get("path"),
            limit,
        )

    def __repr__(self) -> str:
        return f"<Fallback {self.primary!r} then {self.legacy!r}>"


def _role_name(role: str) -> str:
    return f"the {role} app"


# -- WSGI ------------------------------------------------------------------------------------


class _Tape:
    """``primary``'s ``wsgi.input``: reads go to the server's stream and are kept (up to
    ``limit`` bytes; past it ``kept`` is None); after a refusal, reads find the end."""

    __slots__ = ("cut", "kept", "limit", "size", "stream")

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.size = 0
        self.kept: list[bytes] | None = []
        self.cut = False

    def _keep(self, data: bytes) -> bytes:
        kept = self.kept
        if kept is not None and data:
            self.size += len(data)
            if self.size > self.limit:
                self.kept = None
            else:
                kept.append(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        if self.cut:
            return b""
        return self._keep(self.stream.read() if size is None else self.stream.read(size))

    def readline(self, size: int | None = -1) -> bytes:
        if self.cut:
            return b""
        return self._keep(self.stream.readline() if size is None else self.stream.readline(size))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(_lines(self, hint))

    def __iter__(self) -> Iterator[bytes]:
        return _lines(self, -1)


class _Replay:
    """``legacy``'s ``wsgi.input``: the bytes ``primary`` read, then the server's stream."""

    __slots__ = ("head", "stream")

    def __init__(self, head: bytes, stream: Any) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int | None = -1) -> bytes:
        head = self.head
        if size is None or size < 0:
            self.head = b""
            rest: bytes = self.stream.read(-1)
            return head + rest
        if len(head) >= size:
            self.head = head[size:]
            return head[:size]
        # A short read means the end to many parsers: the rest comes from the stream.
        self.head = b""
        data: bytes = self.stream.read(size - len(head))
        return head + data

    def readline(self, size: int | None = -1) -> bytes:
        head = self.head
        limit = -1 if size is None or size < 0 else size
        if not head:
            line: bytes = self.stream.readline(limit)
            return line
        end = head.find(b"\n") + 1  # 0: no line end in what primary read
        if end and (limit < 0 or end <= limit):
            cut = end
        elif 0 <= limit <= len(head):
            cut = limit
        else:  # the line goes on in the stream
            self.head = b""
            rest: bytes = self.stream.readline(limit if limit < 0 else limit - len(head))
            return head + rest
        line, self.head = head[:cut], head[cut:]
        return line

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(_lines(self, hint))

    def __iter__(self) -> Iterator[bytes]:
        return _lines(self, -1)


def _lines(stream: _Tape | _Replay, hint: int | None) -> Iterator[bytes]:
    total = 0
    while line := stream.readline():
        yield line
        total += len(line)
        if hint is not None and 0 < hint <= total:
            return


def _discard(data: bytes) -> None:
    """The write() callable of a refused response: nothing goes out."""


class _WSGIAttempt:
    """One request's try at ``primary`` on a WSGI server: its state and start_response."""

    __slots__ = ("_start_response", "oversize", "state", "statuses", "tape")

    def __init__(
        self, start_response: StartResponse, statuses: frozenset[int], tape: _Tape | None
    ) -> None:
        self._start_response = start_response
        self.statuses = statuses
        self.tape = tape
        self.state = _DECIDING
        self.oversize = False  # refused, but past max_replay: the refusal went out

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        state = self.state
        if state is _PASSED:
            return self._start_response(status, headers, exc_info)
        if state is _REFUSED:
            return _discard  # a second start_response (exc_info) of a dropped answer
        tape = self.tape
        if int(status[:3]) in self.statuses:
            if tape is None or tape.kept is not None:
                self.state = _REFUSED
                if tape is not None:
                    tape.cut = True
                return _discard
            self.oversize = True
        self.state = _PASSED
        if exc_info is None:
            return self._start_response(status, headers)
        return self._start_response(status, headers, exc_info)


class _Prepended:
    """``primary``'s response, with the chunks pulled while deciding put back in front."""

    __slots__ = ("body", "chunks", "rest")

    def __init__(self, chunks: list[bytes], rest: Iterator[bytes], body: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.rest = rest
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        yield from self.rest

    def close(self) -> None:
        _close(self.body)


def _close(body: Iterable[bytes]) -> None:
    # PEP 3333: "If the iterable returned by the application has a close() method, the
    # server or gateway must call that method upon completion of the current request".
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _failed_after_refusal(error: Exception) -> None:
    # Principle 10: logged once with its traceback; legacy still answers.
    logger.error("the primary app failed after refusing the request", exc_info=error)


def _declared(environ: Environ) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class WSGIFallback:
    """A WSGI app serving each request from ``primary``, or from ``legacy`` when
    ``primary`` refuses it (module docstring). ASGI apps run through :class:`ASGIToWSGI`,
    each with its lifespan once per process; :meth:`close` shuts them down (``legacy``
    first) and :meth:`start` starts them now instead of at first request.

    Args:
        primary: the app asked first (``(app, "wsgi" | "asgi")`` skips detection).
        legacy: the app that answers what ``primary`` refuses.
        statuses: the statuses of ``primary``'s answer that hand the request on.
        max_replay: the most ``wsgi.input`` bytes kept for the replay.
        lifespan: as :class:`ASGIToWSGI`'s, for an ASGI side.
        startup_timeout: seconds an ASGI side's lifespan startup may take.
        shutdown_timeout: seconds an ASGI side's lifespan shutdown may take.

    Raises:
        ValueError: as :class:`Fallback`.
        TypeError: as :class:`Fallback`.
    """

    def __init__(
        self,
        primary: Mountable,
        legacy: Mountable,
        *,
        statuses: Iterable[int] = DEFAULT_STATUSES,
        max_replay: int = DEFAULT_MAX_REPLAY,
        lifespan: LifespanMode = "auto",
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        apps: list[WSGIApp] = []
        for role, value in (("primary", primary), ("legacy", legacy)):
            kind, app = _resolve(role, value)
            if kind == "asgi":
                app = ASGIToWSGI(
                    app,
                    lifespan=lifespan,
                    startup_timeout=startup_timeout,
                    shutdown_timeout=shutdown_timeout,
                )
            apps.append(app)
        self.primary, self.legacy = apps
        self.statuses = _statuses(statuses)
        self.max_replay = _max_replay(max_replay)
        self._logged_oversize = False

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        tape = None
        # A copy for primary (werkzeug keeps its request in the environ); the caller's stays.
        child = dict(environ)
        if stream is not None and (_declared(environ) or "HTTP_TRANSFER_ENCODING" in environ):
            tape = child["wsgi.input"] = _Tape(stream, self.max_replay)
        attempt = _WSGIAttempt(start_response, self.statuses, tape)
        try:
            body = self.primary(child, attempt.start_response)
        except Exception as exc:
            if attempt.state is not _REFUSED:
                raise  # primary's own answer: its error is the server's to report
            _failed_after_refusal(exc)
            body = ()
        if attempt.state is _PASSED:
            self._check_oversize(attempt, environ)
            return body
        chunks: list[bytes] = []
        rest = iter(body)
        try:
            # PEP 3333: start_response may come with the first chunk of a generator.
            while attempt.state is _DECIDING:
                chunk = next(rest, None)
                if chunk is None:
                    break
                chunks.append(chunk)
        except Exception as exc:
            if attempt.state is not _REFUSED:
                _close(body)
                raise
            _failed_after_refusal(exc)
        except BaseException:
            _close(body)
            raise
        if attempt.state is not _REFUSED:
            self._check_oversize(attempt, environ)
            return _Prepended(chunks, rest, body)
        try:
            _close(body)
        except Exception as exc:
            _failed_after_refusal(exc)
        legacy_environ = dict(environ)
        if tape is not None:
            legacy_environ["wsgi.input"] = _Replay(b"".join(tape.kept or ()), stream)
        result: Iterable[bytes] = self.legacy(legacy_environ, start_response)
        return result

    def _check_oversize(self, attempt: _WSGIAttempt, environ: Environ) -> None:
        if not attempt.oversize or self._logged_oversize:
            return
        self._logged_oversize = True
        logger.info(
            "crossgate.fallback_wsgi: the primary app refused %s %s after reading more than "
            "max_replay=%d body bytes: its refusal went to the client, the legacy app was "
            "not asked (logged once)",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            self.max_replay,
        )

    def start(self) -> None:
        """Run each ASGI side's lifespan startup now (see :meth:`ASGIToWSGI.start`)."""
        for app in (self.primary, self.legacy):
            if isinstance(app, ASGIToWSGI):
                app.start()

    def close(self) -> None:
        """Shut the ASGI sides down, ``legacy`` first."""
        for app in (self.legacy, self.primary):
            if isinstance(app, ASGIToWSGI):
                app.close()

    def __repr__(self) -> str:
        return f"<WSGIFallback {self.primary!r} then {self.legacy!r}>"


#: ``fallback(primary, legacy, **options)``, the functional spelling: the class itself, so
#: that its options are declared (and typed) once, as ``wsgi_to_asgi`` is ``WSGIToASGI``.
fallback = Fallback
#: ``fallback_wsgi(primary, legacy, **options)``: :class:`WSGIFallback` itself.
fallback_wsgi = WSGIFallback


#: Names before the WSGI/ASGI capitalisation of 0.1, kept for one release.
_RENAMED: Final = {
    "WsgiFallback": "WSGIFallback",
}


def __getattr__(name: str) -> Any:
    return renamed(__name__, _RENAMED, globals())(name)
