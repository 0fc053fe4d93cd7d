"""with_lifespan: hooks sync and async, state, failures with their message, the app's own
lifespan run inside the hooks, apps without lifespan, servers without state."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Coroutine, MutableMapping
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from crossgate._errors import LifespanError
from crossgate._types import Message, Receive, Send
from crossgate.adapters.lifespan import LifespanManager, lifespan
from crossgate.middleware.lifespan import LifespanShim, with_lifespan
from crossgate.testing import call_asgi

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]

Scope = MutableMapping[str, Any]


async def no_lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Like Django's ASGIHandler: refuses every scope but http."""
    if scope["type"] != "http":
        raise ValueError(f"cannot handle {scope['type']!r}")
    state = scope.get("state", {})
    body = repr(sorted(state.items())).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def get(app: Any, state: dict[str, Any] | None = None) -> tuple[int | None, bytes]:
    """One GET through ``app``; the scope carries a copy of ``state`` as a server's would."""
    response = await call_asgi(app, state=state)
    return response.status, response.body


def recording_starlette(events: list[str]) -> Starlette:
    """A Starlette app with a lifespan that records its phases and reads/extends the state."""

    @contextlib.asynccontextmanager
    async def life(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("app startup")
        yield {"engine": "engine-from-app"}
        events.append("app shutdown")

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.state.pool} {request.state.engine}")

    return Starlette(routes=[Route("/", home)], lifespan=life)


async def test_sync_hooks_run_off_the_loop_and_async_hooks_on_it() -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[str, bool]] = []

    def sync_start() -> None:
        seen.append(("sync start", threading.get_ident() == loop_thread))

    async def async_start() -> None:
        seen.append(("async start", threading.get_ident() == loop_thread))

    def sync_stop() -> None:
        seen.append(("sync stop", threading.get_ident() == loop_thread))

    shim = with_lifespan(
        no_lifespan_app, on_startup=[sync_start, async_start], on_shutdown=sync_stop
    )
    async with lifespan(shim):
        assert seen == [("sync start", False), ("async start", True)]
    assert seen[-1] == ("sync stop", False)


async def test_hooks_taking_an_argument_receive_the_state_and_requests_see_it() -> None:
    def open_pool(state: dict[str, Any]) -> None:
        state["pool"] = "pool-1"

    async def open_cache(state: dict[str, Any]) -> None:
        state["cache"] = "cache-1"

    closed: list[object] = []
    shim = with_lifespan(
        no_lifespan_app,
        on_startup=[open_pool, open_cache],
        on_shutdown=lambda state: closed.append(state["pool"]),
    )
    async with lifespan(shim) as state:
        assert state == {"pool": "pool-1", "cache": "cache-1"}
        assert await get(shim, state) == (200, b"[('cache', 'cache-1'), ('pool', 'pool-1')]")
    assert closed == ["pool-1"]


async def test_a_sync_hook_returning_a_coroutine_is_awaited() -> None:
    done: list[str] = []

    async def work() -> None:
        done.append("awaited")

    def start() -> Coroutine[Any, Any, None]:  # sync, but what it returns must be awaited
        return work()

    async with lifespan(with_lifespan(no_lifespan_app, on_startup=start)):
        assert done == ["awaited"]


async def test_an_app_that_refuses_lifespan_is_never_sent_its_events_nor_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def django_like(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])
        await no_lifespan_app(scope, receive, send)

    shim = with_lifespan(django_like, on_startup=lambda: None)
    with caplog.at_level(logging.INFO, logger="crossgate"):
        manager = LifespanManager(shim)
        await manager.startup()
        assert manager.supported  # the shim answers for the app
        assert await get(shim, manager.state) == (200, b"[]")
        await manager.shutdown()
    # Asked once (the refusal is the answer), never again at shutdown.
    assert calls == ["lifespan", "http"]
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


async def test_a_raising_startup_hook_is_startup_failed_with_its_message() -> None:
    later: list[str] = []

    def connect() -> None:
        raise ConnectionError("database unreachable at db:5432")

    shim = with_lifespan(no_lifespan_app, on_startup=[connect, lambda: later.append("x")])
    with pytest.raises(LifespanError, match="startup failed") as failure:
        async with lifespan(shim):
            pytest.fail("startup must fail")  # pragma: no cover
    assert "connect raised ConnectionError: database unreachable at db:5432" in str(failure.value)
    assert later == []  # the first failure stops the hooks


async def test_a_raising_shutdown_hook_is_shutdown_failed_with_its_message() -> None:
    async def flush() -> None:
        raise RuntimeError("queue not drained")

    shim = with_lifespan(no_lifespan_app, on_shutdown=flush)
    with pytest.raises(LifespanError, match=r"shutdown failed.*flush raised RuntimeError: queue"):
        async with lifespan(shim):
            pass


async def test_a_hook_past_its_timeout_fails_startup_saying_so() -> None:
    async def hang() -> None:
        await anyio.sleep_forever()

    shim = with_lifespan(no_lifespan_app, on_startup=hang, startup_timeout=0.05)
    with pytest.raises(LifespanError, match=r"hang did not finish within 0\.05 s"):
        async with lifespan(shim):
            pass  # pragma: no cover


async def test_a_hook_raising_timeouterror_itself_is_reported_as_raised() -> None:
    async def slow_dns() -> None:
        raise TimeoutError("dns lookup")

    shim = with_lifespan(no_lifespan_app, on_startup=slow_dns)
    with pytest.raises(LifespanError, match="slow_dns raised TimeoutError: dns lookup"):
        async with lifespan(shim):
            pass  # pragma: no cover


async def test_the_apps_own_lifespan_runs_inside_the_hooks_and_its_state_is_merged() -> None:
    events: list[str] = []

    def open_pool(state: dict[str, Any]) -> None:
        events.append("hook startup")
        state["pool"] = "pool-1"

    shim = with_lifespan(
        recording_starlette(events),
        on_startup=open_pool,
        on_shutdown=lambda: events.append("hook shutdown"),
    )
    async with lifespan(shim) as state:
        assert state == {"pool": "pool-1", "engine": "engine-from-app"}
        assert await get(shim, state) == (200, b"pool-1 engine-from-app")
    assert events == ["hook startup", "app startup", "app shutdown", "hook shutdown"]


async def test_forward_false_never_sends_the_app_a_lifespan_event() -> None:
    events: list[str] = []
    shim = with_lifespan(recording_starlette(events), on_startup=lambda: None, forward=False)
    async with lifespan(shim) as state:
        assert state == {}
    assert events == []


def check_migrations() -> None:
    raise RuntimeError("migrations pending")


async def test_the_apps_failed_startup_is_reported_and_the_shutdown_hooks_still_run() -> None:
    @contextlib.asynccontextmanager
    async def life(app: Starlette) -> AsyncIterator[None]:
        check_migrations()
        yield  # pragma: no cover

    closed: list[str] = []
    shim = with_lifespan(
        Starlette(lifespan=life),
        on_startup=lambda: None,
        on_shutdown=lambda: closed.append("closed"),
    )
    with pytest.raises(LifespanError, match="migrations pending"):
        async with lifespan(shim):
            pass  # pragma: no cover
    assert closed == ["closed"]


async def test_the_apps_failed_shutdown_is_reported_after_the_hooks_ran() -> None:
    @contextlib.asynccontextmanager
    async def life(app: Starlette) -> AsyncIterator[None]:
        yield
        raise RuntimeError("connections leaked")

    closed: list[str] = []
    shim = with_lifespan(Starlette(lifespan=life), on_shutdown=lambda: closed.append("closed"))
    with pytest.raises(LifespanError, match="connections leaked"):
        async with lifespan(shim):
            pass
    assert closed == ["closed"]


async def test_without_state_from_the_server_the_shim_hands_requests_its_own() -> None:
    """A server from before lifespan state: no "state" in the lifespan scope."""
    messages: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    answers: list[Message] = []

    async def send(message: Message) -> None:
        answers.append(message)

    def remember(state: dict[str, Any]) -> None:
        state["pool"] = "pool-1"

    shim = with_lifespan(no_lifespan_app, on_startup=remember)
    messages += [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    await shim({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in answers] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert await get(shim) == (200, b"[('pool', 'pool-1')]")


async def test_a_hook_without_a_readable_signature_is_called_bare() -> None:
    class Builtinish:
        __signature__ = "unreadable"  # as some C callables: inspect cannot tell

        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []

        def __call__(self, *args: Any) -> None:
            self.calls.append(args)

    hook = Builtinish()
    async with lifespan(with_lifespan(no_lifespan_app, on_startup=hook)):
        assert hook.calls == [()]


def test_hooks_with_unusable_signatures_are_refused_at_construction() -> None:
    def two(a: object, b: object) -> None: ...

    with pytest.raises(TypeError, match="no arguments or one"):
        with_lifespan(no_lifespan_app, on_startup=two)
    with pytest.raises(TypeError, match="must be callable"):
        with_lifespan(no_lifespan_app, on_shutdown=["not a hook"])  # type: ignore[list-item]


def test_forward_accepts_only_auto_or_false() -> None:
    with pytest.raises(ValueError, match="forward"):
        LifespanShim(no_lifespan_app, forward=True)  # type: ignore[arg-type]
    assert repr(with_lifespan(no_lifespan_app)).startswith("<LifespanShim")
