"""--max-header-size where crossgate checks it (uvicorn, hypercorn): 431, in process."""

from __future__ import annotations

import pytest

from crossgate._types import Message
from crossgate.cli._limits import HeaderLimitASGI, head_size


def _scope(kind: str = "http", value: bytes = b"v") -> Message:
    return {
        "type": kind,
        "method": "GET",
        "path": "/p",
        "raw_path": b"/p",
        "query_string": b"a=1",
        "headers": [(b"host", b"h"), (b"x-big", value)],
    }


def test_head_size_counts_the_request_line_and_each_field_line() -> None:
    head = b"GET /p?a=1 HTTP/1.1\r\nhost: h\r\nx-big: v\r\n\r\n"
    assert head_size(_scope()) == len(head)
    assert head_size({**_scope(), "query_string": b""}) == len(head) - len(b"?a=1")


@pytest.mark.anyio
async def test_a_larger_head_is_answered_431_without_the_app() -> None:
    called: list[str] = []
    sent: list[Message] = []

    async def app(scope: Message, receive: object, send: object) -> None:
        called.append(scope["type"])

    async def send(message: Message) -> None:
        sent.append(message)

    limit = head_size(_scope(value=b"v" * 100))
    wrapped = HeaderLimitASGI(app, limit)
    await wrapped(_scope(value=b"v" * 100), None, send)  # type: ignore[arg-type]
    await wrapped({"type": "lifespan"}, None, send)  # type: ignore[arg-type]
    assert called == ["http", "lifespan"]
    await wrapped(_scope(value=b"v" * 101), None, send)  # type: ignore[arg-type]
    await wrapped(_scope("websocket", b"v" * 101), None, send)  # type: ignore[arg-type]
    assert called == ["http", "lifespan"]
    start, body, close = sent
    assert start["status"] == 431
    assert body["body"] == b"Request Header Fields Too Large"
    assert close == {"type": "websocket.close", "code": 1008}
