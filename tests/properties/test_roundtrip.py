"""Round trips through both adapters, checked with Hypothesis.

For any generated request and app:

* ``asgi_to_wsgi(wsgi_to_asgi(app))`` answers as the WSGI ``app`` does, and
  ``wsgi_to_asgi(asgi_to_wsgi(app))`` as the ASGI ``app`` does: status, headers (names
  compared in any case), body bytes, and whether the response completed, failed before it
  started (500) or was aborted after it started;
* the inner app observes what the outer one was given: the environ's CGI variables or the
  scope's request fields, and the request body it read;
* each single direction answers as a spec-conforming server says the wrapped app must.

What is not byte-identical by design is normalised in :func:`converted_environ`,
:func:`converted_scope` and :func:`canonical`, each rule with the spec sentence that allows
it; docs/conversion.md lists them ("What changes across a conversion").
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from crossgate import ASGIApp, WSGIApp, asgi_to_wsgi, wsgi_to_asgi
from crossgate._types import Environ, Receive, Send, StartResponse
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI, Backend
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.testing import Request, Response, call_asgi, call_wsgi
from crossgate.testing.strategies import (
    Outcome,
    ScriptedASGIApp,
    ScriptedWSGIApp,
    asgi_apps,
    asgi_behaviours,
    requests,
    wsgi_apps,
    wsgi_behaviours,
)
from tests.loops import LOOPS, run_on

# Example counts keep the file within seconds on an idle CI machine; a loaded one can take
# several times longer, hence the generous bound per test.
pytestmark = pytest.mark.timeout(180)

# CROSSGATE_EXAMPLES=2000 (with --timeout=0) for a long local hunt; CI keeps to seconds.
SETTINGS = settings(
    max_examples=int(os.environ.get("CROSSGATE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

Scope = MutableMapping[str, Any]


@pytest.fixture(autouse=True)
def _quiet_crossgate(caplog: pytest.LogCaptureFixture) -> None:
    # Hundreds of failing apps would fill the report with expected tracebacks.
    caplog.set_level(logging.CRITICAL, logger="crossgate")


@contextmanager
def wsgi_round_trip(app: WSGIApp) -> Iterator[ASGIToWSGI]:
    inner = wsgi_to_asgi(app, workers=2)
    outer = asgi_to_wsgi(inner, lifespan="off")
    try:
        yield outer
    finally:
        outer.close()
        inner.pool.shutdown()


@contextmanager
def asgi_round_trip(app: ASGIApp) -> Iterator[WSGIToASGI]:
    inner = asgi_to_wsgi(app, lifespan="off")
    outer = wsgi_to_asgi(inner, workers=2)
    try:
        yield outer
    finally:
        outer.pool.shutdown()
        inner.close()


# -------------------------------------------------------------------------- normalisations


def canonical(outcome: Outcome | Response) -> dict[str, Any]:
    """The comparable part of an outcome or a response.

    An abort before any body byte is a 500: PEP 3333 lets an empty ``write()`` commit the
    headers, but an ASGI server holds ``http.response.start`` "until the first Response
    Body event is processed" (ASGI spec), so nothing went out yet and a 500 can still be
    sent. Header names are compared lower-cased (RFC 9110 5.1: "Field names are
    case-insensitive"; ASGI: "Header names must be lowercased").
    """
    kind: str
    status: int | None
    if isinstance(outcome, Outcome):
        kind, status = outcome.kind, outcome.status
    else:
        kind, status = ("aborted" if outcome.aborted else "complete"), outcome.status
    if kind == "aborted" and not outcome.body:
        kind = "error"
    if kind == "error":
        return {"kind": "error"}
    return {
        "kind": kind,
        "status": status,
        "headers": [(name.lower(), value) for name, value in outcome.headers],
        "body": outcome.body,
    }


def same_answer(expected: Outcome, response: Response, *, converted: bool) -> None:
    """``response`` is what a server must answer for ``expected``. A 500 is a 500 whoever
    wrote its headers and body (the driver, or an adapter)."""
    want = canonical(expected)
    got = canonical(response)
    if want["kind"] == "error":
        assert got["kind"] == "error" or (got["kind"] == "complete" and got["status"] == 500)
        # Unconverted, the driver itself answered the 500 and kept the app's exception.
        assert converted or response.error is not None
        return
    assert got == want


def converted_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """The CGI variables a WSGI app sees after WSGI -> ASGI -> WSGI."""
    # PEP 3333 CONTENT_TYPE, CONTENT_LENGTH: "May be empty or absent": empty is absent.
    result = {k: v for k, v in environ.items() if v or k not in ("CONTENT_TYPE", "CONTENT_LENGTH")}
    # ASGI: "method (Unicode string) -- The HTTP method name, uppercased."
    result["REQUEST_METHOD"] = environ["REQUEST_METHOD"].upper()
    return result


def converted_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """The request fields an ASGI app sees after ASGI -> WSGI -> ASGI."""
    result = dict(scope)
    joined: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if b"_" in name:
            # Dropped: "X_Id" and "X-Id" would both be HTTP_X_ID in the environ (PEP 3333
            # HTTP_ variables), letting a client spoof a header a proxy sets.
            continue
        if name in joined:
            # RFC 9110 5.3: field lines of one name may be combined "by appending each
            # subsequent field line value to the initial field line value in order,
            # separated by a comma"; RFC 9113 8.2.3: Cookie with "; ".
            joined[name] += (b"; " if name == b"cookie" else b",") + value
        else:
            joined[name] = value
    # PEP 3333 CONTENT_TYPE, CONTENT_LENGTH: "May be empty or absent": empty is absent.
    result["headers"] = [
        (name, value)
        for name, value in joined.items()
        if value or name not in (b"content-type", b"content-length")
    ]
    return result


def _disconnects(received: list[str]) -> list[str]:
    # How the body is cut into http.request messages is the server's choice (ASGI: "If
    # more_body is set, treat as start of body and concatenate on further chunks").
    return [kind for kind in received if kind != "http.request"]


# ------------------------------------------------------------------------------ properties


@SETTINGS
@given(request=requests(), app=wsgi_apps())
def test_wsgi_round_trip_answers_as_the_wsgi_app(request: Request, app: ScriptedWSGIApp) -> None:
    """asgi_to_wsgi(wsgi_to_asgi(app)) answers as app does, and app sees the same request."""
    expected = app.behaviour.expected(request)
    direct = call_wsgi(app, request, raise_app_exceptions=False)
    with wsgi_round_trip(app) as wrapped:
        through = call_wsgi(wrapped, request, raise_app_exceptions=False)
    same_answer(expected, direct, converted=False)
    same_answer(expected, through, converted=True)
    first, second = app.calls
    want = converted_environ(first.environ)
    assert second.environ == want
    assert second.body == first.body


@pytest.mark.parametrize("loop", LOOPS)
@SETTINGS
@given(request=requests(), app=wsgi_apps())
def test_wsgi_to_asgi_answers_as_the_wsgi_app(
    loop: str, request: Request, app: ScriptedWSGIApp
) -> None:
    """wsgi_to_asgi(app) under an ASGI server answers as app under a WSGI server."""
    expected = app.behaviour.expected(request)
    adapter = wsgi_to_asgi(app, workers=2)
    try:
        response = run_on(
            loop, functools.partial(call_asgi, adapter, request, raise_app_exceptions=False)
        )
    finally:
        adapter.pool.shutdown()
    same_answer(expected, response, converted=True)
    (call,) = app.calls
    assert call.body == (request.content if app.behaviour.read != "none" else b"")


@pytest.mark.parametrize("loop", LOOPS)
@SETTINGS
@given(request=requests(), app=asgi_apps(hop_by_hop=True))
def test_asgi_round_trip_answers_as_the_asgi_app(
    loop: str, request: Request, app: ScriptedASGIApp
) -> None:
    """wsgi_to_asgi(asgi_to_wsgi(app)) answers as app does, and app sees the same request."""
    expected = app.behaviour.expected(request)
    direct = run_on(loop, functools.partial(call_asgi, app, request, raise_app_exceptions=False))
    with asgi_round_trip(app) as wrapped:
        through = run_on(
            loop, functools.partial(call_asgi, wrapped, request, raise_app_exceptions=False)
        )
    same_answer(expected, direct, converted=False)
    same_answer(_without_hop_by_hop(expected), through, converted=True)
    first, second = app.calls
    want = converted_scope(first.scope)
    assert second.scope == want
    if app.behaviour.read == "first":
        # One message: how much of the body it holds is up to the server.
        assert request.content.startswith(first.body)
        assert request.content.startswith(second.body)
    else:
        assert second.body == first.body
    assert _disconnects(second.received) == _disconnects(first.received)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@SETTINGS
@given(request=requests(), app=asgi_apps(hop_by_hop=True))
def test_asgi_to_wsgi_answers_as_the_asgi_app(
    request: Request, app: ScriptedASGIApp, backend: Backend
) -> None:
    """asgi_to_wsgi(app) under a WSGI server answers as app under an ASGI server."""
    expected = app.behaviour.expected(request)
    adapter = asgi_to_wsgi(app, lifespan="off", backend=backend)
    try:
        response = call_wsgi(adapter, request, raise_app_exceptions=False)
    finally:
        adapter.close()
    same_answer(_without_hop_by_hop(expected), response, converted=True)
    (call,) = app.calls
    if app.behaviour.read == "all":
        assert call.body == request.content


def _without_hop_by_hop(outcome: Outcome) -> Outcome:
    # PEP 3333: "Applications and middleware are forbidden from using HTTP/1.1 "hop-by-hop"
    # features or headers"; ASGI lets an app send them, so asgi_to_wsgi drops them.
    headers = tuple(pair for pair in outcome.headers if pair[0].lower() != "connection")
    return Outcome(outcome.kind, outcome.status, headers, outcome.body)


# --------------------------------------------- the adapter bugs they found, kept as examples


def _path_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode("latin-1"), b" ", environ["RAW_URI"].encode("latin-1")]


def test_non_utf8_path_survives_a_wsgi_round_trip() -> None:
    """A path whose bytes are not UTF-8 (``%FF``) reaches the app with the same PATH_INFO
    and RAW_URI through WSGI -> ASGI -> WSGI."""
    request = Request("GET", "/caf%C3%A9/%FF")
    direct = call_wsgi(_path_app, request)
    inner = wsgi_to_asgi(_path_app, workers=1)
    outer = asgi_to_wsgi(inner, lifespan="off")
    try:
        through = call_wsgi(outer, request)
    finally:
        outer.close()
        inner.pool.shutdown()
    assert direct.body == b"/caf\xc3\xa9/\xff /caf%C3%A9/%FF"
    assert through.body == direct.body


async def _path_echo(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode("utf-8")})


@pytest.mark.parametrize("loop", LOOPS)
def test_non_utf8_path_survives_an_asgi_round_trip(loop: str) -> None:
    """An ASGI app sees the same ``path`` through ASGI -> WSGI -> ASGI, for bytes that are
    not UTF-8 too (servers decode them to U+FFFD; raw_path keeps the bytes)."""
    request = Request("GET", "/caf%C3%A9/%FF")
    direct = run_on(loop, functools.partial(call_asgi, _path_echo, request))
    with asgi_round_trip(_path_echo) as wrapped:
        through = run_on(loop, functools.partial(call_asgi, wrapped, request))
    assert direct.body == "/café/\ufffd".encode()
    assert through.body == direct.body


async def _fails_after_a_body_byte(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("fails after its first body byte")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_asgi_app_failing_after_a_body_byte_is_aborted_not_500(backend: Backend) -> None:
    """ASGI: a server "must flush any data passed to them into the send buffer before
    returning from a send call"; once a byte went out, a failure aborts the response."""
    adapter = asgi_to_wsgi(_fails_after_a_body_byte, lifespan="off", backend=backend)
    try:
        response = call_wsgi(adapter, Request(), raise_app_exceptions=False)
    finally:
        adapter.close()
    assert (response.status, response.aborted, response.body) == (200, True, b"partial")


def _yields_then_fails(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    raise RuntimeError("fails after its first body byte")


@pytest.mark.parametrize("loop", LOOPS)
def test_wsgi_app_failing_after_a_body_byte_is_aborted_not_500(loop: str) -> None:
    """PEP 3333: once a non-empty chunk was yielded the headers are sent, so a later error
    aborts the response. The chunk is lost only when the loop has not taken it yet, a race:
    20 tries, every one must be aborted with the chunk."""
    outcomes = []
    for _ in range(20):
        adapter = wsgi_to_asgi(_yields_then_fails, workers=1)
        try:
            response = run_on(
                loop, functools.partial(call_asgi, adapter, Request(), raise_app_exceptions=False)
            )
        finally:
            adapter.pool.shutdown()
        outcomes.append((response.status, response.aborted, response.body))
    assert outcomes == [(200, True, b"partial")] * 20


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_receive_after_the_response_says_disconnect(backend: Backend) -> None:
    """ASGI: "http.disconnect -- Sent to the application if receive is called after a
    response has been sent", a request body left unread or not (a streamed one already
    gets http.disconnect)."""
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        seen.append((await receive())["type"])

    adapter = asgi_to_wsgi(app, lifespan="off", backend=backend)
    try:
        call_wsgi(adapter, Request("POST", "/", body=b"never read"))
    finally:
        adapter.close()  # waits for the app to finish
    assert seen == ["http.disconnect"]


# -------------------------------------------------------------- clients that leave mid-upload

_UPLOADS = requests(truncated=True).filter(lambda request: request.truncated)


def _reading(mode: str) -> Any:
    return lambda behaviour: dataclasses.replace(behaviour, read=mode)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request=_UPLOADS,
    app=wsgi_behaviours(failures=False).map(_reading("read")).map(ScriptedWSGIApp),
)
def test_a_truncated_upload_raises_in_the_wsgi_app_through_a_round_trip(
    request: Request, app: ScriptedWSGIApp
) -> None:
    """DESIGN: "A truncated upload raises in the app (an OSError subclass), it is never a
    short read", directly and after WSGI -> ASGI -> WSGI."""
    direct = call_wsgi(app, request, raise_app_exceptions=False)
    with wsgi_round_trip(app) as wrapped:
        through = call_wsgi(wrapped, request, raise_app_exceptions=False)
    assert (direct.status, direct.disconnected) == (None, True)
    assert (through.status, through.disconnected) == (None, True)
    # The inner app may not be called at all: when the first read of wsgi.input already
    # fails, the ASGI side sees http.disconnect before any request message, and there is
    # nobody to answer.
    assert len(app.calls) in (1, 2)
    for call in app.calls:
        assert isinstance(call.read_error, OSError)


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request=_UPLOADS, app=asgi_behaviours(failures=False).map(_reading("all")).map(ScriptedASGIApp)
)
def test_a_truncated_upload_ends_in_disconnect_for_the_asgi_app_through_a_round_trip(
    loop: str, request: Request, app: ScriptedASGIApp
) -> None:
    """ASGI: http.disconnect is "Sent to the application if receive is called [...] after
    the HTTP connection has been closed", directly and after ASGI -> WSGI -> ASGI."""
    direct = run_on(loop, functools.partial(call_asgi, app, request, raise_app_exceptions=False))
    with asgi_round_trip(app) as wrapped:
        through = run_on(
            loop, functools.partial(call_asgi, wrapped, request, raise_app_exceptions=False)
        )
    assert direct.disconnected
    assert through.disconnected
    for call in app.calls:
        assert call.received[-1] == "http.disconnect"
        assert request.content.startswith(call.body)
