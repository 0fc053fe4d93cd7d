"""Differential tests: crossgate beside its peers, on the same requests and apps.

Part 1 (agreement): where the peers are correct, they and crossgate answer alike. Generated
requests and WSGI apps go through ``crossgate.WSGIToASGI``, ``a2wsgi.WSGIMiddleware`` and
``asgiref.wsgi.WsgiToAsgi``; generated requests and ASGI apps through
``crossgate.ASGIToWSGI`` and ``a2wsgi.ASGIMiddleware``. The strategies stay inside what
every peer gets right (listed at each strategy), and the comparison normalises only what
the specs leave open: how a body is split into messages (compared joined) and empty body
messages.

Part 2 (differences): each case where crossgate deliberately differs from a2wsgi,
asgiref, uvicorn's or Starlette's WSGI middleware, one test each, asserting what the peer
does and what crossgate does. ``docs/differences.md`` lists the same cases, test by test.
If a peer changes, its test fails and the document must be updated.

Specs: PEP 3333 (https://peps.python.org/pep-3333/), the ASGI HTTP spec
(https://asgi.readthedocs.io/en/latest/specs/www.html).
"""

from __future__ import annotations

import asyncio
import io
import re
import string
import sys
import threading
import time
import warnings
import wsgiref.handlers
import wsgiref.util
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import a2wsgi
import a2wsgi.asgi
import anyio
import asgiref.wsgi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossgate import ASGIToWSGI, ClientDisconnected, WSGIToASGI
from crossgate._types import Environ, Message, Receive, Send, StartResponse
from tests.loops import run_on

# The peers, typed loosely: their own hints are narrower than the spec aliases used here.
A2wsgiASGI: Any = a2wsgi.ASGIMiddleware
A2wsgiWSGI: Any = a2wsgi.WSGIMiddleware
ASGIResponder: Any = a2wsgi.asgi.ASGIResponder
AsgirefWSGI: Any = asgiref.wsgi.WsgiToAsgi

with warnings.catch_warnings():
    # Both are deprecated (they point to a2wsgi) and warn on import or construction; they
    # are here because users still run them. (StarletteDeprecationWarning is not a
    # DeprecationWarning.)
    warnings.simplefilter("ignore")
    import starlette.middleware.wsgi
    import uvicorn.middleware.wsgi

StarletteWSGI: Any = starlette.middleware.wsgi.WSGIMiddleware
UvicornWSGI: Any = uvicorn.middleware.wsgi._WSGIMiddleware

#: Seconds a request may take before it counts as a hang (never reached when green).
BOUND = 10.0
WSGIApplication = Callable[[Environ, StartResponse], Iterable[bytes]]
ASGIApplication = Callable[[Any, Receive, Send], Any]

# --------------------------------------------------------------------------------------------
# An ASGI server, simulated: one request, everything recorded
# --------------------------------------------------------------------------------------------


class Client:
    """One HTTP request as an ASGI server hands it to an app, and what the app answered.

    ``cut``: the client leaves right after the last body chunk (a truncated upload).
    ``leave_after``: the client leaves once that many body messages were sent; like
    uvicorn, the server then drops what is sent and receive() says http.disconnect.
    """

    def __init__(
        self,
        *,
        method: str = "GET",
        path: str = "/",
        raw_path: bytes | None = None,
        root_path: str = "",
        query: bytes = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: Sequence[bytes] = (b"",),
        cut: bool = False,
        leave_after: int | None = None,
    ) -> None:
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode() if raw_path is None else raw_path,
            "query_string": query,
            "root_path": root_path,
            "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 51000),
            "server": ("127.0.0.1", 8000),
            "extensions": {},
        }
        self.body = list(body)
        self.cut = cut
        self.leave_after = leave_after
        self.receives = 0
        self.messages: list[Message] = []
        self.error: BaseException | None = None
        self.gone = False
        self._over: anyio.Event | None = None

    def as_peer(self, name: str) -> Client:
        """Tell the app which adapter runs it, in an x-peer header: not every peer puts the
        scope in the environ, every one passes the headers."""
        self.scope["headers"].append((b"x-peer", name.encode()))
        return self

    def _event(self) -> anyio.Event:
        if self._over is None:
            self._over = anyio.Event()
        return self._over

    async def receive(self) -> Message:
        self.receives += 1
        if self.body and not self.gone:
            chunk = self.body.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.body) or self.cut}
        if not (self.cut or self.gone):
            # ASGI: http.disconnect is "Sent to the application if receive is called after a
            # response has been sent or after the HTTP connection has been closed."
            await self._event().wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.gone:
            return  # what uvicorn does after a disconnect
        self.messages.append(message)
        if message["type"] == "http.response.body":
            bodies = sum(m["type"] == "http.response.body" for m in self.messages)
            if not message.get("more_body", False):
                self._event().set()
            elif self.leave_after is not None and bodies >= self.leave_after:
                self.gone = True
                self._event().set()

    async def run(self, app: ASGIApplication) -> Client:
        try:
            with anyio.fail_after(BOUND):
                await app(self.scope, self.receive, self.send)
        except TimeoutError:
            pytest.fail(f"hang: no answer within {BOUND} s")
        except Exception as exc:
            self.error = exc
        return self

    @property
    def status(self) -> int | None:
        for message in self.messages:
            if message["type"] == "http.response.start":
                status: int = message["status"]
                return status
        return None

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        for message in self.messages:
            if message["type"] == "http.response.start":
                return [(bytes(n), bytes(v)) for n, v in message.get("headers", [])]
        return []

    @property
    def body_bytes(self) -> bytes:
        return b"".join(
            bytes(m.get("body", b"")) for m in self.messages if m["type"] == "http.response.body"
        )

    @property
    def finished(self) -> bool:
        bodies = [m for m in self.messages if m["type"] == "http.response.body"]
        return bool(bodies) and not bodies[-1].get("more_body", False)


def serve(app: ASGIApplication, client: Client, loop: str = "asyncio") -> Client:
    """``client``'s request through ``app`` on a new loop: asyncio unless told (the peers
    run on asyncio only; crossgate runs on every loop of tests.loops.LOOPS)."""
    return run_on(loop, client.run, app)


# --------------------------------------------------------------------------------------------
# A WSGI server, simulated: environ in, (status, headers, body) out, always bounded
# --------------------------------------------------------------------------------------------


def make_environ(
    method: str = "GET",
    *,
    script_name: str = "",
    path_info: str = "/",
    query: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    content_length: int | None = None,
) -> Environ:
    environ: Environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "51000",
            "wsgi.input": io.BytesIO(body),
        }
    )
    for name, value in headers:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    length = len(body) if content_length is None else content_length
    if length:
        environ["CONTENT_LENGTH"] = str(length)
        environ["CONTENT_TYPE"] = "application/octet-stream"
    return environ


@dataclass
class Answer:
    """What a WSGI server got from one application call."""

    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[Any] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def body(self) -> bytes:
        return b"".join(chunk for chunk in self.chunks if isinstance(chunk, bytes))


def call_wsgi(app: WSGIApplication, environ: Environ, timeout: float = BOUND) -> Answer | None:
    """Call, iterate and close ``app`` on its own thread; None if it hangs past ``timeout``."""
    answer = Answer()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer.status, answer.headers = status, list(headers)
        return lambda data: None

    def run() -> None:
        try:
            result = app(environ, start_response)
            try:
                answer.chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            answer.error = exc

    thread = threading.Thread(target=run, name="differential-wsgi-server", daemon=True)
    thread.start()
    thread.join(timeout)
    return None if thread.is_alive() else answer


@pytest.fixture(scope="module")
def a2wsgi_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The event loop a2wsgi.ASGIMiddleware runs apps on (its own thread, as a2wsgi does by
    default), stopped and closed after the module."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="a2wsgi-loop", daemon=True)
    thread.start()
    yield loop

    async def cancel_leftovers() -> None:
        # a2wsgi leaves an app's task pending when the server refused its response (see
        # the hop-by-hop test): cancelled here rather than destroyed pending with the loop.
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=BOUND)

    asyncio.run_coroutine_threadsafe(cancel_leftovers(), loop).result(BOUND)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(BOUND)
    loop.close()


# --------------------------------------------------------------------------------------------
# The peers
# --------------------------------------------------------------------------------------------

WSGI_PEERS = ("crossgate", "a2wsgi", "asgiref", "uvicorn", "starlette")


class WSGIPeers:
    """Builds each peer's WSGI -> ASGI adapter around an app; stops their pools after."""

    def __init__(self) -> None:
        self._pools: list[Callable[[], object]] = []

    def wrap(self, name: str, app: WSGIApplication) -> ASGIApplication:
        peer: ASGIApplication
        if name == "crossgate":
            adapter = WSGIToASGI(app, workers=4)
            self._pools.append(adapter.pool.shutdown)
            peer = adapter
        elif name == "a2wsgi":
            peer = A2wsgiWSGI(app, workers=4)
            self._pools.append(peer.executor.shutdown)  # type: ignore[attr-defined]
        elif name == "asgiref":
            peer = AsgirefWSGI(app)
        elif name == "uvicorn":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                peer = UvicornWSGI(app, workers=4)
            self._pools.append(peer.executor.shutdown)  # type: ignore[attr-defined]
        else:
            assert name == "starlette"
            peer = StarletteWSGI(app)
        return peer

    def close(self) -> None:
        for shutdown in self._pools:
            shutdown()
        self._pools.clear()


@pytest.fixture
def peers() -> Iterator[WSGIPeers]:
    made = WSGIPeers()
    yield made
    made.close()


def each_wsgi_peer(
    peers: WSGIPeers, app: WSGIApplication, client: Callable[[], Client]
) -> dict[str, Client]:
    """The same request (a fresh ``client()`` each) through every peer."""
    return {name: serve(peers.wrap(name, app), client()) for name in WSGI_PEERS}


def plain(body: bytes, start_response: StartResponse, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain")])
    return [body]


# ============================================================================================
# Part 1: agreement where the peers are correct
# ============================================================================================

# Restrictions that keep every peer correct: ASCII paths of unreserved characters (so
# raw_path is the path: a2wsgi and asgiref ignore raw_path), a root_path that is a "/"
# prefix of the path, header names without "_" and no repeated Cookie (both translated
# differently on purpose, see part 2), response header values of printable ASCII without
# surrounding spaces (a2wsgi strips them, asgiref encodes ASCII), Content-Length only when
# true, reason phrases of known codes.
UNRESERVED = string.ascii_letters + string.digits + "-._~"
segments = st.text(UNRESERVED, min_size=1, max_size=6)
paths = st.lists(segments, max_size=3).map(lambda parts: "/" + "/".join(parts))
roots = st.sampled_from(["", "/app", "/app/v1"])
queries = st.text(string.ascii_letters + string.digits + "=&-.%", max_size=12)
ascii_values = st.text(string.ascii_letters + string.digits + "-=;/.,:*", max_size=12)
request_headers = st.lists(
    st.tuples(
        st.sampled_from(["accept", "x-a", "x-b", "user-agent", "authorization", "x-forwarded-for"]),
        ascii_values,
    ),
    max_size=4,
)
bodies = st.binary(max_size=400)
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])
codes = st.sampled_from([200, 201, 202, 301, 400, 403, 404, 418, 500, 503])
response_header_names = st.sampled_from(["Content-Type", "X-Custom", "Cache-Control", "ETag"])
response_headers = st.lists(st.tuples(response_header_names, ascii_values), max_size=4)
chunk_lists = st.lists(st.binary(max_size=200), max_size=6)


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(body)) for cut in cuts})
    parts, start = [], 0
    for point in points:
        parts.append(body[start:point])
        start = point
    parts.append(body[start:])
    return parts


# Environ keys each peer sets from the scope (REMOTE_PORT: asgiref sets none).
OBSERVED = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "wsgi.url_scheme",
    "wsgi.version",
)


@dataclass
class WSGIPlan:
    status: str
    headers: list[tuple[str, str]]
    chunks: list[bytes]
    shape: str  # "list", "generator" or "write"


class PlannedWSGIApp:
    """Reads the whole body, records the environ, answers with ``plan``."""

    def __init__(self) -> None:
        self.plan = WSGIPlan("200 OK", [], [], "list")
        self.seen: list[dict[str, Any]] = []

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        observed = {key: environ.get(key) for key in OBSERVED}
        observed.update({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        observed["body"] = environ["wsgi.input"].read()
        self.seen.append(observed)
        plan = self.plan
        write = start_response(plan.status, list(plan.headers))
        if plan.shape == "list":
            return list(plan.chunks)
        if plan.shape == "generator":
            return iter(plan.chunks)
        for chunk in plan.chunks:
            write(chunk)
        return []


@pytest.fixture(scope="module")
def wsgi_adapters() -> Iterator[tuple[PlannedWSGIApp, dict[str, ASGIApplication]]]:
    app = PlannedWSGIApp()
    made = WSGIPeers()
    adapters = {name: made.wrap(name, app) for name in ("crossgate", "a2wsgi", "asgiref")}
    yield app, adapters
    made.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=methods,
    root=roots,
    path=paths,
    query=queries,
    headers=request_headers,
    body=bodies,
    cuts=st.lists(st.integers(0, 400), max_size=4),
    code=codes,
    reply_headers=response_headers,
    chunks=chunk_lists,
    shape=st.sampled_from(["list", "generator", "write"]),
    with_length=st.booleans(),
)
def test_wsgi_apps_answer_alike_under_crossgate_a2wsgi_and_asgiref(
    wsgi_adapters: tuple[PlannedWSGIApp, dict[str, ASGIApplication]],
    method: str,
    root: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    cuts: list[int],
    code: int,
    reply_headers: list[tuple[str, str]],
    chunks: list[bytes],
    shape: str,
    with_length: bool,
) -> None:
    """Same request, same WSGI app: same environ (the keys each sets), same body read,
    same status, headers and body bytes."""
    app, adapters = wsgi_adapters
    reply_headers = [(n, v) for n, v in reply_headers]
    if with_length:
        reply_headers.append(("Content-Length", str(sum(map(len, chunks)))))
    app.plan = WSGIPlan(f"{code} {HTTPStatus(code).phrase}", reply_headers, chunks, shape)
    request_headers_bytes = [(n.encode(), v.encode()) for n, v in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        request_headers_bytes.append((b"content-length", str(len(body)).encode()))
    answers: dict[str, Client] = {}
    # The peers run on asyncio only; crossgate also on trio and uvloop, against the same
    # reference (its asyncio answer).
    runs = [(name, adapter, "asyncio") for name, adapter in adapters.items()]
    runs += [(f"crossgate on {loop}", adapters["crossgate"], loop) for loop in ("trio", "uvloop")]
    for name, adapter, loop in runs:
        if name == "asgiref" and shape == "write":
            continue  # asgiref's start_response returns no write(): part 2
        client = Client(
            method=method,
            path=root + path,
            root_path=root,
            query=query.encode(),
            headers=request_headers_bytes,
            body=split(body, cuts),
        )
        answers[name] = serve(adapter, client, loop)
    seen = app.seen[-len(answers) :]
    app.seen.clear()
    reference = answers["crossgate"]
    assert reference.error is None
    assert reference.finished
    assert seen[0]["body"] == body
    for (name, answer), observed in zip(answers.items(), seen, strict=True):
        assert answer.error is None, name
        assert answer.finished, name
        assert observed == seen[0], name
        assert (answer.status, answer.headers, answer.body_bytes) == (
            reference.status,
            reference.headers,
            reference.body_bytes,
        ), name
    assert reference.status == code
    assert reference.headers == [(n.lower().encode(), v.encode()) for n, v in reply_headers]
    assert reference.body_bytes == b"".join(chunks)


@dataclass
class ASGIPlan:
    code: int
    headers: list[tuple[bytes, bytes]]
    parts: list[bytes]


class PlannedASGIApp:
    """Reads the whole body, records the scope, answers with ``plan``."""

    KEYS: tuple[str, ...] = ("type", "method", "path", "root_path", "query_string", "headers")
    KEYS += ("scheme", "server", "client", "http_version")

    def __init__(self) -> None:
        self.plan = ASGIPlan(200, [], [])
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        observed = {key: scope.get(key) for key in self.KEYS}
        observed["server"] = tuple(observed["server"])
        observed["client"] = tuple(observed["client"])
        observed["headers"] = [(bytes(n), bytes(v)) for n, v in observed["headers"]]
        observed["body"] = body
        self.seen.append(observed)
        plan = self.plan
        await send({"type": "http.response.start", "status": plan.code, "headers": plan.headers})
        for part in plan.parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=methods,
    root=roots,
    path=paths,
    query=st.text(string.ascii_letters + string.digits + "=&-.", max_size=12),
    headers=request_headers,
    body=bodies,
    code=codes,
    reply_headers=response_headers,
    parts=chunk_lists,
)
def test_asgi_apps_answer_alike_under_crossgate_and_a2wsgi(
    a2wsgi_loop: asyncio.AbstractEventLoop,
    method: str,
    root: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    code: int,
    reply_headers: list[tuple[str, str]],
    parts: list[bytes],
) -> None:
    """Same environ, same ASGI app: same scope (the keys both set), same body received,
    same status line, headers and body bytes."""
    app = PlannedASGIApp()
    app.plan = ASGIPlan(code, [(n.lower().encode(), v.encode()) for n, v in reply_headers], parts)
    crossgate = ASGIToWSGI(app, lifespan="off")
    adapters: dict[str, WSGIApplication] = {
        "crossgate": crossgate,
        "a2wsgi": A2wsgiASGI(app, loop=a2wsgi_loop),
    }
    answers: dict[str, Answer] = {}
    try:
        for name, adapter in adapters.items():
            environ = make_environ(
                method, script_name=root, path_info=path, query=query, headers=headers, body=body
            )
            answer = call_wsgi(adapter, environ)
            assert answer is not None, f"{name} hung"
            answers[name] = answer
    finally:
        crossgate.close()
    reference, other = answers["crossgate"], answers["a2wsgi"]
    assert app.seen[0] == app.seen[1]
    assert app.seen[0]["body"] == body
    assert app.seen[0]["path"] == root + path
    assert reference.error is None
    assert other.error is None
    assert (reference.status, reference.headers, reference.body) == (
        other.status,
        other.headers,
        other.body,
    )
    assert reference.status == f"{code} {HTTPStatus(code).phrase}"
    assert reference.body == b"".join(parts)


# ============================================================================================
# Part 2: deliberate differences (each one is a section of docs/differences.md)
# ============================================================================================

# ---------------------------------------------------------------- WSGI app on an ASGI server


def test_readline_with_a_size_across_chunks(peers: WSGIPeers) -> None:
    """a2wsgi's readline(size) returns b"" while the body has more to come."""
    results: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        results[environ["HTTP_X_PEER"]] = [stream.readline(10), stream.readline(10)]
        results[environ["HTTP_X_PEER"]].append(stream.read())
        return plain(b"", start_response)

    for name in ("crossgate", "a2wsgi"):
        client = Client(method="POST", body=[b"ab", b"c\nde", b"f\n"])
        client.as_peer(name)
        serve(peers.wrap(name, app), client)
    assert results["crossgate"] == [b"abc\n", b"def\n", b""]
    assert results["a2wsgi"] == [b"", b"", b"abc\ndef\n"]


def test_readlines_on_an_empty_body_and_a_last_line_without_newline(peers: WSGIPeers) -> None:
    """a2wsgi's readlines() raises IndexError on an empty body and adds a newline the body
    does not have to its last line."""
    results: dict[tuple[str, str], Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        key = (environ["HTTP_X_PEER"], environ["HTTP_X_CASE"])
        try:
            results[key] = environ["wsgi.input"].readlines()
        except Exception as exc:
            results[key] = type(exc)
        return plain(b"", start_response)

    for name in ("crossgate", "a2wsgi"):
        for sent in (b"", b"a\nb"):
            case = [(b"x-case", b"lines" if sent else b"empty")]
            client = Client(method="POST", body=[sent], headers=case).as_peer(name)
            serve(peers.wrap(name, app), client)
    assert results["crossgate", "empty"] == []
    assert results["crossgate", "lines"] == [b"a\n", b"b"]
    assert results["a2wsgi", "empty"] is IndexError
    assert results["a2wsgi", "lines"] == [b"a\n", b"b\n"]


@pytest.mark.parametrize("declared", [100, 100_000], ids=["small", "large"])
def test_an_upload_cut_by_a_disconnect(peers: WSGIPeers, declared: int) -> None:
    """a2wsgi, uvicorn's and Starlette's hand the app a short body as if complete; asgiref
    does not call the app and raises into the server; crossgate does not call the app for
    a small body (received before it runs) and answers nothing, and a large one's read()
    raises ClientDisconnected (an OSError)."""
    results: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            results[environ["HTTP_X_PEER"]] = environ["wsgi.input"].read()
        except OSError as exc:
            results[environ["HTTP_X_PEER"]] = exc
            raise
        return plain(b"", start_response)

    outcomes = {}
    for name in WSGI_PEERS:
        length = str(declared).encode()
        client = Client(method="POST", headers=[(b"content-length", length)], body=[b"abc"])
        client.cut = True
        client.as_peer(name)
        outcomes[name] = serve(peers.wrap(name, app), client)
    if declared == 100:
        assert "crossgate" not in results
        assert outcomes["crossgate"].error is None
        assert outcomes["crossgate"].messages == []
    else:
        assert isinstance(results["crossgate"], ClientDisconnected)
    for name in ("a2wsgi", "uvicorn", "starlette"):
        assert results[name] == b"abc", name
    assert "asgiref" not in results
    assert isinstance(outcomes["asgiref"].error, ValueError)


def counting_app(
    chunk: bytes, count: int, delay: float = 0.0
) -> tuple[Callable[[Environ, StartResponse], Iterable[bytes]], dict[str, int], dict[str, int]]:
    """A WSGI app that streams ``count`` chunks (``delay`` s after each) and counts, per peer
    (its X-Peer header), the chunks pulled and the calls to close()."""
    pulled: dict[str, int] = {}
    closed: dict[str, int] = {}

    class Body:
        def __init__(self, name: str) -> None:
            self.name = name
            pulled[name] = closed[name] = 0

        def __iter__(self) -> Iterator[bytes]:
            for _ in range(count):
                pulled[self.name] += 1
                yield chunk
                if delay:
                    time.sleep(delay)

        def close(self) -> None:
            closed[self.name] += 1

    def app(environ: Environ, start_response: StartResponse) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body(environ["HTTP_X_PEER"])

    return app, pulled, closed


def test_a_streaming_app_after_the_client_left(peers: WSGIPeers) -> None:
    """The peers keep pulling a generator to its end after the client left (a2wsgi, then
    close(); asgiref, uvicorn's, Starlette's never close it); crossgate stops it within a
    few chunks and closes it."""
    total = 200  # 0.4 s of producing: crossgate must stop it before its end
    # A slow producer: the disconnect has time to travel.
    app, pulled, closed = counting_app(b"x" * 10, total, delay=0.002)
    for name in WSGI_PEERS:
        client = Client(leave_after=1)
        client.as_peer(name)
        serve(peers.wrap(name, app), client)
    assert pulled["crossgate"] < total
    assert closed["crossgate"] == 1
    for name in ("a2wsgi", "asgiref", "uvicorn", "starlette"):
        assert pulled[name] == total, name
    assert closed["a2wsgi"] == 1
    for name in ("asgiref", "uvicorn", "starlette"):
        assert closed[name] == 0, name


def test_start_response_with_exc_info_before_the_body(peers: WSGIPeers) -> None:
    """a2wsgi, uvicorn's and Starlette's send the first status at once, so an error handler
    cannot replace it: the client gets 200 with the error page, then the exception. crossgate
    (and asgiref) answer the replacement status."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("failed after start_response")
        except ValueError:
            start_response(
                "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"error page"]

    answers = each_wsgi_peer(peers, app, Client)
    for name in ("crossgate", "asgiref"):
        assert (answers[name].status, answers[name].body_bytes) == (500, b"error page"), name
        assert answers[name].error is None
    for name in ("a2wsgi", "uvicorn", "starlette"):
        assert (answers[name].status, answers[name].body_bytes) == (200, b"error page"), name
        assert isinstance(answers[name].error, ValueError), name


@pytest.mark.parametrize("chunk", [10, 20_000], ids=["small", "large"])
def test_the_request_body_is_not_read_before_the_app_runs(peers: WSGIPeers, chunk: int) -> None:
    """asgiref, uvicorn's and Starlette's receive the whole body (asgiref into a temporary
    file) before calling the app, whatever its size; a2wsgi none of it. crossgate receives
    a small body (up to 64 KiB) whole, so that a slow client costs no thread, and of a
    larger one at most the first messages up to 64 KiB."""
    seen: dict[str, int] = {}
    clients: dict[str, Client] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        name = environ["HTTP_X_PEER"]
        seen[name] = clients[name].receives
        return plain(b"", start_response)

    for name in WSGI_PEERS:
        clients[name] = Client(method="POST", body=[b"0" * chunk] * 5)
        clients[name].as_peer(name)
        serve(peers.wrap(name, app), clients[name])
    # 5 x 20,000 bytes, no Content-Length: 64 KiB are received (4 messages), then it streams.
    assert seen["crossgate"] == (5 if chunk == 10 else 4)
    assert seen["a2wsgi"] == 0
    for name in ("asgiref", "uvicorn", "starlette"):
        assert seen[name] == 5, name


def test_the_iterable_is_closed(peers: WSGIPeers) -> None:
    """asgiref, uvicorn's and Starlette's never call the iterable's close()."""
    app, _, closed = counting_app(b"body", 1)
    for name in WSGI_PEERS:
        client = Client()
        client.as_peer(name)
        assert serve(peers.wrap(name, app), client).body_bytes == b"body"
    assert closed == {"crossgate": 1, "a2wsgi": 1, "asgiref": 0, "uvicorn": 0, "starlette": 0}


def test_start_response_returns_write(peers: WSGIPeers) -> None:
    """asgiref's, uvicorn's and Starlette's start_response return None, not write()."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]

    answers = each_wsgi_peer(peers, app, Client)
    for name in ("crossgate", "a2wsgi"):
        assert answers[name].body_bytes == b"written returned", name
    for name in ("asgiref", "uvicorn", "starlette"):
        assert isinstance(answers[name].error, TypeError), name
        assert answers[name].body_bytes == b"", name


def environ_value_per_peer(
    peers: WSGIPeers, key: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> dict[str, Any]:
    """What ``environ[key]`` (None when missing) is under each WSGI peer, for one request."""
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen[environ["HTTP_X_PEER"]] = environ.get(key)
        return plain(b"", start_response)

    for name in WSGI_PEERS:
        client = Client(headers=headers)
        client.as_peer(name)
        serve(peers.wrap(name, app), client)
    return seen


def test_header_names_with_underscores(peers: WSGIPeers) -> None:
    """Every peer maps "x-user_id" to HTTP_X_USER_ID, the key of "x-user-id": a client can
    add to (or spoof) a header a proxy set. crossgate drops names with "_"."""
    seen = environ_value_per_peer(
        peers, "HTTP_X_USER_ID", [(b"x-user-id", b"alice"), (b"x-user_id", b"mallory")]
    )
    assert seen.pop("crossgate") == "alice"
    assert seen == dict.fromkeys(WSGI_PEERS[1:], "alice,mallory")


def test_cookie_headers_are_joined_with_a_semicolon(peers: WSGIPeers) -> None:
    """HTTP/2 splits Cookie into several fields; every peer joins them with "," (one cookie
    "a=1,b=2" to a cookie parser); crossgate with "; "."""
    seen = environ_value_per_peer(peers, "HTTP_COOKIE", [(b"cookie", b"a=1"), (b"cookie", b"b=2")])
    assert seen.pop("crossgate") == "a=1; b=2"
    assert seen == dict.fromkeys(WSGI_PEERS[1:], "a=1,b=2")


def test_control_characters_in_a_wsgi_response_header(peers: WSGIPeers) -> None:
    """Every peer passes CR LF in a header value on to the server (header injection when
    the server writes it as is); crossgate answers 500."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-A", "v\r\nX-Injected: 1")])
        return [b"body"]

    answers = each_wsgi_peer(peers, app, Client)
    assert answers["crossgate"].status == 500
    assert all(b"\r\n" not in value for _, value in answers["crossgate"].headers)
    for name in WSGI_PEERS[1:]:
        headers = [(n.lower(), v) for n, v in answers[name].headers]  # uvicorn's keeps case
        assert (b"x-a", b"v\r\nX-Injected: 1") in headers, name


def test_a_body_longer_than_its_content_length(peers: WSGIPeers) -> None:
    """a2wsgi, uvicorn's and Starlette's send the whole body; crossgate (and asgiref) cut it
    at Content-Length."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"abc", b"def"]

    answers = each_wsgi_peer(peers, app, Client)
    for name in ("crossgate", "asgiref"):
        assert answers[name].body_bytes == b"abc", name
    for name in ("a2wsgi", "uvicorn", "starlette"):
        assert answers[name].body_bytes == b"abcdef", name


def test_server_port_is_a_string(peers: WSGIPeers) -> None:
    """uvicorn's and Starlette's put the port in the environ as an int."""
    seen = environ_value_per_peer(peers, "SERVER_PORT")
    assert seen == {
        "crossgate": "8000",
        "a2wsgi": "8000",
        "asgiref": "8000",
        "uvicorn": 8000,
        "starlette": 8000,
    }


def test_latin1_response_header_values(peers: WSGIPeers) -> None:
    """asgiref's, uvicorn's and Starlette's encode header values as ASCII: a latin-1 value
    fails the whole response with UnicodeEncodeError."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Name", "caf\xe9")])
        return [b"body"]

    answers = each_wsgi_peer(peers, app, Client)
    for name in ("crossgate", "a2wsgi"):
        assert (b"x-name", b"caf\xe9") in answers[name].headers, name
        assert answers[name].body_bytes == b"body", name
    for name in ("asgiref", "uvicorn", "starlette"):
        assert isinstance(answers[name].error, UnicodeEncodeError), name
        assert answers[name].status is None, name


# ---------------------------------------------------------------- ASGI app on a WSGI server


def asgi_reply(
    status: int = 200, headers: Sequence[tuple[bytes, bytes]] = (), body: Any = b"body"
) -> ASGIApplication:
    async def app(scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    return app


def both_asgi(
    app: ASGIApplication, loop: asyncio.AbstractEventLoop, **environ: Any
) -> dict[str, Answer | None]:
    crossgate = ASGIToWSGI(app, lifespan="off")
    try:
        return {
            "crossgate": call_wsgi(crossgate, make_environ(**environ)),
            "a2wsgi": call_wsgi(A2wsgiASGI(app, loop=loop), make_environ(**environ)),
        }
    finally:
        crossgate.close()


def test_a_status_code_without_a_known_reason(a2wsgi_loop: asyncio.AbstractEventLoop) -> None:
    """a2wsgi invents the reason "Unknown Status Code"; crossgate leaves it empty."""
    answers = both_asgi(asgi_reply(599), a2wsgi_loop)
    assert answers["crossgate"] is not None
    assert answers["a2wsgi"] is not None
    assert answers["crossgate"].status == "599 "
    assert answers["a2wsgi"].status == "599 Unknown Status Code"


def test_hop_by_hop_headers_from_an_asgi_app(a2wsgi_loop: asyncio.AbstractEventLoop) -> None:
    """a2wsgi hands Connection to the WSGI server, and wsgiref's server answers 500 for it;
    crossgate drops it."""
    app = asgi_reply(headers=[(b"content-type", b"text/plain"), (b"connection", b"close")])
    crossgate = ASGIToWSGI(app, lifespan="off")
    try:
        ours, our_log = serve_with_wsgiref(crossgate)
    finally:
        crossgate.close()
    theirs, their_log = serve_with_wsgiref(A2wsgiASGI(app, loop=a2wsgi_loop))
    assert ours.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"\r\nconnection:" not in ours.lower()
    assert not our_log
    assert theirs.startswith(b"HTTP/1.0 500 Internal Server Error\r\n")
    assert "Hop-by-hop header" in their_log


def serve_with_wsgiref(app: WSGIApplication) -> tuple[bytes, str]:
    """The bytes the standard library's WSGI server writes for one request, and its log."""
    stdout, stderr = io.BytesIO(), io.StringIO()
    handler = wsgiref.handlers.SimpleHandler(io.BytesIO(), stdout, stderr, make_environ())
    handler.run(app)
    return stdout.getvalue(), stderr.getvalue()


def test_an_asgi_app_that_returns_without_a_response(
    a2wsgi_loop: asyncio.AbstractEventLoop,
) -> None:
    """a2wsgi's server thread waits forever; crossgate answers 500."""

    async def app(scope: Any, receive: Receive, send: Send) -> None:
        return None

    crossgate = ASGIToWSGI(app, lifespan="off")
    try:
        answer = call_wsgi(crossgate, make_environ())
    finally:
        crossgate.close()
    assert answer is not None
    assert answer.status.startswith("500 ")

    # a2wsgi's responder, made directly so the stuck thread can be released afterwards.
    responder = ASGIResponder(app, a2wsgi_loop)
    stuck = threading.Thread(target=lambda: list(responder(make_environ(), lambda *a: None)))
    stuck.daemon = True
    stuck.start()
    stuck.join(1.0)
    assert stuck.is_alive(), "a2wsgi answered: update docs/differences.md"
    # What a2wsgi's responder waits for; its loop logs that it had no lock to release.
    responder.sync_event.set({"type": "http.response.disconnect"})
    stuck.join(BOUND)
    assert not stuck.is_alive()


def test_a_str_body_from_an_asgi_app(a2wsgi_loop: asyncio.AbstractEventLoop) -> None:
    """a2wsgi yields the str to the WSGI server (PEP 3333 allows only bytes); crossgate
    answers 500."""
    answers = both_asgi(asgi_reply(body="text"), a2wsgi_loop)
    assert answers["crossgate"] is not None
    assert answers["a2wsgi"] is not None
    assert answers["crossgate"].status.startswith("500 ")
    assert "text" in answers["a2wsgi"].chunks


def test_input_shorter_than_its_content_length(a2wsgi_loop: asyncio.AbstractEventLoop) -> None:
    """a2wsgi answers receive() with empty chunks and more_body=True for ever (the app below
    gives up after 50); crossgate delivers what came, then http.disconnect."""
    seen: dict[int, list[tuple[str, bytes, bool]]] = {}

    async def app(scope: Any, receive: Receive, send: Send) -> None:
        messages = seen.setdefault(id(scope), [])
        while len(messages) < 50:
            message = await receive()
            messages.append(
                (message["type"], message.get("body", b""), message.get("more_body", False))
            )
            if message["type"] != "http.request" or not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    both_asgi(app, a2wsgi_loop, method="POST", body=b"abc", content_length=10)
    crossgate, a2wsgi = seen.values()
    assert crossgate == [("http.request", b"abc", True), ("http.disconnect", b"", False)]
    assert len(a2wsgi) == 50
    assert a2wsgi[0] == ("http.request", b"abc", True)
    assert set(a2wsgi[1:]) == {("http.request", b"", True)}


def test_control_characters_in_an_asgi_response_header(
    a2wsgi_loop: asyncio.AbstractEventLoop,
) -> None:
    """a2wsgi hands CR LF in a header value to the WSGI server; crossgate answers 500."""
    answers = both_asgi(asgi_reply(headers=[(b"x-a", b"v\r\nX-Injected: 1")]), a2wsgi_loop)
    assert answers["crossgate"] is not None
    assert answers["a2wsgi"] is not None
    assert answers["crossgate"].status.startswith("500 ")
    assert answers["a2wsgi"].headers == [("x-a", "v\r\nX-Injected: 1")]


def test_docs_list_exactly_the_differences_tested_here() -> None:
    """docs/differences.md names one test per section; each is in this file, and every
    test of part 2 is in the document."""
    doc = (Path(__file__).parents[2] / "docs" / "differences.md").read_text(encoding="utf-8")
    documented = re.findall(r"^- Test: `(test_\w+)`\.$", doc, re.MULTILINE)
    source = Path(__file__).read_text(encoding="utf-8")
    part2 = source[source.index("# Part 2: deliberate differences") :]
    defined = re.findall(r"^def (test_\w+)\(", part2, re.MULTILINE)
    defined.remove("test_docs_list_exactly_the_differences_tested_here")
    assert len(documented) == len(re.findall(r"^### \d+\. ", doc, re.MULTILINE))
    assert sorted(documented) == sorted(defined)
