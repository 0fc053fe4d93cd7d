"""call_wsgi and call_asgi behave as spec-conforming servers: the environ passes
wsgiref.validate, close() is always called, headers wait for the first body byte, exc_info
and Content-Length follow PEP 3333, ASGI messages are checked, the body goes in the chunks
given, and disconnects happen where asked."""

from __future__ import annotations

import doctest
import io
import sys
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossgate.testing
from crossgate._errors import InvalidResponse
from crossgate._types import Environ, Message, Receive, Send, StartResponse
from crossgate.testing import Request, asgi_scope, call_asgi, call_wsgi, wsgi_environ
from crossgate.testing import _asgi as asgi_module
from crossgate.testing import _messages as messages_module
from crossgate.testing import _wsgi as wsgi_module
from crossgate.testing.strategies import methods, requests

Scope = MutableMapping[str, Any]


class Boom(Exception):
    """What the test apps raise."""


# --------------------------------------------------------------------------------- Request


def test_request_encodes_the_path_as_a_url_does() -> None:
    request = Request("GET", "/caf\u00e9/a%2Fb/100%/sp ace")
    assert request.raw_path == b"/caf%C3%A9/a%2Fb/100%25/sp%20ace"
    assert request.path == "/caf\u00e9/a/b/100%/sp ace"


def test_request_splits_the_query_off_the_path() -> None:
    assert Request("GET", "/x?a=1&b=%20").query == b"a=1&b=%20"
    assert Request("GET", "/x", query="q=caf\u00e9").query == b"q=caf%C3%A9"
    with pytest.raises(ValueError, match="not both"):
        Request("GET", "/x?a=1", query=b"b=2")


def test_request_path_with_bytes_that_are_not_utf8_decodes_to_replacement_characters() -> None:
    assert Request("GET", "/%FF").path == "/\ufffd"


def test_request_adds_content_length_only_when_the_body_is_not_framed() -> None:
    assert Request("POST", "/", body=[b"ab", b"", b"c"]).headers == ((b"content-length", b"3"),)
    chunked = Request("POST", "/", headers=[("Transfer-Encoding", "chunked")], body=b"abc")
    assert chunked.header("transfer-encoding") == b"chunked"
    assert chunked.header("content-length") is None
    assert Request("GET", "/").headers == ()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("GET", "x"), {}),
        (("G ET", "/"), {}),
        (("GET", "/app/x"), {"root_path": "/ap"}),
        (("GET", "/app/x"), {"root_path": "/app/"}),
        (("GET", "/"), {"headers": [("bad name", "v")]}),
        (("GET", "/"), {"headers": [("x", "a\r\nb")]}),
    ],
)
def test_request_refuses_what_no_client_sends(args: tuple[str, str], kwargs: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Request(*args, **kwargs)


def test_doctests_of_the_testing_package_pass() -> None:
    for module in (crossgate.testing, messages_module, wsgi_module, asgi_module):
        failed, attempted = doctest.testmod(module)
        assert attempted, module.__name__
        assert not failed, module.__name__


# ------------------------------------------------------------------------------ call_wsgi


def test_environ_is_built_as_wsgi_servers_build_it() -> None:
    request = Request(
        "POST",
        "/app/a%2Fb/caf%C3%A9?x=1",
        root_path="/app",
        headers=[
            ("X-Dup", "1"),
            ("x-dup", "2"),
            ("Cookie", "a=1"),
            ("cookie", "b=2"),
            ("X_Under", "spoof"),
            ("Content-Type", "text/plain"),
        ],
        body=b"hi",
    )
    environ = wsgi_environ(request)
    assert {k: v for k, v in environ.items() if "." not in k} == {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/a/b/caf\xc3\xa9",  # decoded, %2F too; UTF-8 bytes as latin-1
        "QUERY_STRING": "x=1",
        "RAW_URI": "/app/a%2Fb/caf%C3%A9?x=1",
        "REQUEST_URI": "/app/a%2Fb/caf%C3%A9?x=1",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_X_DUP": "1,2",
        "HTTP_COOKIE": "a=1; b=2",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "2",
    }
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input_terminated"] is True


def _echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Reads the body as wsgiref.validate allows (read with a size), answers it back."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read(-1)
    environ["wsgi.errors"].write("read the body\n")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


@pytest.mark.timeout(180)  # generous: a loaded machine runs Hypothesis several times slower
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests(methods=methods(custom=False)))
def test_environ_and_calls_pass_wsgiref_validate(request: Request) -> None:
    """wsgiref.validate checks the environ, the input, start_response and the iteration;
    pytest turns its warnings into errors."""
    response = call_wsgi(_echo, request, validate=True)
    assert response.status == 200
    assert response.body == request.content == response.received
    assert response.log == "read the body\n"


def test_validate_reports_what_wsgiref_validate_refuses() -> None:
    """The option really wraps the app: no Content-Type is an error to the validator."""
    app = _returning([b"x"], headers=[])
    assert call_wsgi(app).status == 200
    with pytest.raises(AssertionError, match="Content-Type"):
        call_wsgi(app, validate=True)


class Tracked:
    """A body iterable recording what was pulled from it and whether close() ran."""

    def __init__(self, chunks: Iterable[bytes | Exception]) -> None:
        self.chunks = list(chunks)
        self.pulled = 0
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    def close(self) -> None:
        self.closed += 1


def _returning(
    body: Iterable[bytes], headers: list[tuple[str, str]] | None = None, status: str = "200 OK"
) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, headers if headers is not None else [("Content-Type", "x/y")])
        return body

    return app


@pytest.mark.parametrize(
    ("chunks", "headers", "kwargs", "status", "body"),
    [
        pytest.param([b"a", b"b"], None, {}, 200, b"ab", id="complete"),
        pytest.param([b"a", Boom()], None, {}, 200, b"a", id="error-after-a-byte"),
        pytest.param([b"", Boom()], None, {}, 500, b"", id="error-before-a-byte"),
        pytest.param([b"ab", b"cd"], [("Content-Length", "3")], {}, 200, b"abc", id="cut"),
        pytest.param([b"a", b"b"], None, {"disconnect_after": 1}, 200, b"a", id="client-left"),
    ],
)
def test_close_is_called_once_however_the_response_ends(
    chunks: list[bytes | Exception],
    headers: list[tuple[str, str]] | None,
    kwargs: Any,
    status: int,
    body: bytes,
) -> None:
    tracked = Tracked(chunks)
    response = call_wsgi(_returning(tracked, headers), raise_app_exceptions=False, **kwargs)
    assert tracked.closed == 1
    assert (response.status, response.body) == (status, body)


def test_content_length_stops_the_iteration() -> None:
    """PEP 3333: the server "should stop iterating over the response when enough data has
    been sent"."""
    tracked = Tracked([b"ab", b"cd", Boom()])
    response = call_wsgi(_returning(tracked, [("Content-Length", "4")]))
    assert response.complete
    assert (response.body, tracked.pulled) == (b"abcd", 2)


def test_body_shorter_than_content_length_is_aborted() -> None:
    """PEP 3333: if the app does not provide enough data, "the server should close the
    connection and log or otherwise report the error"."""
    app = _returning([b"ab"], [("Content-Length", "4")])
    response = call_wsgi(app, raise_app_exceptions=False)
    assert response.aborted
    assert isinstance(response.error, InvalidResponse)
    with pytest.raises(InvalidResponse, match="short"):
        call_wsgi(app)
    assert call_wsgi(app, Request("HEAD", "/")).complete  # HEAD has no body to fall short


def test_a_failure_after_the_whole_content_length_leaves_the_response_whole() -> None:
    """The client has every byte it was promised: a later error is reported, not an abort."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Length", "2")])
        write(b"ab")
        raise Boom

    response = call_wsgi(app, raise_app_exceptions=False)
    assert (response.complete, response.body) == (True, b"ab")
    assert isinstance(response.error, Boom)


def test_headers_wait_for_the_first_non_empty_chunk() -> None:
    """PEP 3333: the headers go out with "the first iteration of the application return
    value that yields a non-empty bytestring": an error before that is still a 500."""
    response = call_wsgi(_returning(Tracked([b"", b"", Boom()])), raise_app_exceptions=False)
    assert (response.status, response.aborted, response.headers) == (500, False, ())
    assert isinstance(response.error, Boom)


def test_an_empty_write_sends_the_headers() -> None:
    """PEP 3333: headers go out "upon the application's first invocation of the write()
    callable", an empty one too: a failure after it aborts."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("201 Created", [("Content-Type", "x/y")])
        write(b"")
        raise Boom

    response = call_wsgi(app, raise_app_exceptions=False)
    assert (response.status, response.aborted, response.body) == (201, True, b"")


def test_write_and_the_iterable_keep_their_order() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "x/y")])
        write(b"1")
        write(b"2")
        return [b"3", b"", b"4"]

    response = call_wsgi(app)
    assert (response.body, response.chunks) == (b"1234", (b"1", b"2", b"3", b"", b"4"))


def _recovering(after: list[bytes]) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "x/y")])
        yield from after
        try:
            raise Boom
        except Boom:
            start_response("503 Busy", [("Content-Type", "x/z")], sys.exc_info())
        yield b"sorry"

    return app


def test_exc_info_before_the_headers_replaces_the_response() -> None:
    """PEP 3333: with exc_info and no headers output yet, start_response "should replace
    the currently-stored HTTP response headers"."""
    response = call_wsgi(_recovering([b""]))
    assert (response.status, response.reason, response.headers) == (
        503,
        "Busy",
        (("Content-Type", "x/z"),),
    )
    assert response.body == b"sorry"


def test_exc_info_after_the_headers_reraises_and_aborts() -> None:
    """PEP 3333: "if exc_info is provided, and the HTTP headers have already been sent,
    start_response must raise an error, and should re-raise using the exc_info tuple"."""
    response = call_wsgi(_recovering([b"partial"]), raise_app_exceptions=False)
    assert (response.status, response.aborted, response.body) == (200, True, b"partial")
    assert isinstance(response.error, Boom)


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        pytest.param("200", [], id="no-reason-separator"),
        pytest.param("20 OK", [], id="two-digits"),
        pytest.param("200 O\nK", [], id="control-in-status"),
        pytest.param("200 OK", [("Bad Name", "x")], id="name-not-token"),
        pytest.param("200 OK", [("X", "a\rb")], id="cr-in-value"),
        pytest.param("200 OK", [("X", "\u20ac")], id="not-latin-1"),
        pytest.param("200 OK", [("Connection", "close")], id="hop-by-hop"),
        pytest.param("200 OK", [("Content-Length", "ten")], id="bad-content-length"),
        pytest.param("200 OK", (("X", "y"),), id="not-a-list"),
    ],
)
def test_start_response_refuses_what_pep_3333_forbids(status: str, headers: Any) -> None:
    response = call_wsgi(_returning([b"x"], headers, status), raise_app_exceptions=False)
    assert response.status == 500
    assert isinstance(response.error, InvalidResponse)


def test_start_response_twice_without_exc_info_is_an_error() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        start_response("404 Not Found", [])
        return []

    with pytest.raises(InvalidResponse, match="twice"):
        call_wsgi(app)


def test_a_body_without_start_response_is_an_error() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return [b"x"]

    with pytest.raises(InvalidResponse, match="start_response"):
        call_wsgi(app)


def test_the_apps_exception_is_raised_after_the_request() -> None:
    """As Starlette's TestClient and httpx's transports do, unless told otherwise."""
    tracked = Tracked([b"a", Boom("boom")])
    with pytest.raises(Boom, match="boom"):
        call_wsgi(_returning(tracked))
    assert tracked.closed == 1


def test_disconnect_after_stops_iteration_and_write() -> None:
    tracked = Tracked([b"a", b"", b"b", b"c"])
    response = call_wsgi(_returning(tracked), disconnect_after=2)
    assert (response.body, response.disconnected, tracked.pulled) == (b"ab", True, 3)

    def writer(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"a")
        write(b"b")
        return []

    left = call_wsgi(writer, disconnect_after=1)
    assert (left.status, left.body, left.disconnected) == (200, b"a", True)
    assert isinstance(left.error, BrokenPipeError)
    gone = call_wsgi(writer, disconnect_after=0)
    assert (gone.status, gone.body) == (None, b"")


def test_truncated_body_raises_from_the_read_past_what_was_sent() -> None:
    request = Request("POST", "/", headers=[("Content-Length", "10")], body=b"abc", truncated=True)
    seen: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        seen.append(stream.read(2))
        stream.read(10)
        return []

    response = call_wsgi(app, request)
    assert seen == [b"ab"]
    assert isinstance(response.error, ConnectionResetError)
    assert (response.status, response.disconnected, response.received) == (None, True, b"ab")


@pytest.mark.timeout(180)  # generous: a loaded machine runs Hypothesis several times slower
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"\n")),
    ops=st.lists(
        st.tuples(st.sampled_from(["read", "readline", "readlines", "iter"]), st.integers(-1, 9)),
        max_size=8,
    ),
)
def test_input_reads_like_a_file(body: bytes, ops: list[tuple[str, int]]) -> None:
    """Any sequence of reads gives what io.BytesIO gives."""

    def run(stream: Any) -> list[object]:
        results: list[object] = []
        for name, arg in ops:
            if name == "iter":
                results.append(next(iter(stream), None))
            else:
                results.append(getattr(stream, name)(arg))
        results.append(stream.read(-1))
        return results

    seen: list[object] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.extend(run(environ["wsgi.input"]))
        start_response("200 OK", [])
        return []

    response = call_wsgi(app, Request("POST", "/", body=body))
    assert seen == run(io.BytesIO(body))
    assert response.received == body


# ------------------------------------------------------------------------------ call_asgi


def _asgi(*messages: Message, fail: BaseException | None = None) -> Any:
    """An ASGI app that sends ``messages``, then raises ``fail`` if given."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)
        if fail is not None:
            raise fail

    return app


START: Message = {"type": "http.response.start", "status": 200, "headers": []}


def _body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_scope_is_built_as_asgi_servers_build_it() -> None:
    request = Request("GET", "/app/a%2Fb?x=1", root_path="/app", headers=[("X-Id", "7")])
    assert asgi_scope(request) == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/app/a/b",
        "raw_path": b"/app/a%2Fb",
        "query_string": b"x=1",
        "root_path": "/app",
        "headers": [(b"x-id", b"7")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "extensions": {},
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("chunks", "truncated", "expected"),
    [
        pytest.param((), False, [(b"", False)], id="no-body"),
        pytest.param(
            (b"a", b"", b"bc"), False, [(b"a", True), (b"", True), (b"bc", False)], id="chunks"
        ),
        pytest.param((b"a",), True, [(b"a", True)], id="truncated"),
        pytest.param((), True, [], id="gone-at-once"),
    ],
)
async def test_the_body_goes_in_the_chunks_given_then_disconnect(
    chunks: tuple[bytes, ...], truncated: bool, expected: list[tuple[bytes, bool]]
) -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect" or not message["more_body"]:
                break
        if truncated:
            return
        await send(START)
        await send(_body(b"ok"))
        received.append(await receive())

    request = Request("POST", "/", body=chunks, truncated=truncated)
    response = await call_asgi(app, request)
    requests_ = [(m["body"], m["more_body"]) for m in received if m["type"] == "http.request"]
    assert requests_ == expected
    assert received[-1] == {"type": "http.disconnect"}
    assert response.received == b"".join(chunks)
    assert response.disconnected == truncated


@pytest.mark.anyio
async def test_receive_waits_for_the_end_of_the_response() -> None:
    """ASGI: http.disconnect comes "if receive is called after a response has been sent
    or after the HTTP connection has been closed"; before that, receive() waits."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await receive()  # nothing left to say until the response ends: waits for ever

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 s"):
        await call_asgi(app, timeout=0.2)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("messages", "status", "aborted", "body"),
    [
        pytest.param((), 500, False, b"", id="before-start"),
        pytest.param((START,), 500, False, b"", id="after-start"),
        pytest.param((START, _body(b"", True)), 500, False, b"", id="after-an-empty-body"),
        pytest.param((START, _body(b"ab", True)), 200, True, b"ab", id="after-a-byte"),
        pytest.param((START, _body(b"ab")), 200, False, b"ab", id="after-the-end"),
    ],
)
async def test_failures_are_500_until_the_first_body_byte_then_aborts(
    messages: tuple[Message, ...], status: int, aborted: bool, body: bytes
) -> None:
    """ASGI: servers "need not flush the data generated by [http.response.start] to the
    send buffer until the first Response Body event is processed"; this one holds it
    until a body byte or the end."""
    response = await call_asgi(_asgi(*messages, fail=Boom()), raise_app_exceptions=False)
    assert (response.status, response.aborted, response.body) == (status, aborted, body)
    assert isinstance(response.error, Boom)
    with pytest.raises(Boom):
        await call_asgi(_asgi(*messages, fail=Boom()))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("messages", "status"),
    [
        pytest.param((), 500, id="no-response"),
        pytest.param((START,), 500, id="no-body"),
        pytest.param((START, _body(b"a", True)), 200, id="no-final-body"),
    ],
)
async def test_returning_before_the_end_is_an_error(
    messages: tuple[Message, ...], status: int
) -> None:
    response = await call_asgi(_asgi(*messages), raise_app_exceptions=False)
    assert response.status == status
    assert response.aborted == (status == 200)
    assert isinstance(response.error, InvalidResponse)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "messages",
    [
        pytest.param((_body(b"x"),), id="body-before-start"),
        pytest.param((START, START), id="start-twice"),
        pytest.param(({**START, "status": "200"},), id="status-not-int"),
        pytest.param(({**START, "status": True},), id="status-bool"),
        pytest.param(({**START, "headers": [(b"X-Up", b"1")]},), id="upper-case-name"),
        pytest.param(({**START, "headers": [(b"x", b"a\nb")]},), id="newline-in-value"),
        pytest.param(({**START, "headers": [("x", "y")]},), id="str-header"),
        pytest.param(({**START, "trailers": True},), id="trailers-not-offered"),
        pytest.param((START, {"type": "http.response.pathsend", "path": "/"}), id="not-offered"),
        pytest.param((START, {**_body(b""), "body": "text"}), id="str-body"),
        pytest.param((START, _body(b"x"), _body(b"y")), id="after-the-end"),
        pytest.param((["http.response.start", 200],), id="not-a-dict"),
        pytest.param(
            ({**START, "headers": [(b"content-length", b"1")]}, _body(b"ab")), id="too-long"
        ),
        pytest.param(({**START, "headers": [(b"content-length", b"3")]}, _body(b"ab")), id="short"),
    ],
)
async def test_messages_the_spec_forbids_raise_from_send(messages: tuple[Message, ...]) -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            try:
                await send(message)
            except InvalidResponse as exc:
                errors.append(exc)
                raise

    response = await call_asgi(app, raise_app_exceptions=False)
    assert len(errors) == 1
    assert response.error is errors[0]


@pytest.mark.anyio
async def test_a_failure_after_the_whole_content_length_is_not_an_abort() -> None:
    """The client has every byte it was promised: a later error is reported, not an abort."""
    start = {**START, "headers": [(b"content-length", b"2")]}
    app = _asgi(start, _body(b"ab", True), fail=Boom())
    response = await call_asgi(app, raise_app_exceptions=False)
    assert (response.complete, response.body) == (True, b"ab")
    assert isinstance(response.error, Boom)


@pytest.mark.anyio
async def test_head_response_may_fall_short_of_its_content_length() -> None:
    app = _asgi({**START, "headers": [(b"content-length", b"3")]}, _body(b""))
    response = await call_asgi(app, Request("HEAD", "/"))
    assert response.complete
    assert response.headers == (("content-length", "3"),)


@pytest.mark.anyio
async def test_disconnect_after_makes_send_raise_and_receive_disconnect() -> None:
    """ASGI: "If send() is called on a closed connection the server should raise a
    server-specific subclass of OSError"."""
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send(_body(b"a", True))  # the one body message the client takes
        try:
            await send(_body(b"", True))
        except OSError as exc:
            seen.append(exc)
        seen.append((await receive())["type"])

    response = await call_asgi(app, Request("POST", "/", body=b"unread"), disconnect_after=1)
    assert isinstance(seen[0], OSError)
    assert seen[1] == "http.disconnect"
    assert (response.status, response.body, response.disconnected) == (200, b"a", True)
    assert response.error is None


@pytest.mark.anyio
async def test_a_client_gone_at_once_gets_nothing() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.request"
        await send(START)

    response = await call_asgi(app, disconnect_after=0, raise_app_exceptions=False)
    assert (response.status, response.disconnected) == (None, True)
    assert isinstance(response.error, OSError)


@pytest.mark.anyio
async def test_state_reaches_the_scope_as_a_copy() -> None:
    """ASGI: "state [...] A copy of the namespace passed into the lifespan"."""
    state = {"pool": "pool-1"}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"]["written by the request"] = True
        await send(START)
        await send(_body(repr(sorted(scope["state"])).encode()))

    response = await call_asgi(app, state=state)
    assert response.body == b"['pool', 'written by the request']"
    assert state == {"pool": "pool-1"}
    assert "state" not in asgi_scope(Request())


@pytest.mark.anyio
async def test_every_message_sent_is_kept() -> None:
    messages = (START, _body(b"a", True), {"type": "http.response.body"})
    response = await call_asgi(_asgi(*messages))
    assert response.messages == messages
    assert (response.body, response.chunks) == (b"a", (b"a", b""))
