"""crossgate.testing.strategies: scripted apps answer as their behaviour says and record
what they saw, the strategies shrink to the simplest case, and a missing Hypothesis is a
clear ImportError."""

from __future__ import annotations

import asyncio
import importlib
import sys

import pytest
from hypothesis import HealthCheck, find, given, settings

from crossgate import lifespan
from crossgate.testing import Request, Response, asgi_scope, call_asgi, call_wsgi, wsgi_environ
from crossgate.testing.strategies import (
    ASGIBehaviour,
    Outcome,
    ScriptedASGIApp,
    ScriptedWSGIApp,
    ScriptError,
    WSGIBehaviour,
    asgi_apps,
    asgi_behaviours,
    header_lists,
    requests,
    wsgi_apps,
    wsgi_behaviours,
)

# Scripted apps under the drivers alone are cheap: no adapter, no thread.
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_answers_as_scripted(
    request: Request, app: ScriptedWSGIApp | ScriptedASGIApp, response: Response
) -> None:
    """A truncated request ends in a disconnect with no status; any other gets the
    response that the app's scripted behaviour predicts."""
    if request.truncated:
        assert response.disconnected
        assert response.status is None
    else:
        assert app.behaviour.expected(request).matches(response), response


@pytest.mark.timeout(180)  # generous: a loaded machine runs Hypothesis several times slower
@SETTINGS
@given(request=requests(truncated=True), app=wsgi_apps())
def test_call_wsgi_answers_as_the_wsgi_behaviour_says(
    request: Request, app: ScriptedWSGIApp
) -> None:
    response = call_wsgi(app, request, raise_app_exceptions=False)
    assert_answers_as_scripted(request, app, response)
    (call,) = app.calls
    seen = wsgi_environ(request)
    assert call.environ == {k: v for k, v in seen.items() if "." not in k or k == "wsgi.url_scheme"}
    if app.behaviour.read != "none" and not request.truncated:
        assert call.body == request.content == response.received
    if call.closed is not None:  # the app got to return its closing iterable
        assert call.closed


@pytest.mark.timeout(180)  # generous: a loaded machine runs Hypothesis several times slower
@SETTINGS
@given(request=requests(truncated=True), app=asgi_apps())
def test_call_asgi_answers_as_the_asgi_behaviour_says(
    request: Request, app: ScriptedASGIApp
) -> None:
    response = asyncio.run(call_asgi(app, request, raise_app_exceptions=False))
    assert_answers_as_scripted(request, app, response)
    (call,) = app.calls
    scope = asgi_scope(request)
    assert call.scope == {key: scope[key] for key in call.scope}
    if app.behaviour.read == "all":
        assert call.body == request.content
        if request.truncated:
            assert "http.disconnect" in call.received
        else:  # the body, then (await_disconnect) a disconnect once the response ended
            assert call.received[0] == "http.request"
            assert "http.disconnect" not in call.received[:-1]


def test_exc_info_recovery_answers_the_recovery_response() -> None:
    app = WSGIBehaviour(body=(b"", b"x"), body_kind="generator", failure="exc_info", fail_at=1)
    response = call_wsgi(app.app())
    assert app.expected().matches(response)
    assert (response.status, response.body) == (503, b"recovered")


def test_exc_info_after_a_byte_is_an_abort() -> None:
    app = WSGIBehaviour(body=(b"a", b"b"), body_kind="write", failure="exc_info", fail_at=1)
    response = call_wsgi(app.app(), raise_app_exceptions=False)
    assert app.expected() == Outcome("aborted", 200, (("Content-Type", "text/plain"),), b"a")
    assert app.expected().matches(response)
    assert isinstance(response.error, ScriptError)


def test_short_content_length_cuts_before_a_failure_is_reached() -> None:
    """The server stops iterating at Content-Length, so a later failure never happens."""
    app = WSGIBehaviour(
        body=(b"ab", b"cd"),
        body_kind="generator",
        content_length="short",
        failure="in_body",
        fail_at=1,
    )
    assert app.expected().kind == "complete"
    assert app.expected().body == b"ab"
    assert app.expected().matches(call_wsgi(app.app()))


@pytest.mark.parametrize(
    ("behaviour", "kind", "body"),
    [
        (ASGIBehaviour(body=(b"a", b"b"), failure="in_body", fail_at=1), "aborted", b"a"),
        (ASGIBehaviour(body=(b"", b"b"), failure="in_body", fail_at=1), "error", b""),
        (ASGIBehaviour(body=(b"a",), failure="after_end"), "complete", b"a"),
        (ASGIBehaviour(failure="return_before_start"), "error", b""),
    ],
)
def test_asgi_outcomes(behaviour: ASGIBehaviour, kind: str, body: bytes) -> None:
    expected = behaviour.expected()
    assert (expected.kind, expected.body) == (kind, body)
    response = asyncio.run(call_asgi(behaviour.app(), raise_app_exceptions=False))
    assert expected.matches(response)


def test_outcome_matching_ignores_header_case_only() -> None:
    outcome = Outcome("complete", 200, (("Content-Type", "x"),), b"b")
    assert outcome.matches(Response(200, (("content-type", "x"),), b"b"))
    assert not outcome.matches(Response(200, (("content-type", "y"),), b"b"))
    assert not outcome.matches(Response(200, (("content-type", "x"),), b"b", aborted=True))
    assert Outcome("error").matches(Response(500, (("x", "y"),), b"whatever"))
    assert not Outcome("error").matches(Response(200))


def test_scripted_apps_answer_lifespan() -> None:
    async def run() -> None:
        async with lifespan(ASGIBehaviour().app()) as state:
            assert state == {}

    asyncio.run(run())


def test_strategies_shrink_to_the_simplest_case() -> None:
    assert find(requests(), lambda _: True) == Request("GET", "/")
    assert find(wsgi_behaviours(), lambda _: True) == WSGIBehaviour(body=(), read_size=1)
    assert find(asgi_behaviours(), lambda _: True) == ASGIBehaviour(body=())
    assert find(requests(), lambda r: b"%2F" in r.raw_path) == Request("GET", "/%2F")


def test_header_lists_repeat_names_in_mixed_case() -> None:
    def mixed_repeat(headers: list[tuple[str, str]]) -> bool:
        names = [name for name, _ in headers]
        return len(names) == 2 and names[0] != names[1] and names[0].lower() == names[1].lower()

    assert mixed_repeat(find(header_lists(), mixed_repeat))


def test_strategies_without_hypothesis_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.setitem(sys.modules, "hypothesis.strategies", None)
    monkeypatch.delitem(sys.modules, "crossgate.testing.strategies")
    with pytest.raises(ImportError, match=r"pip install 'crossgate\[testing\]'"):
        importlib.import_module("crossgate.testing.strategies")
