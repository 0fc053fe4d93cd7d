"""sync_to_async(thread_sensitive=True): one thread per context, in order, nesting both
ways without deadlock, pooled threads, and asgiref's contexts (Django's handler) joined."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import asgiref.sync
import pytest

from crossgate import asgi_to_wsgi, dispatch, wsgi_to_asgi
from crossgate.adapters import _bridge
from crossgate.adapters._bridge.sensitive import Lane, LaneState, ThreadSensitive
from crossgate.adapters.calls import async_to_sync, sync_to_async, thread_sensitive

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]

T = TypeVar("T")

ident = threading.get_ident


@sync_to_async
def sensitive_ident() -> int:
    return ident()


async def idents_of(calls: int) -> list[int]:
    return [await sensitive_ident() for _ in range(calls)]


async def gather(*awaitables: Awaitable[T]) -> list[T]:
    """``asyncio.gather`` on any loop: each awaitable in a task of its own, results in order."""
    results: list[Any] = [None] * len(awaitables)

    async def run(index: int, awaitable: Awaitable[T]) -> None:
        results[index] = await awaitable

    async with anyio.create_task_group() as tasks:
        for index, awaitable in enumerate(awaitables):
            tasks.start_soon(run, index, awaitable)
    return results


async def wait_for(awaitable: Awaitable[T], timeout: float) -> T:
    with anyio.fail_after(timeout):
        return await awaitable


def block_until(event: threading.Event) -> int:
    assert event.wait(10), "the other context's call never ran: contexts were serialised"
    return ident()


# --------------------------------------------------------------------------------------
# One thread per context
# --------------------------------------------------------------------------------------


async def test_calls_of_one_context_share_a_thread_under_concurrency() -> None:
    async def request() -> set[int]:
        async with thread_sensitive():
            return set(await idents_of(10))

    seen = await gather(*(request() for _ in range(32)))
    assert all(len(threads) == 1 for threads in seen)
    assert len(set().union(*seen)) > 1  # the contexts did not share one thread


async def test_calls_of_one_context_run_in_the_order_they_were_made() -> None:
    made: list[int] = []
    order: list[int] = []

    def record(i: int) -> None:
        order.append(i)

    async def call(i: int) -> None:
        made.append(i)  # trio may start the tasks in any order: what counts is the calls'
        await sync_to_async(record)(i)

    async with thread_sensitive():
        # Started together: they queue on the one thread in the order they were called.
        await gather(*(call(i) for i in range(50)))
    assert order == made
    assert sorted(made) == list(range(50))


async def test_two_contexts_run_at_the_same_time() -> None:
    first_ran = threading.Event()
    second_ran = threading.Event()

    def first() -> int:
        first_ran.set()
        return block_until(second_ran)

    def second() -> int:
        second_ran.set()
        return block_until(first_ran)

    async def in_context(fn: Callable[[], int]) -> int:
        async with thread_sensitive():
            return await sync_to_async(fn)()

    a, b = await wait_for(gather(in_context(first), in_context(second)), 20)
    assert a != b


async def test_outside_any_context_one_process_wide_thread() -> None:
    seen = await gather(*(idents_of(3) for _ in range(8)))
    threads = {thread for calls in seen for thread in calls}
    assert threads == {_bridge.process_lane().thread.ident}  # type: ignore[union-attr]


async def test_contexts_borrow_pool_threads_and_start_none_per_request() -> None:
    pool = _bridge.WorkerPool(4, name="sensitive-test")
    try:
        for _ in range(3):  # 3 x 16 contexts, one after the other
            await gather(*(in_pool_context(pool) for _ in range(16)))
        # Idle lanes step away, so about 16 threads at once (a closing lane's thread may
        # still be on its way back while the next round starts); never one per context.
        assert pool.thread_count < 24
    finally:
        pool.shutdown()


async def in_pool_context(pool: _bridge.WorkerPool) -> None:
    async with thread_sensitive(pool=pool):
        threads = set(await idents_of(3))
        assert len(threads) == 1
        assert threading.current_thread() is not None
        await anyio.lowlevel.checkpoint()  # idle: the lane has stepped away meanwhile


async def test_the_thread_goes_back_to_the_pool_when_the_context_ends() -> None:
    context = thread_sensitive()
    async with context:
        await sensitive_ident()
        lane = context.lane()
        assert lane.state is LaneState.SERVING

    def state() -> LaneState:  # read through a call: mypy would narrow the attribute
        return lane.state

    for _ in range(200):
        if state() is LaneState.CLOSED:
            break
        await anyio.sleep(0.005)
    assert state() is LaneState.CLOSED
    assert lane.thread is None


async def test_a_context_that_made_no_call_takes_no_thread() -> None:
    context = thread_sensitive()
    async with context:
        pass
    assert context.lane().state is LaneState.CLOSED  # straight from idle: never served


async def test_a_block_is_entered_once() -> None:
    context = thread_sensitive()
    async with context:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        async with context:
            pass


async def test_a_task_that_outlives_its_context_uses_the_process_wide_thread() -> None:
    release = anyio.Event()
    seen: list[int] = []

    async def late() -> None:
        await release.wait()
        seen.append(await sensitive_ident())

    async with anyio.create_task_group() as tasks:
        async with thread_sensitive():
            inside = await sensitive_ident()
            tasks.start_soon(late)
        release.set()
    [after] = seen
    assert after == _bridge.process_lane().thread.ident  # type: ignore[union-attr]
    assert after != inside


async def test_a_cancelled_call_queued_behind_another_is_skipped() -> None:
    ran: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def slow() -> None:
        started.set()
        release.wait(10)
        ran.append("slow")

    def skipped() -> None:
        ran.append("skipped")

    cancelled: list[str] = []

    async def second() -> None:
        try:
            await sync_to_async(skipped)()
        except anyio.get_cancelled_exc_class():
            cancelled.append("second")
            raise

    async with thread_sensitive():
        async with anyio.create_task_group() as first:
            first.start_soon(sync_to_async(slow))
            await anyio.to_thread.run_sync(started.wait, 10)
            async with anyio.create_task_group() as queued:
                queued.start_soon(second)
                await anyio.sleep(0.01)
                queued.cancel_scope.cancel()
            assert cancelled == ["second"]
            release.set()
        await sensitive_ident()  # everything queued before it has run
    assert ran == ["slow"]


def test_pool_needs_thread_sensitive_false() -> None:
    with pytest.raises(TypeError, match="thread_sensitive=False"):
        sync_to_async(ident, pool=_bridge.default_pool())


def test_lane_refuses_moves_out_of_order() -> None:
    lane = Lane()
    lane.close()
    assert lane.state is LaneState.CLOSED
    with pytest.raises(RuntimeError, match="cannot go from closed"):
        lane._move(LaneState.SERVING)


# --------------------------------------------------------------------------------------
# Nesting with async_to_sync, both ways
# --------------------------------------------------------------------------------------


def nest_sync(level: int, threads: list[int]) -> int:
    threads.append(ident())
    if level == 0:
        return 0
    return async_to_sync(nest_async)(level - 1, threads) + 1


async def nest_async(level: int, threads: list[int]) -> int:
    if level == 0:
        return 0
    return await sync_to_async(nest_sync)(level - 1, threads) + 1


async def test_nesting_comes_back_to_the_blocked_context_thread() -> None:
    threads: list[int] = []
    async with thread_sensitive():
        lane_thread = await sensitive_ident()
        assert await wait_for(nest_async(10, threads), 20) == 10
    assert set(threads) == {lane_thread}


async def test_a_non_sensitive_thread_nested_inside_comes_back_to_the_lane() -> None:
    """lane -> async_to_sync -> plain pool thread -> async_to_sync -> sensitive call: the
    lane's thread is blocked two levels up, and serves the call (no deadlock)."""

    def on_pool_thread() -> int:
        async def inner() -> int:
            return await sensitive_ident()

        return async_to_sync(inner)()

    def on_lane() -> tuple[int, int]:
        async def middle() -> int:
            return await sync_to_async(on_pool_thread, thread_sensitive=False)()

        return ident(), async_to_sync(middle)()

    async with thread_sensitive():
        lane_thread, nested = await wait_for(sync_to_async(on_lane)(), 20)
        direct = await wait_for(sync_to_async(on_pool_thread, thread_sensitive=False)(), 20)
    assert nested == lane_thread
    assert direct == lane_thread


async def test_another_task_of_the_context_runs_while_the_lane_is_blocked() -> None:
    """A call of a sibling task, queued while the lane's job waits in async_to_sync for
    that very task, runs on the blocked lane thread instead of waiting behind it."""
    async with thread_sensitive():
        lane_thread = await sensitive_ident()
        sibling_ran = anyio.Event()
        seen: list[int] = []
        started = threading.Event()

        async def sibling() -> None:
            started.set()
            seen.append(await sensitive_ident())
            sibling_ran.set()

        def blocked_on_lane() -> int:
            started.wait(10)

            async def wait_for_sibling() -> int:
                await sibling_ran.wait()
                return seen[0]

            return async_to_sync(wait_for_sibling)()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sibling)
            # The sibling's call is queued on the lane, behind this blocked one.
            assert await wait_for(sync_to_async(blocked_on_lane)(), 20) == lane_thread


def test_async_to_sync_from_plain_sync_code_brings_calls_back_to_the_caller() -> None:
    async def inner() -> int:
        return await sensitive_ident()

    assert async_to_sync(inner)() == ident()
    assert asgiref.sync.async_to_sync(inner)() == ident()


def test_a_context_entered_under_async_to_sync_keeps_the_blocked_thread() -> None:
    """Django's tests run async code through async_to_sync inside a transaction of the
    calling thread: a context opened there must keep its calls on that thread."""

    async def inner() -> int:
        async with thread_sensitive():
            return await sensitive_ident()

    assert async_to_sync(inner)() == ident()
    assert asgiref.sync.async_to_sync(inner)() == ident()


# --------------------------------------------------------------------------------------
# asgiref: Django's ASGIHandler opens asgiref's ThreadSensitiveContext per request
# --------------------------------------------------------------------------------------

asgiref_ident = asgiref.sync.sync_to_async(ident)


@pytest.mark.not_on_trio("asgiref runs on asyncio only")
async def test_inside_asgiref_context_calls_run_on_its_thread_either_first() -> None:
    async with asgiref.sync.ThreadSensitiveContext():
        theirs = await asgiref_ident()
        ours = await sensitive_ident()
        assert ours == theirs
    async with asgiref.sync.ThreadSensitiveContext():
        ours = await sensitive_ident()
        theirs = await asgiref_ident()
        assert ours == theirs


@pytest.mark.not_on_trio("asgiref runs on asyncio only")
async def test_asgiref_calls_inside_a_crossgate_context_run_on_its_lane() -> None:
    async with thread_sensitive():
        ours = await sensitive_ident()
        assert await asgiref_ident() == ours
        async with asgiref.sync.ThreadSensitiveContext():  # as Django's handler does: joins
            assert await asgiref_ident() == ours
            assert await sensitive_ident() == ours


@pytest.mark.not_on_trio("asgiref runs on asyncio only")
async def test_nesting_inside_asgiref_context_comes_back_to_its_thread() -> None:
    threads: list[int] = []
    async with asgiref.sync.ThreadSensitiveContext():
        theirs = await asgiref_ident()
        assert await wait_for(nest_async(6, threads), 20) == 6

        def through_asgiref() -> int:  # asgiref's async_to_sync on the context's thread
            async def inner() -> int:
                return await sensitive_ident()

            return asgiref.sync.async_to_sync(inner)()

        assert await wait_for(asgiref_sync_sensitive(through_asgiref)(), 20) == theirs
    assert set(threads) == {theirs}


@pytest.mark.not_on_trio("asgiref runs on asyncio only")
async def test_asgiref_thread_blocked_in_crossgate_async_to_sync_serves_the_calls() -> None:
    """Django's own sync code (run by asgiref on its context's thread) calls crossgate's
    async_to_sync, whose coroutine makes thread-sensitive calls: they come back to that
    blocked thread, not to the queue of its executor behind the blocked call."""

    def djangos_sync_code() -> tuple[int, int]:
        async def inner() -> int:
            return await sensitive_ident()

        return ident(), async_to_sync(inner)()

    async with asgiref.sync.ThreadSensitiveContext():
        theirs = await asgiref_ident()
        blocked, nested = await wait_for(asgiref.sync.sync_to_async(djangos_sync_code)(), 20)
    assert blocked == nested == theirs


def asgiref_sync_sensitive(fn: Callable[[], int]) -> Callable[[], Any]:
    return asgiref.sync.sync_to_async(fn, thread_sensitive=True)


@pytest.mark.not_on_trio("asgiref runs on asyncio only")
async def test_asgiref_async_to_sync_on_a_lane_brings_calls_back_to_it() -> None:
    def on_lane() -> tuple[int, int]:
        async def inner() -> int:
            return await sensitive_ident()

        return ident(), asgiref.sync.async_to_sync(inner)()

    async with thread_sensitive():
        lane_thread, nested = await wait_for(sync_to_async(on_lane)(), 20)
    assert nested == lane_thread


# --------------------------------------------------------------------------------------
# Contexts opened per request by the adapters
# --------------------------------------------------------------------------------------


def make_app(calls: int) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        threads = set(await idents_of(calls))
        body = b"one" if len(threads) == 1 else b"many"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.not_on_trio("dispatch moves onto the backend in part 2")
async def test_dispatch_opens_a_context_per_request() -> None:
    app = dispatch({"/": make_app(5)})
    scope = {"type": "http", "path": "/x", "root_path": "", "method": "GET", "headers": []}

    async def request() -> bytes:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        await app(dict(scope), receive, send)
        body: bytes = sent[-1]["body"]
        return body

    assert await gather(*(request() for _ in range(16))) == [b"one"] * 16


def test_asgi_to_wsgi_opens_a_context_per_request() -> None:
    from wsgiref.util import setup_testing_defaults  # noqa: PLC0415

    app = asgi_to_wsgi(make_app(5), lifespan="off")
    results: list[bytes] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def request() -> None:
        environ: dict[str, Any] = {}
        setup_testing_defaults(environ)
        body = b"".join(app(environ, start_response))
        results.append(body)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert results == [b"one"] * 8


@pytest.mark.not_on_trio("wsgi_to_asgi moves onto the backend in part 2")
async def test_wsgi_to_asgi_request_thread_serves_its_sensitive_calls() -> None:
    """A WSGI app runs a request on one thread: async code it calls through async_to_sync
    brings its thread-sensitive calls back to that thread."""

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        async def inner() -> list[int]:
            return await idents_of(3)

        threads = set(async_to_sync(inner)())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"same" if threads == {ident()} else b"other"]

    app = wsgi_to_asgi(wsgi_app)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test")],
        "server": ("test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await wait_for(app(scope, receive, send), 20)
    assert b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body") == (
        b"same"
    )


@pytest.fixture
def no_contexts_left() -> Iterator[None]:
    yield
    assert asgiref.sync.SyncToAsync.thread_sensitive_context.get(None) is None


@pytest.mark.not_on_trio("asgiref runs on asyncio only")
async def test_a_context_leaves_asgiref_as_it_found_it(no_contexts_left: None) -> None:
    before = len(asgiref.sync.SyncToAsync.context_to_thread_executor)
    async with ThreadSensitive():
        await sensitive_ident()
        assert asgiref.sync.SyncToAsync.thread_sensitive_context.get(None) is not None
    assert len(asgiref.sync.SyncToAsync.context_to_thread_executor) == before


def test_sensitive_benchmark_smoke_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark runs end to end in --quick mode and reports every target."""
    bench_sensitive = pytest.importorskip("benchmarks.bench_sensitive")
    bench_sensitive.main(["--quick", "--no-server"])
    out = capsys.readouterr().out
    assert out.count("(target >=") == 4
    assert "asgiref ThreadSensitiveContext()" in out
