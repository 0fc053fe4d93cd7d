"""dispatch / dispatch_wsgi: app detection, longest prefix at a segment boundary, root_path and
SCRIPT_NAME composition, 404, websocket routing, lifespan fan-out and per-mount state, and
mounting under Starlette's Mount."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import flask
import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from crossgate._errors import LifespanError
from crossgate._types import Environ, Message, Receive, Send, StartResponse
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.adapters.lifespan import LifespanManager, lifespan
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.middleware.dispatch import (
    Dispatcher,
    WSGIDispatcher,
    dispatch,
    dispatch_wsgi,
    is_asgi_app,
    is_wsgi_app,
)

Scope = MutableMapping[str, Any]

pytestmark = pytest.mark.on_trio


# -- apps ------------------------------------------------------------------------------------


class Echo:
    """An ASGI app answering with what it saw; with ``events``, it has a lifespan that
    records its phases (and can be told to fail one of them)."""

    def __init__(
        self, name: str, events: list[str] | None = None, *, fail: str | None = None
    ) -> None:
        self.name = name
        self.events = events
        self.fail = fail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": self.name})
            await send({"type": "websocket.close", "code": 1000})
        else:
            state = scope.get("state") or {}
            seen = {
                "app": self.name,
                "root_path": scope.get("root_path"),
                "path": scope["path"],
                "state": state,
            }
            body = json.dumps(seen).encode()
            state["written by a request"] = True  # must not reach the next request
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.events is None:
            raise ValueError("no lifespan here")  # as Django's ASGIHandler does
        for phase in ("startup", "shutdown"):
            await receive()
            self.events.append(f"{self.name} {phase}")
            if phase == "startup":
                scope["state"]["who"] = self.name
                scope["state"][self.name] = sorted(scope["state"])
            if self.fail == phase:
                await send({"type": f"lifespan.{phase}.failed", "message": f"{self.name} broke"})
                return
            await send({"type": f"lifespan.{phase}.complete"})


def wsgi_echo(name: str) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen = {
            "app": name,
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(seen).encode()]

    return app


async def call(
    app: Any,
    path: str,
    *,
    root_path: str = "",
    state: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """One GET through ``app``; JSON bodies come back parsed."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": root_path,
        "headers": [],
        "server": ("testserver", 80),
    }
    if state is not None:
        scope["state"] = dict(state)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    try:
        return sent[0]["status"], json.loads(body)
    except ValueError:
        return sent[0]["status"], body


def call_wsgi(app: Any, path_info: str, script_name: str = "") -> tuple[str, Any]:
    environ: Environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": script_name, "PATH_INFO": path_info}
    started: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append(status)
        return lambda data: None

    body = b"".join(app(environ, start_response))
    try:
        return started[0], json.loads(body)
    except ValueError:
        return started[0], body


# -- detection -------------------------------------------------------------------------------


async def asgi3(scope: Scope, receive: Receive, send: Send) -> None: ...


class ASGI3:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class ASGI2:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi2 " + self.scope["path"].encode()})


def asgi2_factory(scope: Scope) -> ASGI2:
    return ASGI2(scope)


def asgi3_sync_wrapper(scope: Scope, receive: Receive, send: Send) -> Any:
    return asgi3(scope, receive, send)


def wsgi_function(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return []


class WSGIClass:
    """PEP 3333's example of an application class: instantiating it is the call."""

    def __init__(self, environ: Environ, start_response: StartResponse) -> None: ...

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


class HintedSingle:
    """asgiref's hint wins over a shape that would say WSGI."""

    _asgi_single_callable = True

    def __call__(self, environ: Environ, start_response: StartResponse) -> Any: ...


class HintedDouble(HintedSingle):
    _asgi_single_callable = False
    _asgi_double_callable = True


class NoSignature:
    """A callable inspect cannot read: neither kind is claimed."""

    __signature__ = "unreadable"

    def __call__(self, *args: Any) -> None: ...


DETECTION = [
    ("async function", asgi3, "asgi"),
    ("async __call__", ASGI3(), "asgi"),
    ("partial of async", functools.partial(asgi3), "asgi"),
    ("ASGI 2 class", ASGI2, "asgi"),
    ("ASGI 2 factory", asgi2_factory, "asgi"),
    ("sync returning awaitable", asgi3_sync_wrapper, "asgi"),
    ("starlette", Starlette(), "asgi"),
    ("fastapi", FastAPI(), "asgi"),
    ("wsgi_to_asgi", WSGIToASGI(wsgi_function), "asgi"),
    ("wsgi function", wsgi_function, "wsgi"),
    ("PEP 3333 class", WSGIClass, "wsgi"),
    ("flask", flask.Flask("detect"), "wsgi"),
    ("asgi_to_wsgi", ASGIToWSGI(asgi3), "wsgi"),
    ("asgiref single-callable hint", HintedSingle(), "asgi"),
    ("asgiref double-callable hint", HintedDouble(), "asgi"),
    ("unreadable signature", NoSignature(), None),
    ("not callable", "app", None),
    ("no arguments", lambda: None, None),
    ("a framework class, not an app", FastAPI, None),
]


@pytest.mark.parametrize(("app", "kind"), [c[1:] for c in DETECTION], ids=[c[0] for c in DETECTION])
def test_detection(app: object, kind: str | None) -> None:
    assert is_asgi_app(app) is (kind == "asgi")
    assert is_wsgi_app(app) is (kind == "wsgi")


@pytest.mark.anyio
async def test_asgi2_apps_are_mounted_as_single_callables() -> None:
    app = dispatch({"/two": ASGI2, "/factory": asgi2_factory, "/marked": (ASGI2, "asgi")})
    for prefix in ("/two", "/factory", "/marked"):
        assert await call(app, f"{prefix}/x") == (200, f"asgi2 {prefix}/x".encode())


@pytest.mark.anyio
async def test_an_explicit_kind_overrides_detection() -> None:
    def forwarding(*args: Any) -> Any:  # ASGI, but shaped like anything
        return Echo("forwarded")(*args)

    assert is_wsgi_app(forwarding)
    app = dispatch({"/f": (forwarding, "asgi"), "/w": (wsgi_echo("w"), "wsgi")})
    assert (await call(app, "/f/x"))[1]["app"] == "forwarded"
    async with lifespan(app):
        assert (await call(app, "/w/x"))[1] == {"app": "w", "script_name": "/w", "path_info": "/x"}


def test_mounts_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="must be a string starting with '/'"):
        dispatch({"api": asgi3})
    with pytest.raises(ValueError, match="share a prefix"):
        dispatch({"/api": asgi3, "/api/": asgi3})
    with pytest.raises(TypeError, match=r"'/x': cannot tell whether .* as \(app, 'wsgi'\)"):
        dispatch({"/x": lambda: None})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="kind must be 'asgi' or 'wsgi'"):
        dispatch_wsgi({"/x": (asgi3, "asgi3")})  # type: ignore[dict-item]
    assert repr(dispatch({"/": asgi3, "/a/": asgi3})) == "<Dispatcher ['/', '/a']>"
    assert repr(dispatch_wsgi({"": wsgi_function})) == "<WSGIDispatcher ['/']>"


# -- routing ---------------------------------------------------------------------------------

# (request path, app, its root_path / SCRIPT_NAME, the rest / PATH_INFO)
SEGMENTS = [
    ("/app", "app", "/app", ""),
    ("/app/", "app", "/app", "/"),
    ("/app/x/y", "app", "/app", "/x/y"),
    ("/application", "root", "", "/application"),
    ("/apps/x", "root", "", "/apps/x"),
    ("/APP", "root", "", "/APP"),
    ("/app/sub", "sub", "/app/sub", ""),
    ("/app/sub/x", "sub", "/app/sub", "/x"),
    ("/app/subway", "app", "/app", "/subway"),
    ("/", "root", "", "/"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "name", "root", "rest"), SEGMENTS)
async def test_asgi_longest_prefix_at_a_segment_boundary(
    path: str, name: str, root: str, rest: str
) -> None:
    app = dispatch({"/": Echo("root"), "/app": Echo("app"), "/app/sub/": Echo("sub")})
    status, seen = await call(app, path)
    assert status == 200
    assert (seen["app"], seen["root_path"], seen["path"]) == (name, root, path)


@pytest.mark.parametrize(("path", "name", "root", "rest"), SEGMENTS)
def test_wsgi_longest_prefix_at_a_segment_boundary(
    path: str, name: str, root: str, rest: str
) -> None:
    app = dispatch_wsgi(
        {"/app/sub": wsgi_echo("sub"), "/app": wsgi_echo("app"), "/": wsgi_echo("root")}
    )
    assert call_wsgi(app, path) == ("200 OK", {"app": name, "script_name": root, "path_info": rest})


# (root_path and path the dispatcher gets, root_path and path the mounted app gets)
ROOT_PATHS = [
    ("", "/app/x", "/app", "/app/x"),
    ("/outer", "/outer/app/x", "/outer/app", "/outer/app/x"),
    ("/outer/", "/outer/app/x", "/outer/app", "/outer/app/x"),
    ("/outer", "/outer/app", "/outer/app", "/outer/app"),
    # A server from before `path` included root_path: the app gets the spec's form.
    ("/outer", "/app/x", "/outer/app", "/outer/app/x"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("root_in", "path_in", "root_out", "path_out"), ROOT_PATHS)
async def test_root_path_composition(
    root_in: str, path_in: str, root_out: str, path_out: str
) -> None:
    status, seen = await call(dispatch({"/app": Echo("app")}), path_in, root_path=root_in)
    assert (status, seen["root_path"], seen["path"]) == (200, root_out, path_out)


@pytest.mark.anyio
async def test_nested_dispatchers_compose_their_prefixes() -> None:
    app = dispatch({"/a": dispatch({"/b": Echo("b"), "/": Echo("a root")})})
    assert (await call(app, "/a/b/c"))[1]["root_path"] == "/a/b"
    assert (await call(app, "/a"))[1]["app"] == "a root"  # the route below /a is ""


@pytest.mark.anyio
async def test_a_wsgi_app_sees_the_prefix_in_script_name() -> None:
    app = dispatch({"/legacy": wsgi_echo("legacy")})
    async with lifespan(app):  # stops the adapter's worker pool at the end
        assert await call(app, "/legacy/a/b") == (
            200,
            {"app": "legacy", "script_name": "/legacy", "path_info": "/a/b"},
        )
        assert (await call(app, "/legacy"))[1]["path_info"] == ""


@pytest.mark.anyio
async def test_no_match_is_a_plain_text_404() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/elsewhere", "headers": []}
    await dispatch({"/app": asgi3})(scope, asgi3_receive, send)
    assert sent == [
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")],
        },
        {"type": "http.response.body", "body": b"Not Found"},
    ]
    assert call_wsgi(dispatch_wsgi({"/app": wsgi_function}), "/elsewhere") == (
        "404 Not Found",
        b"Not Found",
    )


async def ignore(message: Message) -> None: ...


async def asgi3_receive() -> Message:
    return {"type": "websocket.connect"}


async def websocket(app: Any, path: str, extensions: dict[str, Any] | None = None) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": path, "headers": [], "extensions": extensions or {}}
    await app(scope, asgi3_receive, send)
    return sent


@pytest.mark.anyio
async def test_websockets_are_routed_by_path_and_refused_when_nothing_matches() -> None:
    app = dispatch({"/ws": Echo("ws")})
    assert [m["type"] for m in await websocket(app, "/ws/chat")] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert await websocket(app, "/other") == [{"type": "websocket.close", "code": 1000}]
    denied = await websocket(app, "/other", {"websocket.http.response": {}})
    assert [(m["type"], m.get("status")) for m in denied] == [
        ("websocket.http.response.start", 404),
        ("websocket.http.response.body", None),
    ]


@pytest.mark.anyio
async def test_other_scope_types_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot route ASGI scope type 'webtransport'"):
        await dispatch({"/": asgi3})({"type": "webtransport", "path": "/"}, asgi3_receive, ignore)


# -- lifespan --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_lifespan_fans_out_in_order_and_shuts_down_in_reverse(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    app = dispatch(
        {
            "/a": Echo("a", events),
            "/django": Echo("django"),  # no lifespan: skipped without a word
            "/b": Echo("b", events),
            "/": Echo("root", events),
        }
    )
    with caplog.at_level(logging.INFO, logger="crossgate"):
        async with lifespan(app):
            assert events == ["a startup", "b startup", "root startup"]
        assert events[3:] == ["root shutdown", "b shutdown", "a shutdown"]
    assert not caplog.records


@pytest.mark.anyio
async def test_a_failed_startup_names_the_mount_and_stops_those_started() -> None:
    events: list[str] = []
    app = dispatch(
        {"/a": Echo("a", events), "/b": Echo("b", events, fail="startup"), "/c": Echo("c", events)}
    )
    with pytest.raises(LifespanError, match=r"mount '/b' failed to start: .*b broke"):
        async with lifespan(app):
            pytest.fail("startup must fail")  # pragma: no cover
    assert events == ["a startup", "b startup", "a shutdown"]


@pytest.mark.anyio
async def test_a_failed_shutdown_names_the_mount_and_the_others_still_shut_down() -> None:
    events: list[str] = []
    app = dispatch({"/a": Echo("a", events), "/b": Echo("b", events, fail="shutdown")})
    with pytest.raises(LifespanError, match=r"mount '/b': .*b broke"):
        async with lifespan(app):
            pass
    assert events == ["a startup", "b startup", "b shutdown", "a shutdown"]


@pytest.mark.anyio
async def test_each_mount_has_its_own_state_over_the_servers() -> None:
    app = dispatch({"/a": Echo("a", []), "/b": Echo("b", []), "/plain": Echo("plain")})
    manager = LifespanManager(app)
    manager.state["shared"] = "from the server"
    await manager.startup()
    server_state = manager.state
    try:
        _, a = await call(app, "/a/x", state=server_state)
        _, b = await call(app, "/b/x", state=server_state)
        _, plain = await call(app, "/plain/x", state=server_state)
        # Each app's startup saw the server's state, and only its own additions.
        assert a["state"] == {"shared": "from the server", "who": "a", "a": ["shared", "who"]}
        assert b["state"] == {"shared": "from the server", "who": "b", "b": ["shared", "who"]}
        assert plain["state"] == {"shared": "from the server"}
        # Each request had a copy: what one wrote is gone for the next.
        _, again = await call(app, "/a/x", state=server_state)
        assert "written by a request" not in again["state"]
        assert "who" not in server_state
    finally:
        await manager.shutdown()


# -- composition with Starlette ---------------------------------------------------------------


def legacy_flask() -> flask.Flask:
    app = flask.Flask("legacy")

    @app.route("/")
    def home() -> str:
        return "legacy home"

    @app.route("/old")
    def old() -> Any:
        return flask.redirect(flask.url_for("new"))

    @app.route("/new")
    def new() -> str:
        return f"new at {flask.request.script_root} {flask.request.path}"

    return app


def starlette_api() -> Starlette:
    async def where(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.url_for("where")))

    return Starlette(routes=[Route("/where", where, name="where")])


@pytest.mark.anyio
async def test_under_a_starlette_mount_prefixes_compose_once() -> None:
    inner = dispatch({"/legacy": legacy_flask(), "/api": starlette_api()})
    outer = Starlette(routes=[Mount("/x", app=inner)])
    transport = httpx.ASGITransport(app=outer)
    async with (
        lifespan(inner),  # Starlette's Mount sends no lifespan to mounted apps: run it here
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        moved = await client.get("/x/legacy/old")
        assert (moved.status_code, moved.headers["location"]) == (302, "/x/legacy/new")
        assert (await client.get("/x/legacy/new")).text == "new at /x/legacy /new"
        assert (await client.get("/x/api/where")).text == "http://testserver/x/api/where"
        slash = await client.get("/x/legacy")  # Flask itself asks for the slash
        assert (slash.status_code, slash.headers["location"]) == (
            308,
            "http://testserver/x/legacy/",
        )
        assert (await client.get("/x/legacy/")).text == "legacy home"
        missing = await client.get("/x/nowhere")
        assert (missing.status_code, missing.text) == (404, "Not Found")


# -- dispatch_wsgi ---------------------------------------------------------------------------


def test_wsgi_prefixes_are_compared_as_pep3333_native_strings() -> None:
    app = dispatch_wsgi({"/café": wsgi_echo("cafe")})
    native = "/café".encode().decode("latin-1")
    assert call_wsgi(app, native + "/x") == (
        "200 OK",
        {"app": "cafe", "script_name": native, "path_info": "/x"},
    )


def test_wsgi_script_name_grows_by_the_prefix_and_the_callers_environ_stays() -> None:
    app = dispatch_wsgi({"/app": wsgi_echo("app")})
    assert call_wsgi(app, "/app/x", script_name="/outer")[1]["script_name"] == "/outer/app"
    assert call_wsgi(app, "/app/x", script_name="/outer/")[1]["script_name"] == "/outer/app"
    environ: Environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/app/x"}
    app(environ, lambda status, headers, exc_info=None: lambda data: None)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("", "/app/x")


def test_an_asgi_app_inside_dispatch_wsgi_runs_with_its_lifespan() -> None:
    events: list[str] = []
    app = dispatch_wsgi({"/asgi": Echo("asgi", events), "/": wsgi_echo("root")})
    assert isinstance(app, WSGIDispatcher)
    try:
        app.start()
        assert events == ["asgi startup"]
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
            seen = client.get("/asgi/x").json()
            assert (seen["root_path"], seen["path"], seen["state"]["who"]) == (
                "/asgi",
                "/asgi/x",
                "asgi",
            )
            assert client.get("/other").json()["app"] == "root"
    finally:
        app.close()
    assert events == ["asgi startup", "asgi shutdown"]


def test_dispatch_returns_a_dispatcher() -> None:
    assert isinstance(dispatch({"/": asgi3}), Dispatcher)
