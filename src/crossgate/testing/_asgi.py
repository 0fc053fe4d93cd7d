"""``call_asgi``: one HTTP request through an ASGI application, in process.

The driver is a small ASGI server of its own (it does not use crossgate's adapters), strict
about the messages it is sent, so that what it reports can be held against the adapters.
ASGI HTTP spec: https://asgi.readthedocs.io/en/latest/specs/www.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from crossgate._errors import ClientDisconnected, InvalidResponse
from crossgate._types import ASGIApp, Message
from crossgate.adapters._bridge import Waiter, fail_after, running_loop
from crossgate.testing._messages import Request, Response

__all__ = ["asgi_scope", "call_asgi"]

_LOWER_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_VALUE_CTL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def asgi_scope(request: Request) -> dict[str, Any]:
    """The ASGI HTTP connection scope a server builds for ``request``.

    >>> scope = asgi_scope(Request("GET", "/a%2Fb", headers=[("X-Id", "7")]))
    >>> scope["path"], scope["raw_path"], scope["headers"]
    ('/a/b', b'/a%2Fb', [(b'x-id', b'7')])
    """
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": request.http_version,
        # ASGI: "method (Unicode string) -- The HTTP method name, uppercased."
        "method": request.method.upper(),
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path,
        "query_string": request.query,
        "root_path": request.root_path,
        # ASGI (HTTP connection scope): "Header names should be lowercased".
        "headers": [(name.lower(), value) for name, value in request.headers],
        "client": request.client,
        "server": request.server,
        "extensions": {},
    }


class _Exchange:
    """The server side of one request: what receive() hands out, what send() accepts."""

    def __init__(self, request: Request, disconnect_after: int | None) -> None:
        self.request = request
        self.disconnect_after = disconnect_after
        self.gone = request.truncated or disconnect_after == 0
        chunks = request.body or ((b"",) if not request.truncated else ())
        last = len(chunks) - 1
        self.pending: list[Message] = [
            {
                "type": "http.request",
                "body": chunk,
                "more_body": index < last or request.truncated,
            }
            for index, chunk in enumerate(chunks)
        ]
        self.received = bytearray()
        # Whether the response ended or the client left, and the receive() calls waiting
        # for that (an event on whichever loop runs the app: asyncio's or trio's).
        self.over = self.gone
        self.waiting: list[Waiter[None]] = []
        self.messages: list[Message] = []
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.delivered: int | None = None  # the status, once the response started
        self.ended = False  # the final body message was sent
        self.short = False  # ... before the declared content-length was reached
        self.chunks: list[bytes] = []
        self.body = bytearray()
        self.remaining: int | None = None
        self.taken = 0
        self.fault: InvalidResponse | None = None  # the first protocol error send() raised

    async def receive(self) -> Message:
        if self.ended or (self.gone and self.taken):
            # Once the response is over (or the client left in the middle of it), what is
            # left of the request body is moot: "http.disconnect -- Sent to the application
            # if receive is called after a response has been sent".
            return {"type": "http.disconnect"}
        if self.pending:
            message = self.pending.pop(0)
            self.received += message["body"]
            return message
        # Until the response ends or the client leaves, there is nothing more to receive.
        if not self.over:
            waiter: Waiter[None] = running_loop().create_future()
            self.waiting.append(waiter)
            await waiter
        return {"type": "http.disconnect"}

    def _set_over(self) -> None:
        self.over = True
        waiting, self.waiting = self.waiting, []
        for waiter in waiting:
            if not waiter.done():  # its receive() was cancelled
                waiter.set_result(None)

    async def send(self, message: Message) -> None:
        value: object = message  # typed as a mapping, but an app can send anything
        if not isinstance(value, Mapping):
            # ASGI: "Messages [...] are dicts" (the spec's Overview).
            self.fault = self.fault or InvalidResponse(f"a message must be a dict: {message!r}")
            raise self.fault
        self.messages.append(dict(message))
        if self.gone:
            # ASGI (Disconnected Client): "If send() is called on a closed connection the
            # server should raise a server-specific subclass of OSError."
            raise ClientDisconnected("the client disconnected")
        try:
            self._send(message)
        except InvalidResponse as exc:
            if self.fault is None:
                self.fault = exc
            raise

    def _send(self, message: Message) -> None:
        kind = message.get("type")
        if self.ended:
            raise InvalidResponse(f"{kind!r} sent after the response ended")
        if kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.body":
            self._body(message)
        else:
            raise InvalidResponse(f"unexpected ASGI message {kind!r} (no extension offered)")

    def _start(self, message: Message) -> None:
        if self.status is not None:
            raise InvalidResponse("http.response.start sent twice")
        status = message.get("status")
        if type(status) is not int or not 100 <= status <= 999:
            raise InvalidResponse(f"http.response.start status must be an int, not {status!r}")
        if message.get("trailers"):
            raise InvalidResponse("trailers announced, but the extension was not offered")
        headers: list[tuple[bytes, bytes]] = []
        for item in message.get("headers") or ():
            try:
                name, value = item
            except (TypeError, ValueError):
                raise InvalidResponse(f"a header must be a [name, value] pair: {item!r}") from None
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise InvalidResponse(f"header names and values must be bytes: {item!r}")
            # ASGI (Response Start): "Header names must be lowercased."
            if not _LOWER_TOKEN.fullmatch(name):
                raise InvalidResponse(f"header name {name!r} is not a lower-case token")
            if _VALUE_CTL.search(value):
                raise InvalidResponse(f"header {name!r} has a control character: {value!r}")
            if name == b"content-length":
                if not value.isdigit():
                    raise InvalidResponse(f"invalid content-length {value!r}")
                self.remaining = int(value)
            headers.append((name, value))
        self.status = status
        self.headers = headers

    def _body(self, message: Message) -> None:
        if self.status is None:
            raise InvalidResponse("http.response.body sent before http.response.start")
        body = message.get("body", b"")
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise InvalidResponse(f"body must be bytes, not {type(body).__name__}")
        body = bytes(body)
        # ASGI: "more_body (bool) -- [...] Optional; if missing defaults to False."
        more = bool(message.get("more_body", False))
        self.chunks.append(body)
        if self.delivered is None and (body or not more):
            # "Protocol servers need not flush the data generated by this event to the send
            # buffer until the first Response Body event is processed": held until a byte
            # (or the end) goes out, so a failure before that is still a 500.
            self.delivered = self.status
        if self.remaining is not None:
            if len(body) > self.remaining:
                raise InvalidResponse("the response body is longer than its content-length")
            self.remaining -= len(body)
        self.body += body
        if body:
            self.taken += 1
            if self.disconnect_after is not None and self.taken >= self.disconnect_after:
                self.gone = True
                self._set_over()
        if not more:
            self.ended = True
            self._set_over()
            if self.remaining and self._body_due():
                self.short = True
                raise InvalidResponse(
                    f"the response body ended {self.remaining} bytes short of its content-length"
                )

    def _body_due(self) -> bool:
        status = self.status or 200
        return self.request.method != "HEAD" and status >= 200 and status not in (204, 304)


async def call_asgi(
    app: ASGIApp,
    request: Request | None = None,
    *,
    disconnect_after: int | None = None,
    raise_app_exceptions: bool = True,
    timeout: float | None = 30.0,
    state: Mapping[str, Any] | None = None,
) -> Response:
    """Serve ``request`` (default: ``GET /``) with the ASGI application ``app``, on the
    loop that awaits it: asyncio's (or uvloop's) or trio's.

    The body goes in as one ``http.request`` message per chunk of ``request.body``; after
    it, ``receive()`` waits until the response ends (or the client leaves), then answers
    ``http.disconnect``. Every message sent is checked against the spec and kept in
    ``Response.messages``. The response starts with its first body byte (or its end): an
    app failing before that gets a 500, after it the response is ``aborted``. Lifespan is
    not run: wrap the call in ``crossgate.lifespan(app)`` and pass the state it yields as
    ``state``.

    Args:
        app: The ASGI application.
        request: What the client sends (default: ``GET /``).
        disconnect_after: The client leaves after this many non-empty body messages (0:
            before any; ``send()`` then raises an ``OSError``). None: it stays.
        raise_app_exceptions: Raise the app's exception (kept in ``Response.error``) once
            the app has returned; False returns the response with it.
        timeout: Seconds after which an app still running is cancelled and
            ``TimeoutError`` raised (None: no limit).
        state: The lifespan state; the scope gets a shallow copy of it, as servers do.

    Returns:
        The :class:`Response` as the client saw it.

    >>> import asyncio
    >>> async def app(scope, receive, send):
    ...     message = await receive()
    ...     await send({"type": "http.response.start", "status": 200, "headers": []})
    ...     await send({"type": "http.response.body", "body": message["body"][::-1]})
    >>> response = asyncio.run(call_asgi(app, Request("POST", "/", body=b"abc")))
    >>> response.status, response.body
    (200, b'cba')
    """
    if request is None:
        request = Request()
    if disconnect_after is not None and disconnect_after < 0:
        raise ValueError(f"disconnect_after must be None or >= 0, not {disconnect_after!r}")
    exchange = _Exchange(request, disconnect_after)
    scope: MutableMapping[str, Any] = asgi_scope(request)
    if state is not None:
        # ASGI: "state [...] A copy of the namespace passed into the lifespan corresponding
        # to this request." (a shallow copy, says the lifespan spec).
        scope["state"] = dict(state)
    error: BaseException | None = None
    late = TimeoutError(f"the ASGI app did not finish within {timeout} s")
    try:
        async with fail_after(timeout) as expired:
            try:
                await app(scope, exchange.receive, exchange.send)
            except Exception as exc:
                error = exc
    except TimeoutError as exc:
        raise late from exc
    if expired():  # the app swallowed the cancellation and returned
        raise late
    gone = exchange.gone
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    aborted = False
    if error is None:
        error = exchange.fault  # a protocol error the app caught and went on from
    if exchange.delivered is not None:
        status = exchange.delivered
        headers = tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in exchange.headers)
        # Cut before its end, unless the body reached its content-length: then the client
        # has all it was promised, whatever the app did next.
        whole = exchange.ended or exchange.remaining == 0
        if (not whole or exchange.short) and not gone:
            aborted = True
            if error is None:
                error = InvalidResponse("the ASGI app returned without finishing its response")
    elif not gone:
        status = 500
        if error is None:
            what = "its response body" if exchange.status is not None else "a response"
            error = InvalidResponse(f"the ASGI app returned without sending {what}")
    response = Response(
        status=status,
        headers=headers,
        body=bytes(exchange.body),
        chunks=tuple(exchange.chunks),
        aborted=aborted,
        disconnected=gone,
        error=error,
        received=bytes(exchange.received),
        messages=tuple(exchange.messages),
    )
    if error is not None and raise_app_exceptions and not gone:
        raise error
    return response
