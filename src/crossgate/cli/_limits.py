"""``--max-header-size`` on uvicorn and hypercorn: 431 for a request whose head is larger.

Their parsers bound only the bytes buffered of an unfinished head (h11's
``max_incomplete_event_size``), so a large head that arrives in one read passes, and
httptools has no limit at all; the size is therefore checked here, on what was parsed.
"""

from __future__ import annotations

from crossgate._types import ASGIApp, Message, Receive, Send

__all__ = ["HeaderLimitASGI", "head_size"]

_BODY = b"Request Header Fields Too Large"


def head_size(scope: Message) -> int:
    """The bytes of the request's head as an HTTP/1.1 client sent it (RFC 9112 2.1):
    ``method SP target SP HTTP/1.1 CRLF``, a ``name: value CRLF`` per field, ``CRLF``.
    """
    target = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    line = len(scope.get("method", "GET")) + 1 + len(target) + len(" HTTP/1.1\r\n")
    if query:
        line += 1 + len(query)
    fields = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
    return line + fields + 2


class HeaderLimitASGI:
    """Answers 431 (RFC 6585 5) to an HTTP request whose head is over ``limit`` bytes, and
    closes such a WebSocket handshake (the server answers 403).

    Args:
        app: the ASGI 3 application.
        limit: the most bytes of request line and header fields.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or head_size(scope) <= self.limit:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_BODY)).encode()),
                (b"connection", b"close"),
            ]
            await send({"type": "http.response.start", "status": 431, "headers": headers})
            await send({"type": "http.response.body", "body": _BODY})
