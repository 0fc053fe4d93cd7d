"""The lifespan driver: startup, state, shutdown, failures, apps without lifespan, timeouts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette

from crossgate._errors import LifespanError
from crossgate._types import Message, Receive, Send
from crossgate.adapters._bridge import Loop, get_portal, running_loop
from crossgate.adapters.lifespan import (
    LifespanManager,
    Teardown,
    lifespan,
    lifespan_sync,
    serve_lifespan,
)

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]

Scope = MutableMapping[str, Any]


class Recorder:
    """A lifespan app that records what it saw and answers as told."""

    def __init__(self, *, startup: str = "complete", shutdown: str = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.events: list[str] = []
        self.loop: Loop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        self.loop = running_loop()
        message = await receive()
        self.events.append(message["type"])
        scope["state"]["pool"] = "open"
        await send({"type": f"lifespan.startup.{self.startup}", "message": "no database"})
        if self.startup != "complete":
            return
        message = await receive()
        self.events.append(message["type"])
        await send({"type": f"lifespan.shutdown.{self.shutdown}", "message": "pool stuck"})


async def test_state_is_yielded_and_shutdown_runs() -> None:
    app = Recorder()
    async with lifespan(app) as state:
        assert state == {"pool": "open"}
        assert app.events == ["lifespan.startup"]
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


async def test_startup_failed_raises_at_once_with_the_message() -> None:
    """No timeout is set: if the driver waited for one, the test would hang."""
    app = Recorder(startup="failed")
    with pytest.raises(LifespanError, match="startup failed: no database"):
        async with lifespan(app, startup_timeout=None):
            pytest.fail("the block must not run")


async def test_shutdown_failed_raises_with_the_message() -> None:
    app = Recorder(shutdown="failed")
    with pytest.raises(LifespanError, match="shutdown failed: pool stuck"):
        async with lifespan(app, shutdown_timeout=None):
            pass


async def _raises_on_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")


async def _returns_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    return


async def _sends_before_receiving(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})


async def _ignores_the_scope_type(scope: Scope, receive: Receive, send: Send) -> None:
    # A hand-written app that treats every scope as a request: it reads lifespan.startup
    # as its request and answers with a response.
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def _answers_startup_with_a_shutdown_message(
    scope: Scope, receive: Receive, send: Send
) -> None:
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


NO_LIFESPAN_APPS = [
    _raises_on_lifespan,
    _returns_at_once,
    _sends_before_receiving,
    _ignores_the_scope_type,
    _answers_startup_with_a_shutdown_message,
]


@pytest.mark.parametrize("app", NO_LIFESPAN_APPS)
async def test_app_without_lifespan_yields_empty_state(app: Any) -> None:
    manager = LifespanManager(app, startup_timeout=None)
    assert await manager.startup() == {}
    assert manager.supported is False
    await manager.shutdown()  # nothing to shut down, no error
    assert manager.phase == "unsupported"


async def test_app_raising_on_the_scope_is_kept_as_the_reason() -> None:
    manager = LifespanManager(_raises_on_lifespan)
    await manager.startup()
    assert isinstance(manager.error, ValueError)


async def test_app_raising_after_receiving_startup_has_no_lifespan_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise RuntimeError("startup hook exploded")

    with caplog.at_level(logging.WARNING, logger="crossgate"):
        async with lifespan(app) as state:
            assert state == {}
    assert "startup hook exploded" in caplog.text


async def test_startup_timeout_raises_and_cancels_the_app() -> None:
    cancelled = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with pytest.raises(LifespanError, match=r"startup did not complete within 0\.05 s"):
        async with lifespan(app, startup_timeout=0.05):
            pass
    assert cancelled.is_set()


async def test_shutdown_timeout_raises_and_cancels_the_app() -> None:
    cancelled = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with pytest.raises(LifespanError, match=r"shutdown did not complete within 0\.05 s"):
        async with lifespan(app, shutdown_timeout=0.05):
            pass
    assert cancelled.is_set()


async def test_a_message_other_than_the_startup_answers_means_no_lifespan() -> None:
    """Lifespan spec: only lifespan.startup.failed is a failed startup. An app that answers
    lifespan.startup with anything else (a response, a shutdown message) does not speak the
    protocol: send() raises in the app, and the server carries on without lifespan."""
    seen: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except LifespanError as exc:
            seen.append(exc)
            raise

    manager = LifespanManager(app)
    assert await manager.startup() == {}
    assert manager.supported is False
    assert len(seen) == 1
    assert "'http.response.start'" in str(seen[0])
    assert manager.error is seen[0]


async def test_returning_on_shutdown_without_answer_is_a_clean_shutdown() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()

    async with lifespan(app, shutdown_timeout=None):
        pass


async def test_raising_on_shutdown_is_a_failed_shutdown() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise OSError("disk gone")

    with pytest.raises(LifespanError, match="disk gone"):
        async with lifespan(app, shutdown_timeout=None):
            pass


async def test_lifespan_task_dying_before_shutdown_is_reported_at_shutdown() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        raise KeyError("gone")

    manager = LifespanManager(app)
    await manager.startup()
    with pytest.raises(LifespanError, match=r"KeyError\('gone'\)"):
        await manager.shutdown()


async def test_startup_twice_is_refused() -> None:
    manager = LifespanManager(Recorder())
    await manager.startup()
    with pytest.raises(RuntimeError, match="already ran"):
        await manager.startup()
    await manager.shutdown()


async def test_starlette_lifespan_state_and_failure() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def ok(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("up")
        yield {"db": "connection"}
        events.append("down")

    async with lifespan(Starlette(lifespan=ok)) as state:
        assert state == {"db": "connection"}
    assert events == ["up", "down"]

    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        if events:
            raise ConnectionRefusedError("db refused")
        yield  # pragma: no cover

    with pytest.raises(LifespanError, match="db refused"):
        async with lifespan(Starlette(lifespan=broken), startup_timeout=None):
            pass


def test_lifespan_sync_runs_on_the_portal_loop() -> None:
    app = Recorder()
    with lifespan_sync(app) as state:
        assert state == {"pool": "open"}
        assert app.loop is get_portal().loop
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_lifespan_sync_startup_failed_raises() -> None:
    app = Recorder(startup="failed")
    with pytest.raises(LifespanError, match="no database"), lifespan_sync(app):
        pytest.fail("the block must not run")


def test_lifespan_sync_app_without_lifespan() -> None:
    with lifespan_sync(_raises_on_lifespan) as state:
        assert state == {}


def test_message_defaults_when_missing() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        message: Message = {"type": "lifespan.startup.failed"}
        await send(message)

    with pytest.raises(LifespanError, match=r"startup failed: \(no message\)"), lifespan_sync(app):
        pass


# ------------------------------------------------------------- serving it (crossgate's apps)


class Server:
    """A lifespan server: sends ``events``, records what the app answers."""

    def __init__(self, *events: str) -> None:
        self.events: list[Message] = [{"type": event} for event in events]
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self.events.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def test_serve_enters_the_context_at_startup_and_leaves_it_at_shutdown() -> None:
    steps: list[str] = []

    @contextlib.asynccontextmanager
    async def context() -> AsyncIterator[None]:
        steps.append("enter")
        yield
        steps.append("leave")

    server = Server("lifespan.startup", "lifespan.shutdown")
    await serve_lifespan(server.receive, server.send, context())
    assert steps == ["enter", "leave"]
    assert server.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(LifespanError("no database"), "no database", id="LifespanError"),
        pytest.param(RuntimeError("bug"), "RuntimeError: bug", id="another-error"),
    ],
)
async def test_serve_reports_a_failed_startup_and_sends_nothing_more(
    error: Exception, message: str
) -> None:
    class Failing(contextlib.AbstractAsyncContextManager[None]):
        async def __aenter__(self) -> None:
            raise error

        async def __aexit__(self, *exc_info: object) -> None:
            raise AssertionError("not entered: nothing to leave")

    server = Server("lifespan.startup", "lifespan.shutdown")
    await serve_lifespan(server.receive, server.send, Failing())
    assert server.sent == [{"type": "lifespan.startup.failed", "message": message}]


async def test_serve_reports_a_failed_shutdown() -> None:
    @contextlib.asynccontextmanager
    async def context() -> AsyncIterator[None]:
        yield
        raise LifespanError("pool stuck")

    server = Server("lifespan.startup", "lifespan.shutdown")
    await serve_lifespan(server.receive, server.send, context())
    assert server.sent[1] == {"type": "lifespan.shutdown.failed", "message": "pool stuck"}


async def test_a_shutdown_with_no_startup_before_it_still_undoes_the_context() -> None:
    steps: list[str] = []

    @contextlib.asynccontextmanager
    async def context() -> AsyncIterator[None]:
        steps.append("enter")
        yield
        steps.append("leave")

    server = Server("lifespan.shutdown")
    await serve_lifespan(server.receive, server.send, context())
    assert steps == ["enter", "leave"]
    assert server.sent == [{"type": "lifespan.shutdown.complete"}]


async def test_teardown_runs_every_step_last_pushed_first_and_collects_failures() -> None:
    ran: list[str] = []

    def step(name: str, fails: bool = False) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            ran.append(name)
            if fails:
                raise LifespanError(f"{name} failed")

        return run

    teardown = Teardown()
    teardown.push(step("first"))
    teardown.push(step("second", fails=True))
    teardown.push(step("third", fails=True))
    assert await teardown.close() == ["third failed", "second failed"]
    assert ran == ["third", "second", "first"]
    assert await teardown.close() == []  # each step runs once
    assert ran == ["third", "second", "first"]
