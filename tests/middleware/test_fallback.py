"""fallback / fallback_wsgi: primary first, legacy for what primary refuses (404 or the
statuses given), the request body replayed (whole, chunked, cut off, past max_replay), a
client leaving while primary decides, primary winding down after its refusal, websockets,
root_path and url_for unchanged, lifespan of both apps, and Hypothesis properties."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import logging
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import anyio
import asgiref.sync
import flask
import httpx
import pytest
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossgate._errors import LifespanError
from crossgate._types import Environ, Message, Receive, Send, StartResponse
from crossgate.adapters._bridge import asyncio_loop
from crossgate.adapters.lifespan import LifespanManager, lifespan
from crossgate.middleware.fallback import Fallback, WSGIFallback, fallback, fallback_wsgi
from crossgate.testing import Request, call_asgi, call_wsgi
from tests.loops import LOOPS, run_on

# The module, not the function the package exports under the same name.
fallback_module = importlib.import_module("crossgate.middleware.fallback")
Scope = MutableMapping[str, Any]
CHUNKED = [("transfer-encoding", "chunked")]

pytestmark = pytest.mark.on_trio


# -- apps ------------------------------------------------------------------------------------


class Owner:
    """An ASGI app owning ``paths``: it answers them with what it saw (JSON), and refuses
    the others with ``refusal`` after reading ``reads`` body messages (-1: all of them).
    With ``events``, it has a lifespan that records its phases (and can fail one)."""

    def __init__(
        self,
        name: str,
        paths: Iterable[str] = (),
        *,
        reads: int = 0,
        refusal: int = 404,
        events: list[str] | None = None,
        fail: str | None = None,
    ) -> None:
        self.name = name
        self.paths = set(paths)
        self.reads = reads
        self.refusal = refusal
        self.events = events
        self.fail = fail
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        self.calls += 1
        if scope["type"] == "websocket":
            await receive()
            if scope["path"] in self.paths:
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": self.name})
                await send({"type": "websocket.close", "code": 1000})
            else:
                await send({"type": "websocket.close", "code": 1000})
            return
        owned = scope["path"] in self.paths
        body = b""
        messages = 0
        while owned or self.reads < 0 or messages < self.reads:
            message = await receive()
            messages += 1
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        scope["written by " + self.name] = True  # must not reach the other app
        if not owned:
            await send({"type": "http.response.start", "status": self.refusal, "headers": []})
            await send({"type": "http.response.body", "body": b"not " + self.name.encode()})
            return
        seen = {
            "app": self.name,
            "body": body.decode("latin-1"),
            "root_path": scope.get("root_path"),
            "path": scope["path"],
            "state": scope.get("state"),
            "scope_keys": sorted(key for key in scope if key.startswith("written by")),
        }
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(seen).encode()})

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.events is None:
            raise ValueError("no lifespan here")
        for phase in ("startup", "shutdown"):
            await receive()
            self.events.append(f"{self.name} {phase}")
            if phase == "startup":
                scope["state"]["who"] = self.name
            if self.fail == phase:
                await send({"type": f"lifespan.{phase}.failed", "message": f"{self.name} broke"})
                return
            await send({"type": f"lifespan.{phase}.complete"})


def wsgi_owner(name: str, paths: Iterable[str] = (), *, reads: int = 0) -> Any:
    """A WSGI app owning ``paths`` (answered with what it saw); it refuses the others with
    a 404 after reading ``reads`` bytes of the body (-1: all of it)."""
    owned = set(paths)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        if environ["PATH_INFO"] not in owned:
            if reads:
                stream.read(reads)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not " + name.encode()]
        seen = {
            "app": name,
            "body": b"".join(iter(lambda: stream.read(4096), b"")).decode("latin-1"),
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
            "keys": sorted(key for key in environ if key.startswith("written.")),
        }
        environ["written." + name] = True
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(seen).encode()]

    return app


def seen(response: Any) -> dict[str, Any]:
    assert response.status == 200, (response.status, response.body, response.error)
    found: dict[str, Any] = json.loads(response.body)
    return found


# -- routing by refusal ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_primary_answers_what_it_owns_and_legacy_the_rest() -> None:
    primary, legacy = Owner("new", ["/moved"]), Owner("old", ["/kept"])
    app = fallback(primary, legacy)
    assert seen(await call_asgi(app, Request("GET", "/moved")))["app"] == "new"
    assert legacy.calls == 0
    assert seen(await call_asgi(app, Request("GET", "/kept")))["app"] == "old"
    # Refused by both: legacy's refusal is final, primary's never went out.
    nobody = await call_asgi(app, Request("GET", "/nowhere"))
    assert (nobody.status, nobody.body) == (404, b"not old")
    assert [m["type"] for m in nobody.messages] == ["http.response.start", "http.response.body"]


@pytest.mark.anyio
async def test_only_the_statuses_given_hand_a_request_on() -> None:
    primary = Owner("new", refusal=405)
    assert (await call_asgi(fallback(primary, Owner("old")), Request())).status == 405
    app = fallback(primary, Owner("old", ["/"]), statuses=(404, 405))
    assert seen(await call_asgi(app, Request()))["app"] == "old"
    teapot = fallback(Owner("new", refusal=500), Owner("old", ["/"]))
    assert (await call_asgi(teapot, Request())).status == 500


@pytest.mark.anyio
async def test_a_streamed_answer_of_primary_goes_through_as_it_comes() -> None:
    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"a", b"", b"bc"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    response = await call_asgi(fallback(stream, Owner("old")), Request())
    assert (response.status, response.chunks) == (200, (b"a", b"", b"bc", b""))


@pytest.mark.anyio
async def test_messages_before_the_answer_go_out_without_deciding() -> None:
    sent: list[Message] = []

    async def debug(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.debug", "info": {}})
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def record(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/kept", "headers": []}
    await fallback(debug, Owner("old", ["/kept"]))(scope, receive, record)
    assert [m["type"] for m in sent] == [
        "http.response.debug",
        "http.response.start",
        "http.response.body",
    ]
    assert sent[1]["status"] == 200


# -- the request body ------------------------------------------------------------------------

BODIES = [
    pytest.param([b"hello"], id="whole"),
    pytest.param([b"h", b"", b"el", b"", b"lo"], id="chunked"),
    pytest.param([b""], id="empty"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("chunks", BODIES)
@pytest.mark.parametrize("reads", [0, 1, 2, -1], ids=["unread", "one", "two", "all"])
@pytest.mark.parametrize("length", [True, False], ids=["content-length", "no-length"])
async def test_legacy_gets_the_body_primary_read_then_the_rest(
    chunks: list[bytes], reads: int, length: bool
) -> None:
    request = Request("POST", "/kept", body=chunks, headers=() if length else CHUNKED)
    app = fallback(Owner("new", reads=reads), Owner("old", ["/kept"]))
    assert seen(await call_asgi(app, request))["body"] == "hello" * (chunks != [b""])


@pytest.mark.anyio
async def test_a_wsgi_legacy_app_reads_the_replayed_body() -> None:
    app = fallback(Owner("new", reads=-1), wsgi_owner("old", ["/kept"]))
    async with lifespan(app):  # stops the adapter's worker pool at the end
        request = Request("POST", "/kept", body=[b"he", b"llo"])
        assert seen(await call_asgi(app, request))["body"] == "hello"
        request = Request("POST", "/kept", body=[b"he", b"llo"], headers=CHUNKED)
        assert seen(await call_asgi(app, request))["body"] == "hello"


@pytest.mark.anyio
async def test_past_max_replay_primarys_refusal_goes_out_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = fallback(Owner("new", reads=-1), Owner("old", ["/kept"]), max_replay=4)
    with caplog.at_level(logging.INFO, logger="crossgate"):
        for _ in range(2):
            response = await call_asgi(app, Request("POST", "/kept", body=[b"hel", b"lo"]))
            assert (response.status, response.body) == (404, b"not new")
    assert [r.getMessage() for r in caplog.records] == [
        "crossgate.fallback: the primary app refused POST /kept after reading more than "
        "max_replay=4 body bytes: its refusal went to the client, the legacy app was not "
        "asked (logged once)"
    ]
    # What primary does not read is not counted: a router's 404 costs no memory.
    unread = fallback(Owner("new"), Owner("old", ["/kept"]), max_replay=0)
    assert seen(await call_asgi(unread, Request("POST", "/kept", body=b"x" * 100)))["app"] == "old"
    # Exactly the bound is still replayed.
    exact = fallback(Owner("new", reads=-1), Owner("old", ["/kept"]), max_replay=5)
    assert seen(await call_asgi(exact, Request("POST", "/kept", body=b"hello")))["body"] == "hello"


# -- a client that leaves, a primary that lingers or fails -----------------------------------


@pytest.mark.anyio
async def test_a_client_that_leaves_while_primary_decides_is_not_handed_on() -> None:
    legacy = Owner("old", ["/kept"])
    app = fallback(Owner("new", reads=-1), legacy)
    request = Request("POST", "/kept", body=[b"he"], truncated=True)
    response = await call_asgi(app, request, timeout=5)
    assert response.disconnected
    assert legacy.calls == 0


@pytest.mark.anyio
async def test_a_wsgi_primary_whose_client_left_is_not_handed_on() -> None:
    legacy = Owner("old", ["/kept"])
    app = fallback(wsgi_owner("new"), legacy)
    async with lifespan(app):
        request = Request("POST", "/kept", body=[b""], truncated=True)
        assert (await call_asgi(app, request, timeout=5)).status is None
    assert legacy.calls == 0


@pytest.mark.anyio
async def test_primary_lingering_after_its_refusal_is_cancelled_after_a_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fallback_module, "REFUSAL_GRACE", 0.05)
    late: list[Message] = []
    cancelled = anyio.Event()

    async def lingering(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"gone"})
        late.append(await receive())  # the request is no longer its own
        try:
            await anyio.sleep(30)
        finally:
            cancelled.set()

    app = fallback(lingering, Owner("old", ["/kept"]))
    assert seen(await call_asgi(app, Request("POST", "/kept", body=b"x"), timeout=5))["body"] == "x"
    assert cancelled.is_set()
    assert late == [{"type": "http.disconnect"}]
    # Our cancel was taken back: on asyncio the task says so; on trio the cancel scope
    # around primary absorbed it, and this task goes on waiting unhurt.
    task = asyncio.current_task() if asyncio_loop() is not None else None
    assert task is None or task.cancelling() == 0
    await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_a_cancel_from_outside_while_primary_winds_down_still_cancels() -> None:
    refused = anyio.Event()

    async def lingering(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        refused.set()
        await anyio.sleep(30)

    legacy = Owner("old", ["/"])
    ended: list[str] = []

    async def job() -> None:
        try:
            await call_asgi(fallback(lingering, legacy), Request(), timeout=5)
        except anyio.get_cancelled_exc_class():
            ended.append("cancelled")
            raise

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(job)
        await refused.wait()
        tasks.cancel_scope.cancel()
    assert ended == ["cancelled"]
    assert legacy.calls == 0


@pytest.mark.anyio
async def test_primary_failing_after_its_refusal_is_logged_and_legacy_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        raise RuntimeError("after the 404")

    with caplog.at_level(logging.ERROR, logger="crossgate"):
        response = await call_asgi(fallback(failing, Owner("old", ["/"])), Request())
    assert seen(response)["app"] == "old"
    [record] = caplog.records
    assert record.getMessage() == "the primary app failed after refusing the request"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


@pytest.mark.anyio
async def test_primary_failing_before_it_answers_is_the_servers_error() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("broken")

    response = await call_asgi(
        fallback(failing, Owner("old", ["/"])), Request(), raise_app_exceptions=False
    )
    assert response.status == 500
    assert isinstance(response.error, RuntimeError)


# -- scopes and paths ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_both_apps_see_the_scope_as_the_server_sent_it() -> None:
    app = fallback(Owner("new", ["/outer/moved"]), Owner("old", ["/outer/kept"]))
    for path, name in (("/outer/moved", "new"), ("/outer/kept", "old")):
        found = seen(await call_asgi(app, Request("GET", path, root_path="/outer")))
        assert (found["app"], found["root_path"], found["path"]) == (name, "/outer", path)
        # What primary wrote into its scope (a router's keys) did not reach legacy.
        assert found["scope_keys"] == [f"written by {name}"]


@pytest.mark.anyio
async def test_url_for_builds_the_same_urls_on_both_sides() -> None:
    api = FastAPI()

    @api.get("/users/{user}")
    async def user(user: int, request: FastAPIRequest) -> dict[str, str]:
        return {"url": str(request.url_for("user", user=user))}

    old = flask.Flask("old")

    @old.route("/users/<int:user>/avatar")
    def avatar(user: int) -> dict[str, str]:
        return {"url": flask.url_for("avatar", user=user)}

    app = fallback(api, old)
    transport = httpx.ASGITransport(app=app, root_path="/site")
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        assert (await client.get("/site/users/7")).json() == {
            "url": "http://testserver/site/users/7"
        }
        assert (await client.get("/site/users/7/avatar")).json() == {"url": "/site/users/7/avatar"}
        # A 405 of FastAPI's stays FastAPI's unless asked otherwise.
        assert (await client.post("/site/users/7")).status_code == 405


@pytest.mark.anyio
async def test_a_wsgi_primary_in_front_of_an_asgi_legacy_app() -> None:
    app = fallback(wsgi_owner("new", ["/moved"]), Owner("old", ["/kept"]))
    async with lifespan(app):
        moved = seen(await call_asgi(app, Request("POST", "/moved", body=b"x", root_path="")))
        assert (moved["app"], moved["body"]) == ("new", "x")
        assert seen(await call_asgi(app, Request("POST", "/kept", body=b"y")))["body"] == "y"


def test_sides_are_checked_at_construction() -> None:
    async def asgi(scope: Scope, receive: Receive, send: Send) -> None: ...

    with pytest.raises(TypeError, match=r"legacy: cannot tell whether .* as \(app, 'wsgi'\)"):
        fallback(asgi, lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="primary: kind must be 'asgi' or 'wsgi'"):
        fallback((asgi, "asgi3"), asgi)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="statuses must be HTTP status codes"):
        fallback(asgi, asgi, statuses=(4040,))
    with pytest.raises(ValueError, match="statuses must be HTTP status codes"):
        fallback_wsgi(asgi, asgi, statuses=())
    with pytest.raises(ValueError, match="max_replay must be 0 or more"):
        fallback(asgi, asgi, max_replay=-1)
    assert isinstance(fallback(asgi, (wsgi_owner("w"), "wsgi")), Fallback)
    assert repr(fallback(asgi, asgi)).startswith("<Fallback <function")


@pytest.mark.anyio
async def test_an_explicit_kind_overrides_detection() -> None:
    def forwarding(*args: Any) -> Any:  # ASGI, but shaped like WSGI
        return Owner("forwarded", ["/"])(*args)

    app = fallback((Owner("new"), "asgi"), (forwarding, "asgi"))
    assert seen(await call_asgi(app, Request()))["app"] == "forwarded"


@pytest.mark.anyio
async def test_other_scope_types_are_refused() -> None:
    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None: ...

    with pytest.raises(ValueError, match="cannot serve ASGI scope type 'webtransport'"):
        await fallback(Owner("a"), Owner("b"))({"type": "webtransport"}, receive, send)


# -- websockets ------------------------------------------------------------------------------


async def websocket(app: Any, path: str, extensions: dict[str, Any] | None = None) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    connected = False

    async def receive() -> Message:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        return {"type": "websocket.disconnect", "code": 1000}

    scope = {"type": "websocket", "path": path, "headers": [], "extensions": extensions or {}}
    await app(scope, receive, send)
    return sent


def deny(status: int) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": status, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    return app


@pytest.mark.anyio
async def test_a_websocket_primary_refuses_goes_to_legacy() -> None:
    legacy = Owner("old", ["/ws"])
    for primary in (Owner("new"), deny(404), deny(403)):
        sent = await websocket(fallback(primary, legacy), "/ws", {"websocket.http.response": {}})
        assert [m["type"] for m in sent] == [
            "websocket.accept",
            "websocket.send",
            "websocket.close",
        ]
        assert sent[1]["text"] == "old"
    # Accepted by primary: legacy is not asked; a denial of another status stands.
    assert (await websocket(fallback(Owner("new", ["/ws"]), legacy), "/ws"))[1]["text"] == "new"
    denied = await websocket(fallback(deny(401), legacy), "/ws", {"websocket.http.response": {}})
    assert [(m["type"], m.get("status")) for m in denied] == [
        ("websocket.http.response.start", 401),
        ("websocket.http.response.body", None),
    ]
    assert legacy.calls == 3


@pytest.mark.anyio
async def test_a_websocket_both_refuse_is_closed_once() -> None:
    assert await websocket(fallback(Owner("new"), Owner("old")), "/ws") == [
        {"type": "websocket.close", "code": 1000}
    ]


# -- lifespan --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_lifespan_starts_primary_then_legacy_and_stops_in_reverse(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    app = fallback(Owner("new", ["/moved"], events=events), Owner("old", ["/kept"], events=events))
    manager = LifespanManager(app)
    manager.state["shared"] = "from the server"
    with caplog.at_level(logging.INFO, logger="crossgate"):
        await manager.startup()
        try:
            assert events == ["new startup", "old startup"]
            server_state = manager.state
            moved = seen(await call_asgi(app, Request("GET", "/moved"), state=server_state))
            kept = seen(await call_asgi(app, Request("GET", "/kept"), state=server_state))
            # Each app's own state, over the server's.
            assert moved["state"] == {"shared": "from the server", "who": "new"}
            assert kept["state"] == {"shared": "from the server", "who": "old"}
        finally:
            await manager.shutdown()
    assert events[2:] == ["old shutdown", "new shutdown"]
    assert not caplog.records


@pytest.mark.anyio
async def test_an_app_without_a_lifespan_is_skipped() -> None:
    events: list[str] = []
    app = fallback(Owner("new"), Owner("old", ["/"], events=events))
    async with lifespan(app) as state:
        assert seen(await call_asgi(app, Request(), state=state))["state"] == {"who": "old"}
    assert events == ["old startup", "old shutdown"]


@pytest.mark.anyio
async def test_a_failed_startup_names_the_app_and_stops_primary_again() -> None:
    events: list[str] = []
    app = fallback(Owner("new", events=events), Owner("old", events=events, fail="startup"))
    with pytest.raises(LifespanError, match=r"the legacy app failed to start: .*old broke"):
        async with lifespan(app):
            pytest.fail("startup must fail")  # pragma: no cover
    assert events == ["new startup", "old startup", "new shutdown"]


@pytest.mark.anyio
async def test_a_failed_shutdown_names_the_app_and_the_other_still_stops() -> None:
    events: list[str] = []
    app = fallback(Owner("new", events=events, fail="shutdown"), Owner("old", events=events))
    with pytest.raises(LifespanError, match=r"the primary app: .*new broke"):
        async with lifespan(app):
            pass
    assert events == ["new startup", "old startup", "old shutdown", "new shutdown"]


# -- fallback_wsgi ---------------------------------------------------------------------------


def test_wsgi_primary_answers_what_it_owns_and_legacy_the_rest() -> None:
    app = fallback_wsgi(wsgi_owner("new", ["/moved"]), wsgi_owner("old", ["/kept"]))
    assert isinstance(app, WSGIFallback)
    moved = seen(call_wsgi(app, Request("GET", "/outer/moved", root_path="/outer")))
    assert (moved["app"], moved["script_name"], moved["path_info"]) == ("new", "/outer", "/moved")
    kept = seen(call_wsgi(app, Request("GET", "/outer/kept", root_path="/outer")))
    assert (kept["app"], kept["script_name"], kept["path_info"]) == ("old", "/outer", "/kept")
    assert kept["keys"] == []  # what primary wrote into its environ stayed there
    nobody = call_wsgi(app, Request("GET", "/nowhere"))
    assert (nobody.status, nobody.body) == (404, b"not old")


@pytest.mark.parametrize("reads", [0, 2, 5], ids=["unread", "part", "all"])
@pytest.mark.parametrize("length", [True, False], ids=["content-length", "no-length"])
def test_wsgi_legacy_gets_the_body_primary_read_then_the_rest(reads: int, length: bool) -> None:
    app = fallback_wsgi(wsgi_owner("new", reads=reads), wsgi_owner("old", ["/kept"]))
    request = Request("POST", "/kept", body=[b"hel", b"lo"], headers=() if length else CHUNKED)
    assert seen(call_wsgi(app, request, validate=True))["body"] == "hello"


def test_wsgi_replay_reads_lines_sizes_and_iteration() -> None:
    replay = fallback_module._Replay(b"ab\ncd", io.BytesIO(b"ef\ngh\n"))
    assert replay.readline(1) == b"a"
    assert replay.readline() == b"b\n"
    assert replay.readline(1) == b"c"
    assert replay.readline() == b"def\n"
    assert list(replay) == [b"gh\n"]
    replay = fallback_module._Replay(b"abc", io.BytesIO(b"de\nf"))
    assert replay.readline(5) == b"abcde"
    assert replay.readlines() == [b"\n", b"f"]
    replay = fallback_module._Replay(b"abc", io.BytesIO(b"def"))
    assert (replay.read(2), replay.read(None), replay.read(1)) == (b"ab", b"cdef", b"")
    replay = fallback_module._Replay(b"abc", io.BytesIO(b"defg"))
    assert (replay.read(5), replay.read(0), replay.read(-1)) == (b"abcde", b"", b"fg")
    replay = fallback_module._Replay(b"a\nb\n", io.BytesIO(b"c\n"))
    assert replay.readlines(2) == [b"a\n"]
    tape = fallback_module._Tape(io.BytesIO(b"a\nb\nc"), 10)
    assert (tape.readline(), tape.readlines(), tape.read(None)) == (b"a\n", [b"b\n", b"c"], b"")
    assert tape.kept == [b"a\n", b"b\n", b"c"]
    tape.cut = True
    assert (tape.read(), tape.readline(), list(tape)) == (b"", b"", [])


def test_wsgi_past_max_replay_primarys_refusal_goes_out_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = fallback_wsgi(wsgi_owner("new", reads=5), wsgi_owner("old", ["/kept"]), max_replay=4)
    with caplog.at_level(logging.INFO, logger="crossgate"):
        for headers in ((), CHUNKED):
            response = call_wsgi(app, Request("POST", "/kept", body=b"hello", headers=headers))
            assert (response.status, response.body) == (404, b"not new")
    assert len(caplog.records) == 1
    assert "max_replay=4" in caplog.records[0].getMessage()
    # What primary does not read is not counted, whatever the Content-Length.
    unread = fallback_wsgi(wsgi_owner("new"), wsgi_owner("old", ["/kept"]), max_replay=0)
    assert seen(call_wsgi(unread, Request("POST", "/kept", body=b"x" * 100)))["app"] == "old"


class Closing:
    """A response iterable recording whether its close() was called."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


def test_wsgi_a_generator_primary_that_starts_late() -> None:
    def late(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        yield b""
        if environ["PATH_INFO"] == "/moved":
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"new"
            yield b"!"
            return
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        yield b"not new"

    app = fallback_wsgi(late, wsgi_owner("old", ["/kept"]))
    assert call_wsgi(app, Request("GET", "/moved"), validate=True).body == b"new!"
    assert seen(call_wsgi(app, Request("GET", "/kept"), validate=True))["app"] == "old"


def test_wsgi_a_refused_response_is_closed_and_its_writes_dropped() -> None:
    bodies: list[Closing] = []

    def refusing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("404 Not Found", [])
        write(b"dropped")
        # A second start_response with exc_info, as an app failing after its 404 does.
        try:
            raise RuntimeError("after the 404")
        except RuntimeError:
            start_response("500 Oops", [], sys.exc_info())
        body = Closing([b"not new"])
        bodies.append(body)
        return body

    response = call_wsgi(fallback_wsgi(refusing, wsgi_owner("old", ["/"])), Request())
    assert seen(response)["app"] == "old"
    assert bodies[0].closed


@pytest.mark.parametrize("where", ["call", "iteration", "close"])
def test_wsgi_primary_failing_after_its_refusal_is_logged_and_legacy_answers(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    class ClosingBadly(Closing):
        def close(self) -> None:
            raise RuntimeError("while closing")

    def failing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        if where == "call":
            raise RuntimeError("after the 404")
        return ClosingBadly([b"not new"])

    def late(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain")])  # at first next()
        if environ["PATH_INFO"]:
            raise RuntimeError("while iterating")
        yield b"not new"

    app = fallback_wsgi(late if where == "iteration" else failing, wsgi_owner("old", ["/"]))
    with caplog.at_level(logging.ERROR, logger="crossgate"):
        assert seen(call_wsgi(app, Request(), validate=True))["app"] == "old"
    [record] = caplog.records
    assert record.getMessage() == "the primary app failed after refusing the request"


def test_wsgi_a_passed_response_with_exc_info_goes_to_the_server() -> None:
    def failing(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        try:
            raise RuntimeError("while building the body")
        except RuntimeError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"sorry"

    response = call_wsgi(fallback_wsgi(failing, wsgi_owner("old", ["/"])), Request())
    assert (response.status, response.body) == (500, b"sorry")


def test_wsgi_primary_failing_before_it_starts_is_the_servers_error() -> None:
    def failing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("broken")

    app = fallback_wsgi(failing, wsgi_owner("old", ["/"]))
    response = call_wsgi(app, Request(), raise_app_exceptions=False)
    assert (response.status, type(response.error)) == (500, RuntimeError)


def test_wsgi_an_asgi_primary_with_its_lifespan() -> None:
    events: list[str] = []
    app = fallback_wsgi(Owner("new", ["/moved"], events=events), wsgi_owner("old", ["/kept"]))
    try:
        app.start()
        assert events == ["new startup"]
        moved = seen(call_wsgi(app, Request("POST", "/moved", body=b"x")))
        assert (moved["app"], moved["body"], moved["state"]) == ("new", "x", {"who": "new"})
        kept = seen(call_wsgi(app, Request("POST", "/kept", body=[b"he", b"llo"])))
        assert (kept["app"], kept["body"]) == ("old", "hello")
    finally:
        app.close()
    assert events == ["new startup", "new shutdown"]
    assert repr(app).startswith("<WSGIFallback ")


def test_wsgi_both_sides_asgi_close_legacy_first() -> None:
    events: list[str] = []
    app = fallback_wsgi(Owner("new", events=events), Owner("old", ["/"], events=events))
    try:
        app.start()
        assert seen(call_wsgi(app, Request("POST", "/", body=b"x")))["body"] == "x"
    finally:
        app.close()
    assert events == ["new startup", "old startup", "old shutdown", "new shutdown"]


# -- properties ------------------------------------------------------------------------------

SEGMENTS = ["a", "b", "c", "users", "7", "avatar"]
PATHS = st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)
BODY_CHUNKS = st.lists(st.binary(max_size=40), max_size=5)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    chunks = draw(BODY_CHUNKS)
    length = draw(st.booleans())
    return Request(
        draw(st.sampled_from(["GET", "POST", "PUT"])),
        draw(PATHS),
        body=chunks,
        headers=() if length else CHUNKED,
    )


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("loop", LOOPS)
@given(
    owned=st.sets(PATHS, max_size=6),
    reads=st.integers(min_value=-1, max_value=3),
    batch=st.lists(requests(), min_size=1, max_size=6),
)
@PROPERTY
def test_every_request_is_answered_by_its_owner_with_the_body_sent(
    loop: str, owned: set[str], reads: int, batch: list[Request]
) -> None:
    everything = {request.path for request in batch}
    primary = Owner("new", owned, reads=reads)
    legacy = Owner("old", everything - owned)
    app = fallback(primary, legacy)

    async def run() -> None:
        for request in batch:
            found = seen(await call_asgi(app, request, timeout=5))
            assert found["app"] == ("new" if request.path in owned else "old")
            assert found["body"] == request.content.decode("latin-1")

    run_on(loop, run)


@given(
    owned=st.sets(PATHS, max_size=6),
    reads=st.sampled_from([0, 1, 7, 1000]),
    batch=st.lists(requests(), min_size=1, max_size=6),
)
@PROPERTY
def test_every_wsgi_request_is_answered_by_its_owner_with_the_body_sent(
    owned: set[str], reads: int, batch: list[Request]
) -> None:
    everything = {request.path for request in batch}
    app = fallback_wsgi(
        wsgi_owner("new", owned, reads=reads), wsgi_owner("old", everything - owned)
    )
    for request in batch:
        found = seen(call_wsgi(app, request, validate=True))
        assert found["app"] == ("new" if request.path in owned else "old")
        assert found["body"] == request.content.decode("latin-1")


# -- corners ---------------------------------------------------------------------------------


class ASGI2Refusing:
    """An ASGI 2 app (a class called with the scope) that refuses everything."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.mark.anyio
async def test_an_asgi2_primary_is_called_as_a_single_callable() -> None:
    app = fallback(ASGI2Refusing, Owner("old", ["/"]))
    assert seen(await call_asgi(app, Request()))["app"] == "old"


@pytest.mark.anyio
async def test_primary_reading_after_its_answer_started_reads_the_live_body() -> None:
    async def echo_late(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
            await send({"type": "http.response.body", "body": message["body"], "more_body": more})

    request = Request("POST", "/", body=[b"a", b"bc", b""])
    response = await call_asgi(fallback(echo_late, Owner("old")), request)
    assert (response.status, response.body) == (200, b"abc")


@pytest.mark.anyio
async def test_a_receive_begun_before_the_refusal_is_replayed_to_legacy() -> None:
    to_inbox, inbox = anyio.create_memory_object_stream[Message](1)
    sent: list[Message] = []
    waiting = anyio.Event()

    async def receive() -> Message:
        waiting.set()
        return await inbox.receive()

    async def send(message: Message) -> None:
        sent.append(message)

    async def watching(scope: Scope, receive: Receive, send: Send) -> None:
        # A disconnect watcher, as WSGI adapters run one: its receive() is pending when
        # the refusal goes out, and ends after it.
        watched: list[Message] = []

        async def watch() -> None:
            watched.append(await receive())

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch)
            await waiting.wait()
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await to_inbox.send({"type": "http.request", "body": b"late", "more_body": False})
        assert watched == [{"type": "http.disconnect"}]  # no longer its own

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    with to_inbox, inbox:
        await fallback(watching, Owner("old", ["/"]))(scope, receive, send)
    assert json.loads(sent[1]["body"])["body"] == "late"


@pytest.mark.anyio
@pytest.mark.parametrize("sensitive", [True, False])
async def test_each_request_runs_in_one_thread_sensitive_context(sensitive: bool) -> None:
    contexts: list[object] = []

    def recording(name: str, refusal: int) -> Any:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            contexts.append(asgiref.sync.SyncToAsync.thread_sensitive_context.get(None))
            await send({"type": "http.response.start", "status": refusal, "headers": []})
            await send({"type": "http.response.body", "body": name.encode()})

        return app

    app = fallback(recording("new", 404), recording("old", 200), thread_sensitive=sensitive)
    assert (await call_asgi(app, Request())).body == b"old"
    new_context, old_context = contexts
    # One context for the request, both apps in it (or none at all, when asked).
    assert new_context is old_context
    assert (new_context is not None) is sensitive
