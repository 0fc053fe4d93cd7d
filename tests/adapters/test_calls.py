"""sync_to_async and async_to_sync: contracts, nesting, and equivalence with asgiref.sync."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

import anyio
import asgiref.sync
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossgate.adapters import _bridge
from crossgate.adapters.calls import async_to_sync, sync_to_async

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


@pytest.fixture
def pool() -> Generator[_bridge.WorkerPool]:
    pool = _bridge.WorkerPool(4, name="calls-test")
    yield pool
    pool.shutdown()


# --------------------------------------------------------------------------------------
# sync_to_async
# --------------------------------------------------------------------------------------


def looks_async(fn: object) -> bool:
    """What either iscoroutinefunction says (asyncio's is deprecated from 3.14 on)."""
    if inspect.iscoroutinefunction(fn):
        return True
    return sys.version_info < (3, 14) and asyncio.iscoroutinefunction(fn)


def add(a: int, b: int = 0) -> int:
    """Adds."""
    return a + b


async def test_sync_to_async_returns_result_with_args_and_kwargs() -> None:
    result: int = await sync_to_async(add)(2, b=3)
    assert result == 5
    assert await sync_to_async(add)(4) == 4


async def test_sync_to_async_is_a_coroutine_function_with_wrapped_metadata() -> None:
    wrapped = sync_to_async(add)
    assert inspect.iscoroutinefunction(wrapped)
    if sys.version_info < (3, 14):  # deprecated from 3.14 on
        assert asyncio.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "add"
    assert wrapped.__doc__ == "Adds."
    assert wrapped.__wrapped__ is add  # type: ignore[attr-defined]
    assert await wrapped(1, 1) == 2


async def test_sync_to_async_runs_off_the_loop_thread() -> None:
    loop_thread = threading.get_ident()
    assert await sync_to_async(threading.get_ident)() != loop_thread


async def test_sync_to_async_uses_the_given_pool(pool: _bridge.WorkerPool) -> None:
    def name() -> str:
        return threading.current_thread().name

    assert (await sync_to_async(name, thread_sensitive=False, pool=pool)()).startswith(
        "calls-test-"
    )

    @sync_to_async(thread_sensitive=False, pool=pool)
    def decorated() -> str:
        return threading.current_thread().name

    assert (await decorated()).startswith("calls-test-")
    assert pool.thread_count >= 1


async def test_sync_to_async_as_bare_decorator() -> None:
    @sync_to_async
    def double(x: int) -> int:
        return 2 * x

    assert await double(21) == 42


async def test_sync_to_async_context_flows_in_and_back() -> None:
    request_id.set("outer")

    def work() -> str:
        seen = request_id.get()
        request_id.set("inner")
        return seen

    assert await sync_to_async(work)() == "outer"
    assert request_id.get() == "inner"


async def test_sync_to_async_context_flows_back_on_error() -> None:
    def work() -> None:
        request_id.set("failed-inside")
        raise ValueError("x")

    with pytest.raises(ValueError, match="x"):
        await sync_to_async(work)()
    assert request_id.get() == "failed-inside"


def deep_failure() -> None:
    raise KeyError("deep")


async def test_sync_to_async_keeps_the_traceback() -> None:
    def outer() -> None:
        deep_failure()

    with pytest.raises(KeyError) as info:
        await sync_to_async(outer)()
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "outer" in names
    assert names[-1] == "deep_failure"


async def test_sync_to_async_cancelled_caller_gets_cancelled_error_at_once() -> None:
    started = threading.Event()
    release = threading.Event()
    outcome: list[str] = []

    def blocking() -> str:
        started.set()
        release.wait(10)
        request_id.set("after-cancel")
        return "late"

    async def caller() -> None:
        try:
            await sync_to_async(blocking)()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(caller)
        await anyio.to_thread.run_sync(started.wait, 10)
        tasks.cancel_scope.cancel()
    # The job is still blocked: the caller must finish without waiting for it.
    assert outcome == ["cancelled"]
    assert not release.is_set()
    release.set()
    assert request_id.get() == "none"


class Counter:
    def __init__(self) -> None:
        self.value = 0

    @sync_to_async
    def bump(self, by: int) -> int:
        self.value += by
        return self.value

    @async_to_sync
    async def abump(self, by: int) -> int:
        self.value += by
        return self.value


async def test_sync_to_async_on_methods_bound_and_unbound() -> None:
    counter = Counter()
    assert await counter.bump(2) == 2
    assert await Counter.bump(counter, 3) == 5
    assert inspect.iscoroutinefunction(counter.bump)


def test_sync_to_async_refuses_non_callables_and_async_functions() -> None:
    with pytest.raises(TypeError, match="callable"):
        sync_to_async(42)  # type: ignore[call-overload]

    async def coro() -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        sync_to_async(coro)
    with pytest.raises(TypeError, match="async"):  # marked the way asgiref marks its wrappers
        sync_to_async(asgiref.sync.sync_to_async(add))


def test_async_to_sync_drops_coroutine_markers_of_what_it_wraps() -> None:
    def returns_awaitable() -> Awaitable[int]:
        return asyncio.sleep(0, 5)

    marked = asgiref.sync.markcoroutinefunction(returns_awaitable)
    assert looks_async(marked)
    wrapped = async_to_sync(marked)
    assert not looks_async(wrapped)
    assert wrapped() == 5


# --------------------------------------------------------------------------------------
# async_to_sync
# --------------------------------------------------------------------------------------


async def loop_and_thread() -> tuple[_bridge.Loop, int]:
    return _bridge.running_loop(), threading.get_ident()


def test_async_to_sync_from_plain_sync_code_runs_on_the_portal() -> None:
    loop, thread = async_to_sync(loop_and_thread)()
    portal = _bridge.get_portal()
    assert loop is portal.loop
    assert thread == portal.thread.ident
    assert async_to_sync(loop_and_thread)() == (loop, thread)


def test_async_to_sync_objects_stay_usable_across_calls() -> None:
    async def make() -> asyncio.Queue[int]:
        return asyncio.Queue()

    async def put_get(queue: asyncio.Queue[int]) -> int:
        await queue.put(7)
        return await queue.get()

    queue = async_to_sync(make)()
    assert async_to_sync(put_get)(queue) == 7


async def test_async_to_sync_inside_sync_to_async_runs_on_the_callers_loop() -> None:
    me = _bridge.running_loop()  # asyncio's, or trio's TrioLoop

    def sync_part() -> _bridge.Loop:
        loop, _ = async_to_sync(loop_and_thread)()
        return loop

    assert await sync_to_async(sync_part)() is me


async def test_async_to_sync_in_a_thread_running_a_loop_raises() -> None:
    with pytest.raises(RuntimeError, match="use await instead"):
        async_to_sync(loop_and_thread)()


def test_async_to_sync_passes_args_kwargs_and_context() -> None:
    async def work(a: int, *, b: int) -> tuple[int, str]:
        seen = request_id.get()
        request_id.set("set-in-coroutine")
        return a + b, seen

    def scenario() -> None:
        request_id.set("caller")
        result: tuple[int, str] = async_to_sync(work)(1, b=2)
        assert result == (3, "caller")
        assert request_id.get() == "set-in-coroutine"

    contextvars.Context().run(scenario)


def test_async_to_sync_context_flows_back_on_error() -> None:
    async def work() -> None:
        request_id.set("failed-inside")
        raise ValueError("boom")

    def scenario() -> None:
        with pytest.raises(ValueError, match="boom"):
            async_to_sync(work)()
        assert request_id.get() == "failed-inside"

    contextvars.Context().run(scenario)


async def deep_async_failure() -> None:
    raise LookupError("deep")


def test_async_to_sync_keeps_the_traceback() -> None:
    async def outer_coroutine() -> None:
        await deep_async_failure()

    with pytest.raises(LookupError) as info:
        async_to_sync(outer_coroutine)()
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "outer_coroutine" in names
    assert names[-1] == "deep_async_failure"


def test_async_to_sync_accepts_any_awaitable_returning_callable() -> None:
    class Ready:
        def __await__(self) -> Generator[Any, None, str]:
            yield from asyncio.sleep(0).__await__()
            return "ready"

    assert async_to_sync(Ready)() == "ready"
    assert async_to_sync(lambda: asyncio.sleep(0, "slept"))() == "slept"


def test_async_to_sync_refuses_non_callables() -> None:
    with pytest.raises(TypeError, match="callable"):
        async_to_sync("not callable")  # type: ignore[arg-type]


def test_async_to_sync_is_a_plain_function_even_for_marked_callables() -> None:
    wrapped = async_to_sync(sync_to_async(add))
    assert not inspect.iscoroutinefunction(wrapped)
    if sys.version_info < (3, 14):  # deprecated from 3.14 on
        assert not asyncio.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "add"
    assert wrapped(1, 2) == 3


def test_async_to_sync_on_methods_bound_and_unbound() -> None:
    counter = Counter()
    assert counter.abump(2) == 2
    assert Counter.abump(counter, 3) == 5


# --------------------------------------------------------------------------------------
# Nesting: a pool of one thread, five levels deep both ways
# --------------------------------------------------------------------------------------


def nest_sync(level: int, pool: _bridge.WorkerPool, threads: list[int]) -> int:
    threads.append(threading.get_ident())
    if level == 0:
        return 0
    return async_to_sync(nest_async)(level - 1, pool, threads) + 1


async def nest_async(level: int, pool: _bridge.WorkerPool, threads: list[int]) -> int:
    if level == 0:
        return 0
    return (
        await sync_to_async(nest_sync, thread_sensitive=False, pool=pool)(level - 1, pool, threads)
        + 1
    )


async def test_nesting_from_async_code_does_not_deadlock_a_one_thread_pool() -> None:
    pool = _bridge.WorkerPool(1, name="nest")
    threads: list[int] = []
    try:
        with anyio.fail_after(20):
            assert await nest_async(10, pool, threads) == 10
    finally:
        pool.shutdown()
    assert len(threads) == 5
    assert len(set(threads)) == 1  # every sync level ran on the one pool thread


def test_nesting_from_sync_code_does_not_deadlock_a_one_thread_pool() -> None:
    pool = _bridge.WorkerPool(1, name="nest")
    threads: list[int] = []
    try:
        assert nest_sync(10, pool, threads) == 10
    finally:
        pool.shutdown()
    assert len(threads) == 6
    assert set(threads) == {threading.get_ident()}  # no thread taken from the pool
    assert pool.thread_count == 0


# --------------------------------------------------------------------------------------
# Properties: the same observable outcomes as asgiref.sync
# --------------------------------------------------------------------------------------


class Custom(Exception):
    """An application's own exception type."""


VARS = [contextvars.ContextVar[object](f"prop_{i}", default="unset") for i in range(3)]
EXCEPTIONS: list[type[Exception]] = [ValueError, KeyError, RuntimeError, LookupError, Custom]

values = st.none() | st.booleans() | st.integers() | st.text(max_size=8)


@dataclass(frozen=True)
class Behaviour:
    """What a generated function does: read the context, set some vars, end somehow."""

    before: tuple[tuple[int, object], ...]  # set by the caller before the call
    sets: tuple[tuple[int, object], ...]  # set by the function
    raises: type[Exception] | None
    message: str
    value: object

    def body(self) -> object:
        seen = tuple(var.get() for var in VARS)
        for index, value in self.sets:
            VARS[index].set(value)
        if self.raises is not None:
            raise self.raises(self.message)
        return (self.value, seen)

    async def async_body(self) -> object:
        await asyncio.sleep(0)
        return self.body()


behaviours = st.builds(
    Behaviour,
    before=st.lists(st.tuples(st.integers(0, 2), values), max_size=3).map(tuple),
    sets=st.lists(st.tuples(st.integers(0, 2), values), max_size=3).map(tuple),
    raises=st.none() | st.sampled_from(EXCEPTIONS),
    message=st.text(max_size=8),
    value=values,
)

Outcome = tuple[str, object, tuple[object, ...]]


def observe_sync(behaviour: Behaviour, call: Callable[[], object]) -> Outcome:
    """Run ``call()`` in a fresh context; what it returned or raised, and the vars after."""

    def scenario() -> Outcome:
        for index, value in behaviour.before:
            VARS[index].set(value)
        try:
            result: tuple[str, object] = ("returned", call())
        except Exception as exc:
            result = ("raised", (type(exc), exc.args))
        return (*result, tuple(var.get() for var in VARS))

    outcome: Outcome = contextvars.Context().run(scenario)
    return outcome


async def observe_async(behaviour: Behaviour, call: Callable[[], Awaitable[object]]) -> Outcome:
    """As :func:`observe_sync`, for an awaited call, in a task of its own (own context)."""

    async def scenario() -> Outcome:
        for var in VARS:
            var.set("unset")
        for index, value in behaviour.before:
            VARS[index].set(value)
        try:
            result: tuple[str, object] = ("returned", await call())
        except Exception as exc:
            result = ("raised", (type(exc), exc.args))
        return (*result, tuple(var.get() for var in VARS))

    return await asyncio.create_task(scenario())


PROPERTY = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.not_on_trio("asgiref's sync_to_async runs on asyncio only")
@PROPERTY
@given(behaviour=behaviours)
async def test_property_sync_to_async_behaves_like_asgiref(behaviour: Behaviour) -> None:
    ours = await observe_async(behaviour, sync_to_async(behaviour.body, thread_sensitive=False))
    theirs = await observe_async(
        behaviour, asgiref.sync.sync_to_async(behaviour.body, thread_sensitive=False)
    )
    assert ours == theirs
    ours = await observe_async(behaviour, sync_to_async(behaviour.body))
    theirs = await observe_async(behaviour, asgiref.sync.sync_to_async(behaviour.body))
    assert ours == theirs


@PROPERTY
@given(behaviour=behaviours)
def test_property_async_to_sync_behaves_like_asgiref(behaviour: Behaviour) -> None:
    ours = observe_sync(behaviour, async_to_sync(behaviour.async_body))
    theirs = observe_sync(behaviour, asgiref.sync.async_to_sync(behaviour.async_body))
    assert ours == theirs


@pytest.mark.not_on_trio("asgiref's sync_to_async runs on asyncio only")
@PROPERTY
@given(behaviour=behaviours)
async def test_property_nested_calls_behave_like_asgiref(behaviour: Behaviour) -> None:
    """async -> sync -> async: async_to_sync inside sync_to_async, each library with itself."""
    ours = await observe_async(
        behaviour, sync_to_async(async_to_sync(behaviour.async_body), thread_sensitive=False)
    )
    theirs = await observe_async(
        behaviour,
        asgiref.sync.sync_to_async(
            asgiref.sync.async_to_sync(behaviour.async_body), thread_sensitive=False
        ),
    )
    assert ours == theirs


def test_calls_benchmark_smoke_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark runs end to end in --quick mode and reports every target."""
    bench_calls = pytest.importorskip("benchmarks.bench_calls")
    bench_calls.main(["--quick"])
    out = capsys.readouterr().out
    assert out.count("(target >=") == 5
    assert "crossgate async_to_sync in sync_to_async" in out
