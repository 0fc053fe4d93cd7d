"""Scripted applications: a WSGI or ASGI app built from a behaviour description, which
records what it observed and knows what a correct server must answer for it.

They need no Hypothesis: :mod:`crossgate.testing.strategies` generates the descriptions,
but a test can write one by hand (``WSGIBehaviour(body_kind="write").app()``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from crossgate._types import Environ, Message, Receive, Send, StartResponse
from crossgate.testing._messages import Request, Response

__all__ = [
    "RECOVERY_BODY",
    "RECOVERY_HEADERS",
    "RECOVERY_STATUS",
    "SCOPE_KEYS",
    "ASGIBehaviour",
    "ASGICall",
    "ASGIFailure",
    "ASGIRead",
    "Outcome",
    "ScriptError",
    "ScriptedASGIApp",
    "ScriptedWSGIApp",
    "WSGIBehaviour",
    "WSGIBody",
    "WSGICall",
    "WSGIFailure",
    "WSGIRead",
]

WSGIBody = Literal["list", "tuple", "generator", "closing", "write", "write+list"]
WSGIRead = Literal["none", "read", "read_sized", "readline", "iterate"]
WSGIFailure = Literal["before_start", "after_start", "in_body", "exc_info"]
ASGIRead = Literal["none", "all", "first"]
ASGIFailure = Literal[
    "before_start", "after_start", "in_body", "after_end", "return_before_start", "return_in_body"
]

#: What a WSGI app that recovers with ``exc_info`` answers instead.
RECOVERY_STATUS: Final = "503 Service Unavailable"
RECOVERY_BODY: Final = b"recovered"
RECOVERY_HEADERS: Final = (
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(RECOVERY_BODY))),
)


class ScriptError(Exception):
    """The exception a scripted app raises on purpose."""


@dataclass(frozen=True)
class Outcome:
    """What a correct server answers: a ``"complete"`` response, an ``"error"`` (the app
    failed before its response started: a 500, whatever its headers and body), or an
    ``"aborted"`` one (cut after ``body``)."""

    kind: Literal["complete", "error", "aborted"]
    status: int = 500
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def matches(self, response: Response) -> bool:
        """Whether ``response`` is this outcome (header names compared in any case)."""
        if self.kind == "error":
            return response.status == 500 and not response.aborted
        if response.aborted != (self.kind == "aborted") or response.status != self.status:
            return False
        ours = [(name.lower(), value) for name, value in self.headers]
        theirs = [(name.lower(), value) for name, value in response.headers]
        return ours == theirs and response.body == self.body


def _body_due(method: str, status: int) -> bool:
    # RFC 9110 6.4.1: no content in responses to HEAD, nor in 1xx, 204 and 304 responses.
    return method != "HEAD" and status >= 200 and status not in (204, 304)


# -------------------------------------------------------------------------------------- WSGI


@dataclass
class WSGICall:
    """What one call of a scripted WSGI app observed: the CGI variables of its environ
    (keys without a dot, plus ``wsgi.url_scheme``), the request body it read, what reading
    it raised (a client gone mid-upload), and whether its iterable was closed (None for
    list bodies, which cannot tell)."""

    environ: dict[str, Any]
    body: bytes = b""
    read_error: BaseException | None = None
    closed: bool | None = None


@dataclass(frozen=True)
class WSGIBehaviour:
    """How a scripted WSGI app answers.

    ``body`` is handed over as ``body_kind`` says: returned as a list or tuple, yielded by a
    generator, by an iterable with ``close()``, passed to ``write()``, or half written and
    half returned. ``content_length`` adds an exact or a too-small Content-Length. ``read``
    is how the request body is read first (to CONTENT_LENGTH, or to the end when
    ``wsgi.input_terminated``). ``failure`` raises :class:`ScriptError`: before or after
    ``start_response``, in the body after ``fail_at`` chunks (a list fails before it is
    returned), or at that point catches it and calls ``start_response`` again with
    ``exc_info`` (PEP 3333's error handler) to answer :data:`RECOVERY_STATUS` instead.
    """

    status: str = "200 OK"
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/plain"),)
    body: tuple[bytes, ...] = (b"hello",)
    body_kind: WSGIBody = "list"
    content_length: Literal["none", "exact", "short"] = "none"
    read: WSGIRead = "none"
    read_size: int = 7
    failure: WSGIFailure | None = None
    fail_at: int = 0

    def app(self) -> ScriptedWSGIApp:
        """A new WSGI app behaving so, with an empty record of calls."""
        return ScriptedWSGIApp(self)

    @property
    def response_headers(self) -> list[tuple[str, str]]:
        """The headers passed to ``start_response``."""
        headers = list(self.headers)
        total = sum(map(len, self.body))
        if self.content_length == "exact" or (self.content_length == "short" and not total):
            headers.append(("Content-Length", str(total)))
        elif self.content_length == "short":
            headers.append(("Content-Length", str(total // 2)))
        return headers

    def _fails_at(self) -> int | None:
        """How many body chunks go out before the failure in the body, if there is one."""
        if self.failure not in ("in_body", "exc_info"):
            return None
        if self.body_kind in ("list", "tuple"):
            return 0
        if self.body_kind == "write+list":
            return min(self.fail_at, len(self.body) // 2)
        return min(self.fail_at, len(self.body))

    def expected(self, request: Request | None = None) -> Outcome:
        """What a PEP 3333 server answers ``request`` (default ``GET /``) with."""
        method = request.method if request is not None else "GET"
        fails = self.failure in ("before_start", "after_start") or (
            self.failure == "in_body" and self.body_kind in ("list", "tuple")
        )
        if fails:
            return Outcome("error")
        headers = self.response_headers
        limit = _content_length(headers)
        stop = self._fails_at()
        chunks = self.body if stop is None else self.body[:stop]
        writes = {"write": len(chunks), "write+list": len(self.body) // 2}.get(self.body_kind, 0)
        sent = touched = False  # headers committed; a body byte handed over
        body = b""
        for index, chunk in enumerate(chunks):
            # PEP 3333: headers go out with "the first iteration of the application return
            # value that yields a non-empty bytestring, or upon the application's first
            # invocation of the write() callable".
            sent = sent or bool(chunk) or index < writes
            touched = touched or bool(chunk)
            body += chunk if limit is None else chunk[: limit - len(body)]
            if limit is not None and len(body) == limit and sent and index >= writes:
                stop = None  # the server stops iterating at Content-Length: no failure
                break
        code = int(self.status[:3])
        if stop is not None:
            if sent:
                # The client has all it was promised once Content-Length is reached.
                whole = touched and limit is not None and len(body) == limit
                return Outcome("complete" if whole else "aborted", code, tuple(headers), body)
            if self.failure == "in_body":
                return Outcome("error")
            return Outcome("complete", int(RECOVERY_STATUS[:3]), RECOVERY_HEADERS, RECOVERY_BODY)
        if limit is not None and len(body) < limit and _body_due(method, code):
            return Outcome("aborted", code, tuple(headers), body)
        return Outcome("complete", code, tuple(headers), body)


def _content_length(headers: Iterable[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value)
    return None


class _Closing:
    """An iterable with ``close()`` that tells its call it was closed."""

    def __init__(self, chunks: Iterator[bytes], call: WSGICall) -> None:
        self._chunks = chunks
        self._call = call
        call.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._call.closed = True


class ScriptedWSGIApp:
    """A WSGI app playing a :class:`WSGIBehaviour`; ``calls`` records each request."""

    def __init__(self, behaviour: WSGIBehaviour) -> None:
        self.behaviour = behaviour
        self.calls: list[WSGICall] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.behaviour!r})"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        plan = self.behaviour
        call = WSGICall(
            {k: v for k, v in environ.items() if "." not in k or k == "wsgi.url_scheme"}
        )
        self.calls.append(call)
        try:
            call.body = _read(environ, plan.read, plan.read_size)
        except Exception as exc:
            call.read_error = exc
            raise
        if plan.failure == "before_start":
            raise ScriptError("before start_response")
        write = start_response(plan.status, plan.response_headers)
        stop = plan._fails_at()
        if plan.failure == "after_start" or (
            plan.failure == "in_body" and plan.body_kind in ("list", "tuple")
        ):
            raise ScriptError("after start_response")
        if plan.body_kind in ("list", "tuple"):
            if stop is not None:
                return [_recover(start_response)]
            return list(plan.body) if plan.body_kind == "list" else tuple(plan.body)
        if plan.body_kind in ("generator", "closing"):
            chunks = self._generate(start_response, stop)
            return _Closing(chunks, call) if plan.body_kind == "closing" else chunks
        half = len(plan.body) if plan.body_kind == "write" else len(plan.body) // 2
        for index, chunk in enumerate(plan.body[:half]):
            if index == stop:
                write(self._fail(start_response))
                return []
            write(chunk)
        if stop is not None and stop >= half:
            recovered = self._fail(start_response)
            if plan.body_kind == "write":
                write(recovered)
                return []
            return [recovered]
        return list(plan.body[half:])

    def _generate(self, start_response: StartResponse, stop: int | None) -> Iterator[bytes]:
        for index, chunk in enumerate(self.behaviour.body):
            if index == stop:
                break
            yield chunk
        if stop is not None:
            yield self._fail(start_response)

    def _fail(self, start_response: StartResponse) -> bytes:
        """The failure in the body: raise, or recover through ``exc_info``."""
        if self.behaviour.failure == "in_body":
            raise ScriptError("in the body")
        return _recover(start_response)


def _recover(start_response: StartResponse) -> bytes:
    try:
        raise ScriptError("recovered with exc_info")
    except ScriptError:
        # PEP 3333's error handler: start_response re-raises if the headers went out.
        start_response(RECOVERY_STATUS, list(RECOVERY_HEADERS), sys.exc_info())
    return RECOVERY_BODY


def _read(environ: Environ, mode: WSGIRead, size: int) -> bytes:
    """Read the request body as a careful app does: up to CONTENT_LENGTH, or to the end
    when the server says the input is terminated (PEP 3333: "the application should not
    attempt to read more data than is specified by the CONTENT_LENGTH variable")."""
    if mode == "none":
        return b""
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH")
    if declared:
        left = int(declared)
    elif environ.get("wsgi.input_terminated"):
        left = -1
    else:
        return b""
    if mode == "read":
        data: bytes = stream.read(left)
        return data
    if mode == "read_sized":
        parts = []
        while left:
            part = stream.read(size if left < 0 else min(size, left))
            if not part:
                break
            parts.append(part)
            left -= len(part) if left > 0 else 0
        return b"".join(parts)
    if mode == "readline":
        parts = []
        while line := stream.readline():
            parts.append(line)
        return b"".join(parts)
    return b"".join(stream)


# -------------------------------------------------------------------------------------- ASGI

#: The scope keys a scripted ASGI app records.
SCOPE_KEYS: Final = (
    "type",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
)


@dataclass
class ASGICall:
    """What one call of a scripted ASGI app observed: the scope's request fields
    (:data:`SCOPE_KEYS`, headers as a list of byte tuples), the request body it received,
    the types of the messages it received, in order."""

    scope: dict[str, Any]
    body: bytes = b""
    received: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ASGIBehaviour:
    """How a scripted ASGI app answers.

    ``body`` is sent as one ``http.response.body`` per item (``more_body=True`` on all but
    the last; an empty tuple sends one empty final message); ``omit_more_body`` leaves the
    key out of the final message (it defaults to False). ``content_length="exact"`` adds
    the header. ``read`` receives the whole request body, or one message, before
    answering; ``await_disconnect`` calls ``receive()`` once more after the response, as an
    app with background work does. ``failure`` raises :class:`ScriptError` (or returns
    early, for ``return_*``) before or after ``http.response.start``, before body message
    ``fail_at``, or after the response ended.
    """

    status: int = 200
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"text/plain"),)
    body: tuple[bytes, ...] = (b"hello",)
    omit_more_body: bool = False
    content_length: Literal["none", "exact"] = "none"
    read: ASGIRead = "none"
    await_disconnect: bool = False
    failure: ASGIFailure | None = None
    fail_at: int = 0

    def app(self) -> ScriptedASGIApp:
        """A new ASGI app behaving so, with an empty record of calls."""
        return ScriptedASGIApp(self)

    @property
    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers of ``http.response.start``."""
        headers = list(self.headers)
        if self.content_length == "exact":
            headers.append((b"content-length", str(sum(map(len, self.body))).encode()))
        return headers

    @property
    def messages(self) -> list[Message]:
        """The body messages sent when nothing fails."""
        chunks = self.body or (b"",)
        messages: list[Message] = [
            {"type": "http.response.body", "body": chunk, "more_body": True} for chunk in chunks
        ]
        if self.omit_more_body:
            del messages[-1]["more_body"]
        else:
            messages[-1]["more_body"] = False
        return messages

    def expected(self, request: Request | None = None) -> Outcome:
        """What a server answers, holding the response start until the first body byte
        (ASGI: servers "need not flush the data generated by this event to the send buffer
        until the first Response Body event is processed")."""
        del request  # the answer does not depend on it
        if self.failure in ("before_start", "after_start", "return_before_start"):
            return Outcome("error")
        headers = tuple(
            (n.decode("latin-1"), v.decode("latin-1")) for n, v in self.response_headers
        )
        if self.failure in ("in_body", "return_in_body") and self.fail_at < len(self.messages):
            sent = b"".join(m["body"] for m in self.messages[: self.fail_at])
            if not sent:
                return Outcome("error")
            # The client has all it was promised once Content-Length is reached.
            whole = self.content_length == "exact" and sent == b"".join(self.body)
            return Outcome("complete" if whole else "aborted", self.status, headers, sent)
        return Outcome("complete", self.status, headers, b"".join(self.body))


class ScriptedASGIApp:
    """An ASGI app playing an :class:`ASGIBehaviour`; ``calls`` records each request.
    It answers the lifespan protocol (startup and shutdown complete)."""

    def __init__(self, behaviour: ASGIBehaviour) -> None:
        self.behaviour = behaviour
        self.calls: list[ASGICall] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.behaviour!r})"

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                phase = message["type"].rpartition(".")[2]
                await send({"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown":
                    return
        plan = self.behaviour
        seen = {key: scope.get(key) for key in SCOPE_KEYS}
        seen["headers"] = [(bytes(n), bytes(v)) for n, v in scope.get("headers") or ()]
        call = ASGICall(seen)
        self.calls.append(call)
        if plan.read != "none":
            await self._read(receive, call, plan.read == "first")
        if plan.failure == "before_start":
            raise ScriptError("before http.response.start")
        if plan.failure == "return_before_start":
            return
        await send(
            {"type": "http.response.start", "status": plan.status, "headers": plan.response_headers}
        )
        if plan.failure == "after_start":
            raise ScriptError("after http.response.start")
        for index, message in enumerate(plan.messages):
            if index == plan.fail_at and plan.failure in ("in_body", "return_in_body"):
                if plan.failure == "return_in_body":
                    return
                raise ScriptError("in the body")
            await send(message)
        if plan.await_disconnect:
            call.received.append((await receive())["type"])
        if plan.failure == "after_end":
            raise ScriptError("after the response")

    @staticmethod
    async def _read(receive: Receive, call: ASGICall, once: bool) -> None:
        parts = []
        while True:
            message = await receive()
            call.received.append(message["type"])
            if message["type"] != "http.request":
                break
            parts.append(message.get("body", b""))
            if once or not message.get("more_body", False):
                break
        call.body = b"".join(parts)
