"""Every promise of the thread/loop bridge, one behaviour per test.

Threads that play the sync side of a channel are started with ``asyncio.to_thread`` (not
the bridge's own pool), so a bug in the pool cannot hide or cause a channel failure.
Waits are on events with generous limits: this runs on slow, shared machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import gc
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import pytest

from crossgate._errors import BridgeClosed
from crossgate.adapters import _bridge
from crossgate.adapters._bridge import (
    LoopToThread,
    Portal,
    ThreadToLoop,
    Waiter,
    WorkerPool,
    is_cancellation,
    running_loop,
)
from tests.adapters.support import no_new_cycles

pytestmark = [pytest.mark.anyio, pytest.mark.on_trio]

LONG = 10.0  # the most any wait may take before the test is considered hung

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout: float) -> T:
    """``asyncio.wait_for`` on any loop."""
    with anyio.fail_after(timeout):
        return await awaitable


class TaskCancelled(Exception):
    """What awaiting a cancelled :class:`Spawned` raises (trio has no CancelledError to
    hand from one task to another)."""


class Spawned(Generic[T]):
    """``asyncio.create_task`` on any loop: a task whose outcome can be awaited once."""

    def __init__(self, awaitable: Awaitable[T]) -> None:
        loop = running_loop()
        self._outcome: Waiter[T] = loop.create_future()
        self._task = loop.create_task(self._run(awaitable))

    async def _run(self, awaitable: Awaitable[T]) -> None:
        try:
            value = await awaitable
        except BaseException as exc:
            if is_cancellation(exc):
                self._outcome.set_exception(TaskCancelled())
                raise
            self._outcome.set_exception(exc)
        else:
            self._outcome.set_result(value)

    def cancel(self) -> None:
        self._task.cancel()

    def done(self) -> bool:
        return self._outcome.done()

    def __await__(self) -> Generator[Any, None, T]:
        return self._outcome.__await__()


async def gather(*spawned: Spawned[T]) -> list[T]:
    return [await task for task in spawned]


async def submitted(pool: WorkerPool, jobs: int) -> None:
    """Wait until ``jobs`` jobs were submitted to ``pool``: tasks spawned together may
    start in any order, and on trio later than the next loop turn."""
    with anyio.fail_after(LONG):
        while len(pool._busy) < jobs:  # noqa: ASYNC110 - a pool count, not an event
            await anyio.sleep(0.001)


async def to_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``asyncio.to_thread`` on any loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


var: contextvars.ContextVar[str] = contextvars.ContextVar("bridge_test_var", default="unset")


_names = itertools.count()


def unique(name: str) -> str:
    """A pool name no other test uses: shut-down pools' threads may still be exiting."""
    return f"{name}{next(_names)}"


def pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{name}-")]


def stop(pool: WorkerPool) -> None:
    pool.shutdown()
    for thread in pool_threads(pool.name):
        thread.join(LONG)


@pytest.fixture
def pool() -> Generator[WorkerPool]:
    pool = WorkerPool(3, name=unique("bridge-test"))
    yield pool
    stop(pool)


async def wait_for_thread_event(event: threading.Event) -> None:
    """Await a threading.Event without blocking the loop."""
    assert await to_thread(event.wait, LONG)


# --------------------------------------------------------------------------------------
# WorkerPool
# --------------------------------------------------------------------------------------


async def test_pool_starts_no_thread_until_first_submit() -> None:
    pool = WorkerPool(2, name=unique("lazy-pool"))
    try:
        assert pool.thread_count == 0
        assert pool_threads(pool.name) == []
        assert await pool.run(lambda: 1) == 1
        assert pool.thread_count == 1
        assert len(pool_threads(pool.name)) == 1
    finally:
        stop(pool)


def test_pool_refuses_zero_workers() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerPool(0)


async def test_pool_reuses_an_idle_thread() -> None:
    pool = WorkerPool(4, name="reuse-pool")
    try:
        for _ in range(5):
            await pool.run(lambda: None)
        assert pool.thread_count == 1
    finally:
        stop(pool)


async def test_pool_is_bounded_and_queues_without_deadlock(pool: WorkerPool) -> None:
    """3 workers, 20 jobs that each wait on a gate: 3 run, 17 queue, all finish."""
    gate = threading.Event()
    three_running = threading.Event()
    lock = threading.Lock()
    running = 0
    peak = 0

    def job(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3:
                three_running.set()
        assert gate.wait(LONG)
        with lock:
            running -= 1
        return i

    tasks = [Spawned(pool.run(job, i)) for i in range(20)]
    await wait_for_thread_event(three_running)
    assert pool.thread_count == 3
    assert len(pool_threads(pool.name)) == 3
    gate.set()
    assert await wait_for(gather(*tasks), LONG) == list(range(20))
    assert peak == 3
    assert pool.thread_count == 3


async def test_a_job_that_steps_away_frees_its_slot_up_to_max_threads() -> None:
    """One worker slot, three threads at most: two jobs waiting on the network (stepped
    away) leave the slot to a third; a fourth queues until a thread frees up; threads
    beyond max_workers end once they find nothing queued."""
    pool = WorkerPool(1, max_threads=3, name=unique("away-pool"))
    release = threading.Event()
    waiting = threading.Semaphore(0)

    def waits_on_the_network() -> str:
        assert _bridge.step_away()
        assert not _bridge.step_away()  # already away: nothing to undo for this one
        waiting.release()
        try:
            assert release.wait(LONG)
        finally:
            _bridge.step_back()
        return "waited"

    try:
        waiters = [Spawned(pool.run(waits_on_the_network)) for _ in range(2)]
        for _ in range(2):
            await to_thread(waiting.acquire, timeout=LONG)
        assert await wait_for(pool.run(lambda: "ran beside them"), LONG) == ("ran beside them")
        assert pool.thread_count <= 3
        third = Spawned(pool.run(waits_on_the_network))
        await to_thread(waiting.acquire, timeout=LONG)
        assert pool.thread_count == 3
        queued = Spawned(pool.run(lambda: "queued"))
        await anyio.sleep(0.05)
        assert not queued.done()  # three threads, all taken: the hard cap holds
        release.set()
        assert await wait_for(gather(*waiters, third, queued), LONG) == [
            "waited",
            "waited",
            "waited",
            "queued",
        ]
        # Threads beyond max_workers end after SURPLUS_IDLE seconds without work.
        for _ in range(int(LONG / 0.01)):
            if pool.thread_count == 1:
                break
            await anyio.sleep(0.01)
        assert pool.thread_count == 1
    finally:
        stop(pool)


def test_step_away_off_a_pool_thread_does_nothing() -> None:
    assert not _bridge.step_away()


def test_max_threads_below_max_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        WorkerPool(4, max_threads=2)
    assert WorkerPool(4).max_threads == _bridge.DEFAULT_MAX_THREADS
    assert WorkerPool(1000).max_threads == 1000


async def test_pool_drain_times_out_then_succeeds(pool: WorkerPool) -> None:
    assert await pool.drain(timeout=0)  # idle: true at once
    release = threading.Event()
    started = threading.Event()

    def hold() -> bool:
        started.set()
        return release.wait(LONG)

    # Waited for, not assumed after one loop turn: trio may run the task later than that.
    task = Spawned(pool.run(hold))
    await to_thread(started.wait, LONG)
    assert not await pool.drain(timeout=0.05)
    release.set()
    assert await pool.drain(timeout=LONG)
    assert await task


async def test_pool_drain_sees_a_job_that_ends_as_it_registers(pool: WorkerPool) -> None:
    # A worker marks its job done without the pool lock, then looks for drain() waiters.
    # A drain() that found the job busy but registers only after the worker looked must
    # still return (it re-checks after registering) instead of waiting out its timeout.
    release = threading.Event()

    class LateRegistration(list[Any]):
        def append(self, item: Any) -> None:
            release.set()  # the job ends now, after drain() saw it busy
            deadline = time.monotonic() + LONG
            while pool._busy and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.05)  # and the worker has looked for waiters: there were none
            super().append(item)

    pool._drained = LateRegistration()
    pool.start(release.wait, LONG, loop=running_loop())
    await anyio.lowlevel.checkpoint()
    assert await pool.drain(timeout=2.0)


async def test_pool_shutdown_finishes_queued_work_then_refuses() -> None:
    small = WorkerPool(1, name=unique("shut-pool"))
    release = threading.Event()
    started = threading.Event()

    def hold() -> bool:
        started.set()
        return release.wait(LONG)

    first = Spawned(small.run(hold))
    await wait_for_thread_event(started)
    second = Spawned(small.run(lambda: "queued"))
    await submitted(small, 2)
    small.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        small.submit(lambda: None)
    release.set()
    assert await wait_for(first, LONG)
    assert await wait_for(second, LONG) == "queued"
    for thread in pool_threads(small.name):
        thread.join(LONG)
        assert not thread.is_alive()


def raise_deep() -> None:
    raise ValueError("from the worker")


async def test_pool_run_propagates_exception_with_traceback(pool: WorkerPool) -> None:
    def job() -> None:
        raise_deep()

    with pytest.raises(ValueError, match="from the worker") as info:
        await pool.run(job)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert names[-2:] == ["job", "raise_deep"]


async def test_pool_run_uses_a_copy_of_the_callers_context(pool: WorkerPool) -> None:
    var.set("caller")

    def job() -> str:
        seen = var.get()
        var.set("job")
        return seen

    assert await pool.run(job) == "caller"
    assert var.get() == "caller"  # a copy: no copy_back here


async def test_pool_run_in_an_explicit_context(pool: WorkerPool) -> None:
    ctx = contextvars.Context()
    assert await pool.run(var.set, "in-ctx", context=ctx) is not None
    assert ctx[var] == "in-ctx"


async def test_pool_job_sees_its_origin_loop(pool: WorkerPool) -> None:
    assert _bridge.origin_loop() is None
    assert await pool.run(_bridge.origin_loop) is running_loop()


async def test_pool_start_runs_in_a_copy_of_the_context_with_the_origin_loop(
    pool: WorkerPool,
) -> None:
    loop = running_loop()
    var.set("caller")
    done: Waiter[tuple[str, _bridge.Loop | None]] = loop.create_future()

    def job(tag: str) -> None:
        seen = var.get()
        var.set("job")  # a copy: the caller's value stays
        _bridge.resolve_threadsafe(done, (f"{tag}:{seen}", _bridge.origin_loop()))

    pool.start(job, "t", loop=loop)
    assert await wait_for(done, 10) == ("t:caller", loop)
    assert var.get() == "caller"


async def test_pool_start_calls_the_returned_delivery_once_the_thread_is_idle() -> None:
    # What a job returns is called after the worker counted itself idle: a caller woken by
    # it that starts the next job at once finds this thread free, not a new one started.
    reuse = WorkerPool(4, name="deliver-pool")
    loop = running_loop()
    try:
        for i in range(5):
            done: Waiter[tuple[int, int]] = loop.create_future()

            def job(n: int, fut: Waiter[tuple[int, int]]) -> Callable[[], None]:
                def deliver() -> None:
                    _bridge.resolve_threadsafe(fut, (n, len(reuse._idle)))

                return deliver

            reuse.start(job, i, done, loop=loop)
            assert await wait_for(done, 10) == (i, 1)  # idle when it delivered
        assert reuse.thread_count == 1
    finally:
        stop(reuse)


async def test_a_worker_yields_the_cpu_between_jobs_once_it_has_worked_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker that runs job after job keeps the GIL until CPython forces a switch in the
    # middle of whatever the app does; it lets the others run between jobs instead.
    yields: list[str] = []
    monkeypatch.setattr(_bridge.pool, "YIELD_AFTER", 0.05)  # wide: a slow CI machine stays under
    monkeypatch.setattr(
        _bridge.pool, "_yield_cpu", lambda: yields.append(threading.current_thread().name)
    )
    single = WorkerPool(1, name=unique("yield-pool"))  # one thread: every job in order on it
    try:
        for _ in range(3):
            await single.run(lambda: None)  # next to no work: no yield
        await single.run(time.sleep, 0.1)  # over YIELD_AFTER: a yield once it is done
        await single.run(lambda: None)  # runs after that yield; the count started again
        await single.run(lambda: None)
        assert len(yields) == 1
        assert yields[0].startswith(single.name)  # the worker yields, not the caller
    finally:
        stop(single)


async def test_a_pool_that_cannot_start_its_first_thread_refuses_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    empty = WorkerPool(2, name=unique("refused-pool"))
    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await empty.run(lambda: 1)
    assert await empty.drain(0.5)  # the refused job is not waited for
    assert await empty.run(lambda: 2) == 2  # threads can start again: the pool works
    stop(empty)


async def test_a_job_waits_for_a_busy_thread_when_no_new_one_can_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pool = WorkerPool(4, name=unique("limited-pool"))
    release = threading.Event()
    running = threading.Event()

    def hold() -> bool:
        running.set()
        return release.wait(5)

    try:
        first = Spawned(pool.run(hold))
        assert await to_thread(running.wait, 5)

        def refuse(self: threading.Thread) -> None:
            raise RuntimeError("can't start new thread")

        with monkeypatch.context() as patched:
            patched.setattr(threading.Thread, "start", refuse)
            second = Spawned(pool.run(lambda: "queued"))
            await anyio.sleep(0.05)
        assert not second.done()  # queued behind the busy thread, not lost
        assert "could not start a thread" in caplog.text
        release.set()
        assert await first is True
        assert await second == "queued"
        assert await pool.drain(5)
        assert pool.thread_count == 1
    finally:
        release.set()
        stop(pool)


async def test_pool_start_logs_an_escaping_error_and_keeps_the_thread(
    pool: WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    def fail() -> None:
        raise RuntimeError("job broke its contract")

    pool.start(fail, loop=running_loop())
    assert await pool.drain(10)
    assert "uncaught error in a worker job" in caplog.text
    assert await pool.run(lambda: 7) == 7  # the worker survived


async def test_resolve_threadsafe_after_the_loop_closed_is_a_no_op() -> None:
    other = asyncio.new_event_loop()
    fut = other.create_future()
    other.close()
    _bridge.resolve_threadsafe(fut, 1)  # must not raise: nobody is left to tell
    assert not fut.done()


async def test_cancelled_caller_returns_at_once_and_queued_job_is_skipped() -> None:
    single = WorkerPool(1, name="cancel-pool")
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()
    queued_ran = threading.Event()

    def blocking() -> None:
        started.set()
        release.wait(LONG)
        finished.set()

    try:
        running = Spawned(single.run(blocking))
        await wait_for_thread_event(started)
        queued = Spawned(single.run(queued_ran.set))
        await submitted(single, 2)
        running.cancel()
        queued.cancel()
        with pytest.raises(TaskCancelled):
            await running
        with pytest.raises(TaskCancelled):
            await queued
        assert not finished.is_set()  # cancelled while the job still runs
        release.set()
        await wait_for_thread_event(finished)
        assert await single.drain(LONG)
        assert not queued_ran.is_set()
    finally:
        release.set()
        stop(single)


async def test_run_sync_uses_the_given_pool(pool: WorkerPool) -> None:
    name = await _bridge.run_sync(lambda: threading.current_thread().name, pool=pool)
    assert name.startswith(f"{pool.name}-")
    default = await _bridge.run_sync(lambda: threading.current_thread().name)
    assert default.startswith(_bridge.default_pool().name)


def test_default_pool_is_one_per_process() -> None:
    assert _bridge.default_pool() is _bridge.default_pool()
    with pytest.raises(ValueError, match="at least 1"):
        _bridge.set_default_workers(0)


def test_copy_back_sets_changed_vars_only_and_never_private_ones() -> None:
    def scenario() -> None:
        var.set("before")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "after")
        ctx.run(_bridge.mailbox._current_mailbox.set, _bridge.mailbox._Mailbox())
        _bridge.copy_back(ctx)
        assert var.get() == "after"
        assert _bridge.mailbox._current_mailbox.get() is None

    contextvars.Context().run(scenario)


# --------------------------------------------------------------------------------------
# Portal and call_in_loop
# --------------------------------------------------------------------------------------


def test_nothing_starts_at_import_and_the_portal_starts_once() -> None:
    code = (
        "import threading\n"
        "import crossgate, crossgate.adapters.calls\n"
        "from crossgate.adapters import _bridge as b\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert b.portal._asyncio_portal.portal is None and b.pool._default_pool is None\n"
        "p = b.get_portal()\n"
        "assert threading.active_count() == 2\n"
        "assert b.get_portal() is p\n"
        "assert threading.active_count() == 2\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr.decode()


async def where() -> tuple[_bridge.Loop, int]:
    await anyio.lowlevel.checkpoint()
    return running_loop(), threading.get_ident()


def test_portal_call_works_from_many_threads_at_once() -> None:
    portal = _bridge.get_portal()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def caller(n: int) -> None:
        try:
            barrier.wait(LONG)
            for i in range(20):

                async def echo(x: int) -> tuple[int, _bridge.Loop]:
                    await anyio.lowlevel.checkpoint()
                    return x, running_loop()

                assert portal.call(echo, n * 100 + i) == (n * 100 + i, portal.loop)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LONG)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)


def test_portal_call_from_the_portal_thread_raises() -> None:
    portal = _bridge.get_portal()

    async def reenter() -> str:
        try:
            portal.call(where)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert "deadlock" in portal.call(reenter)


def test_portal_close_runs_hooks_in_reverse_and_cancels_leftovers() -> None:
    portal = Portal(name="private-portal")
    order: list[str] = []
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await anyio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def hook(name: str) -> Callable[[], Any]:
        async def run() -> None:
            order.append(name)

        return run

    portal.spawn(forever)
    portal.on_close(hook("first"))
    portal.on_close(hook("second"))
    portal.close()
    assert order == ["second", "first"]
    assert portal.closed
    assert cancelled.is_set()
    assert not portal.thread.is_alive()
    portal.close()  # idempotent


def test_get_portal_replaces_a_closed_portal(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = Portal(name="closed-portal")
    closed.close()
    monkeypatch.setattr(_bridge.portal._asyncio_portal, "portal", closed)  # restored after the test
    fresh = _bridge.get_portal()
    try:
        assert fresh is not closed
        assert not fresh.closed
        assert fresh.call(where)[0] is fresh.loop
        assert _bridge.get_portal() is fresh
    finally:
        fresh.close()


def in_forked_child(check: Callable[[], bool]) -> int:
    """Run ``check()`` in a forked child; its exit code (0: passed, 1: failed, 2: raised)."""
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only, never return into pytest
        status = 2
        try:
            status = 0 if check() else 1
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    deadline = time.monotonic() + LONG * 3
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(wait_status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)


def test_fork_rebuilds_portal_and_pool_in_the_child() -> None:
    parent_portal = _bridge.get_portal()
    pool = WorkerPool(2, name="fork-pool")

    async def use_pool() -> str:
        return await pool.run(lambda: threading.current_thread().name)

    def check() -> bool:
        child_portal = _bridge.get_portal()
        return (
            child_portal is not parent_portal
            and child_portal.pid == os.getpid()
            and pool.thread_count == 0
            and child_portal.call(use_pool).startswith("fork-pool-")
            and pool.thread_count == 1
            and child_portal.call(where)[0] is child_portal.loop
        )

    try:
        assert parent_portal.call(use_pool).startswith("fork-pool-")
        assert pool.thread_count == 1
        assert in_forked_child(check) == 0
        assert _bridge.get_portal() is parent_portal  # the parent keeps its own
        assert pool.thread_count == 1
    finally:
        stop(pool)


def test_fork_while_another_thread_holds_the_bridge_locks() -> None:
    pool = WorkerPool(1, name="locked-pool")
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with pool._lock, _bridge.portal._portal_lock, _bridge.pool._default_lock:
            holding.set()
            release.wait(LONG)

    async def use_pool() -> int:
        return await pool.run(lambda: 7)

    def check() -> bool:
        return _bridge.get_portal().call(use_pool) == 7 and _bridge.default_pool() is not None

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(LONG)
        assert in_forked_child(check) == 0
    finally:
        release.set()
        holder.join(LONG)
        stop(pool)


def test_call_in_loop_timeout_cancels_the_task() -> None:
    portal = _bridge.get_portal()
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await anyio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError, match="did not finish"):
        _bridge.call_in_loop(portal.loop, slow, timeout=0.05)
    assert cancelled.wait(LONG)


def test_call_in_loop_refuses_a_loop_that_is_not_running() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="not running"):
            _bridge.call_in_loop(loop, where)
    finally:
        loop.close()


def test_call_in_loop_propagates_result_exception_and_context() -> None:
    portal = _bridge.get_portal()

    async def boom() -> None:
        raise KeyError("loop side")

    with pytest.raises(KeyError, match="loop side") as info:
        _bridge.call_in_loop(portal.loop, boom)
    assert traceback.extract_tb(info.value.__traceback__)[-1].name == "boom"

    async def set_var() -> str:
        seen = var.get()
        var.set("from-loop")
        return seen

    ctx = contextvars.Context()
    ctx.run(var.set, "given")
    assert _bridge.call_in_loop(portal.loop, set_var, context=ctx) == "given"
    assert ctx[var] == "from-loop"


async def test_call_in_loop_from_the_loops_own_thread_raises() -> None:
    with pytest.raises(RuntimeError, match="deadlock"):
        _bridge.call_in_loop(running_loop(), where)


def test_call_in_loop_base_exceptions_reach_the_caller_and_spare_the_portal() -> None:
    portal = _bridge.get_portal()

    async def exit_app() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        portal.call(exit_app)
    assert portal.loop.is_running()
    assert portal.call(where)[0] is portal.loop


def test_call_in_loop_leaves_no_reference_cycles() -> None:
    portal = _bridge.get_portal()
    portal.call(where)  # warm up: first calls create long-lived objects
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(200):
            portal.call(where)
        # A cycle per call would leave hundreds of objects only the collector frees.
        assert len(gc.get_objects()) - before < 100
    finally:
        gc.enable()


def test_a_call_in_loop_that_raises_leaves_no_reference_cycles() -> None:
    """The error reaches the caller without tying the caller's frames into a cycle (a
    worker reading a body the client cut short meets one on every such request)."""
    portal = _bridge.get_portal()

    async def fail() -> None:
        raise ValueError("no")

    def call() -> None:
        with contextlib.suppress(ValueError):
            portal.call(fail)

    call()
    with no_new_cycles():
        for _ in range(20):
            call()


@pytest.mark.not_on_trio("asyncio's task factory")
async def test_call_in_loop_reports_a_failing_task_factory() -> None:
    """The error reaches the caller, and no coroutine is left un-awaited (a warning)."""
    loop = asyncio.get_running_loop()

    def refuse(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        raise RuntimeError("no more tasks")

    loop.set_task_factory(refuse)
    try:
        with pytest.raises(RuntimeError, match="no more tasks"):
            await to_thread(_bridge.call_in_loop, loop, where)
    finally:
        loop.set_task_factory(None)


class Interrupted(Exception):
    """Raised by a signal handler in the main thread, as KeyboardInterrupt would be."""


def test_interrupted_caller_hands_later_sync_work_to_the_pool() -> None:
    """A coroutine cancelled because its caller was interrupted can still clean up."""
    portal = _bridge.get_portal()
    started = threading.Event()
    cleaned_up = threading.Event()
    cleanup_thread: list[int] = []

    async def coro() -> None:
        started.set()
        try:
            await anyio.sleep(3600)
        except asyncio.CancelledError:
            cleanup_thread.append(await _bridge.run_sync(threading.get_ident))
            cleaned_up.set()
            raise

    hit = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        if not hit.is_set():  # once: a later signal must not raise somewhere else
            hit.set()
            raise Interrupted

    def send_signal() -> None:
        # Repeated: CPython loses a signal that lands just before the main thread blocks
        # in a lock acquire (the handler then runs only once the lock is released).
        if started.wait(LONG):
            while not hit.is_set():
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
                hit.wait(0.01)

    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGUSR1, interrupt)
    sender = threading.Thread(target=send_signal)
    try:
        sender.start()
        with pytest.raises(Interrupted):
            _bridge.call_in_loop(portal.loop, coro)
    finally:
        sender.join(LONG)
        signal.signal(signal.SIGUSR1, previous)
    assert cleaned_up.wait(LONG)
    assert cleanup_thread != [threading.get_ident()]


def test_call_in_loop_runs_nested_sync_work_on_the_blocked_thread() -> None:
    portal = _bridge.get_portal()
    pool = WorkerPool(1, name="unused-pool")

    async def nested() -> int:
        return await _bridge.run_sync(threading.get_ident, pool=pool)

    try:
        assert _bridge.call_in_loop(portal.loop, nested) == threading.get_ident()
        assert pool.thread_count == 0
    finally:
        stop(pool)


# --------------------------------------------------------------------------------------
# ThreadToLoop
# --------------------------------------------------------------------------------------


def chunkings(body: bytes) -> dict[str, list[bytes]]:
    """The three ways every body is fed: whole, many chunks (some empty), byte by byte."""
    many = [body[i : i + 700] for i in range(0, len(body), 700)]
    many = [piece for chunk in many for piece in (chunk, b"")]
    return {"whole": [body], "chunks": many, "bytes": [body[i : i + 1] for i in range(len(body))]}


BODY = bytes(range(256)) * 20  # 5120 bytes


async def test_thread_to_loop_batches_puts_made_while_the_consumer_is_away() -> None:
    channel: ThreadToLoop[int] = ThreadToLoop(running_loop())

    def produce() -> None:
        for i in range(50):
            channel.put(i, 1)

    await to_thread(produce)
    assert await channel.get() == list(range(50))  # one get, one batch
    assert channel.in_flight == 0


async def test_thread_to_loop_wakes_a_waiting_consumer() -> None:
    channel: ThreadToLoop[str] = ThreadToLoop(running_loop())
    getter = Spawned(channel.get())
    await anyio.lowlevel.checkpoint()
    assert not getter.done()
    await to_thread(channel.put, "x", 1)
    assert await wait_for(getter, LONG) == ["x"]


async def test_thread_to_loop_backpressure_blocks_producer_until_consumer_takes() -> None:
    channel: ThreadToLoop[bytes] = ThreadToLoop(running_loop(), budget=10)
    returned = threading.Event()

    def produce() -> None:
        channel.put(b"aaaa", 4)
        channel.put(b"bbbb", 4)
        channel.put(b"cccc", 4)  # 8 < 10: queued at once, spending the budget (12 >= 10)
        channel.put(b"dddd", 4)  # waits for the consumer before it is queued
        returned.set()

    producer = Spawned(to_thread(produce))
    while not channel._producer_waiting:  # noqa: ASYNC110 - a thread's progress has no awaitable
        await anyio.sleep(0.001)
    await anyio.sleep(0.02)
    assert not returned.is_set()
    assert channel.in_flight == 12  # the waiting item is not in flight
    assert await channel.get() == [b"aaaa", b"bbbb", b"cccc"]
    await wait_for(producer, LONG)
    assert returned.is_set()
    assert await channel.get() == [b"dddd"]


async def test_thread_to_loop_last_item_that_spends_the_budget_does_not_wait() -> None:
    # The wait is for room for the next item: a producer whose last item spends the budget
    # closes the stream at once, with no round trip to the consumer.
    channel: ThreadToLoop[bytes] = ThreadToLoop(running_loop(), budget=4)

    def produce() -> None:
        channel.put(b"aaaa", 4)
        channel.put(b"bbbbbbbb", 8)  # 4 >= 4 after the first: this one waited, then 8 >= 4
        channel.close()

    producer = Spawned(to_thread(produce))
    assert await wait_for(channel.get(), LONG) == [b"aaaa"]
    await wait_for(producer, LONG)  # ended without the consumer taking the last item
    assert channel.in_flight == 8
    assert await channel.get() == [b"bbbbbbbb"]
    assert await channel.get() == []


async def test_thread_to_loop_producer_timeout() -> None:
    channel: ThreadToLoop[bytes] = ThreadToLoop(running_loop(), budget=2)
    channel.put(b"abc", 3)  # room before it: queued, the budget is spent
    with pytest.raises(TimeoutError, match="took nothing"):
        await to_thread(channel.put, b"de", 2, timeout=0.02)
    assert await channel.get() == [b"abc"]  # the item that timed out was not queued
    channel.put(b"de", 2)
    assert await channel.get() == [b"de"]


async def test_thread_to_loop_producer_close_is_the_end() -> None:
    channel: ThreadToLoop[str] = ThreadToLoop(running_loop())

    def produce() -> None:
        channel.put("a")
        channel.put("b")
        channel.close()

    await to_thread(produce)
    assert await channel.get() == ["a", "b"]
    assert await channel.get() == []
    assert await channel.get() == []
    with pytest.raises(BridgeClosed):
        channel.put("late")


async def test_thread_to_loop_consumer_close_with_error_wakes_blocked_producer() -> None:
    channel: ThreadToLoop[bytes] = ThreadToLoop(running_loop(), budget=1)
    channel.put(b"xx", 2)  # the budget is spent: the next put waits

    blocked = Spawned(to_thread(channel.put, b"yy", 2))
    while not channel._producer_waiting:  # noqa: ASYNC110 - a thread's progress has no awaitable
        await anyio.sleep(0.001)
    channel.close(ConnectionResetError("client left"))
    with pytest.raises(ConnectionResetError, match="client left"):
        await wait_for(blocked, LONG)


async def test_thread_to_loop_producer_error_reaches_the_consumer() -> None:
    channel: ThreadToLoop[bytes] = ThreadToLoop(running_loop())
    getter = Spawned(channel.get())
    await anyio.lowlevel.checkpoint()
    assert not getter.done()
    await to_thread(channel.close, OSError("app failed"))
    with pytest.raises(OSError, match="app failed"):
        await wait_for(getter, LONG)


async def test_thread_to_loop_error_close_drops_queued_items() -> None:
    channel: ThreadToLoop[bytes] = ThreadToLoop(running_loop())
    channel.put(b"queued", 6)
    channel.close(OSError("gone"))
    with pytest.raises(OSError, match="gone"):
        await channel.get()


async def test_thread_to_loop_error_close_with_keep_delivers_queued_items_first() -> None:
    channel: ThreadToLoop[bytes] = ThreadToLoop(running_loop())
    channel.put(b"sent", 4)
    channel.close(RuntimeError("app failed"), keep=True)
    assert await channel.get() == [b"sent"]
    with pytest.raises(RuntimeError, match="app failed"):
        await channel.get()


async def test_loop_to_thread_error_close_with_keep_delivers_queued_items_first() -> None:
    channel: LoopToThread[bytes] = LoopToThread(running_loop())
    assert channel.put_nowait(b"sent", 4)
    channel.close(RuntimeError("app failed"), keep=True)
    assert channel.get(timeout=5) == [b"sent"]
    with pytest.raises(RuntimeError, match="app failed"):
        channel.get(timeout=5)


async def test_channels_raise_the_producers_error_itself_once_then_copies() -> None:
    """The consumer meets the error itself (its traceback is the app's); kept and raised
    again, its traceback would gain frames that hold the channel: a reference cycle."""
    loop = running_loop()
    to_loop: ThreadToLoop[bytes] = ThreadToLoop(loop)
    to_thread: LoopToThread[bytes] = LoopToThread(loop)
    error = ValueError("app failed")
    for channel in (to_loop, to_thread):
        channel.close(error)
    with pytest.raises(ValueError, match="app failed") as first:
        await to_loop.get()
    assert first.value is error
    with pytest.raises(ValueError, match="app failed") as again:
        await to_loop.get()
    assert again.value is not error
    with pytest.raises(ValueError, match="app failed") as first:
        to_thread.get(timeout=5)
    assert first.value is error
    with pytest.raises(ValueError, match="app failed") as again:
        to_thread.get(timeout=5)
    assert again.value is not error


async def test_a_stopped_channel_raises_a_fresh_copy_of_the_stop_at_each_use() -> None:
    """The producer meets the consumer's stop at every put (an app may catch it and go on):
    each a new exception of the same type, the kept one never raised."""
    loop = running_loop()
    stop = ConnectionResetError("client left")
    to_loop: ThreadToLoop[bytes] = ThreadToLoop(loop)
    to_loop.close(stop)
    to_thread: LoopToThread[bytes] = LoopToThread(loop)
    to_thread.close(stop)
    raised: list[BaseException] = []
    for _ in range(2):
        with pytest.raises(ConnectionResetError, match="client left") as info:
            to_loop.put(b"x", 1)
        raised.append(info.value)
        with pytest.raises(ConnectionResetError, match="client left") as info:
            await to_thread.put(b"x", 1)
        raised.append(info.value)
        with pytest.raises(ConnectionResetError, match="client left") as info:
            await to_thread.ask(lambda: None)
        raised.append(info.value)
    assert len({id(error) for error in raised}) == len(raised)
    assert all(error is not stop for error in raised)
    assert stop.__traceback__ is None


def test_an_error_that_cannot_be_copied_is_raised_itself() -> None:
    class Picky(Exception):
        def __init__(self, code: int, reason: str) -> None:
            super().__init__(f"{code} {reason}")  # args no longer fit __init__

    loop = asyncio.new_event_loop()
    channel: ThreadToLoop[bytes] = ThreadToLoop(loop)
    try:
        error = Picky(1, "gone")
        channel.close(error)
        with pytest.raises(Picky) as info:
            channel.put(b"x", 1)
        assert info.value is error
    finally:
        loop.close()


async def test_thread_to_loop_cancelled_get_leaves_no_waiter() -> None:
    channel: ThreadToLoop[int] = ThreadToLoop(running_loop())
    getter = Spawned(channel.get())
    await anyio.lowlevel.checkpoint()
    getter.cancel()
    with pytest.raises(TaskCancelled):
        await getter
    assert channel._loop_waiter is None
    channel.put(1)  # must not try to wake the cancelled getter
    assert await channel.get() == [1]


async def test_loop_to_thread_cancelled_put_leaves_no_waiter() -> None:
    channel: LoopToThread[bytes] = LoopToThread(running_loop(), budget=1)
    putter = Spawned(channel.put(b"xy", 2))  # spends the budget: waits
    await anyio.lowlevel.checkpoint()
    assert not putter.done()
    putter.cancel()
    with pytest.raises(TaskCancelled):
        await putter
    assert channel._loop_waiter is None
    assert channel.get(timeout=5) == [b"xy"]  # must not try to wake the cancelled put


@pytest.mark.parametrize("way", ["whole", "chunks", "bytes"])
async def test_thread_to_loop_carries_a_body_fed_three_ways(way: str) -> None:
    budget = 1024
    channel: ThreadToLoop[bytes] = ThreadToLoop(running_loop(), budget=budget)
    pieces = chunkings(BODY)[way]
    largest = max(len(piece) for piece in pieces)

    def produce() -> None:
        for piece in pieces:
            channel.put(piece, len(piece))
        channel.close()

    producer = Spawned(to_thread(produce))
    received = bytearray()
    while batch := await channel.get():
        assert sum(map(len, batch)) < budget + largest  # bounded by the budget
        received += b"".join(batch)
    await wait_for(producer, LONG)
    assert bytes(received) == BODY


def test_channels_refuse_an_empty_budget() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="budget"):
            ThreadToLoop(loop, budget=0)
        with pytest.raises(ValueError, match="budget"):
            LoopToThread(loop, budget=0)
    finally:
        loop.close()


# --------------------------------------------------------------------------------------
# LoopToThread
# --------------------------------------------------------------------------------------


async def test_loop_to_thread_batches_puts_made_while_the_consumer_is_away() -> None:
    channel: LoopToThread[int] = LoopToThread(running_loop())
    for i in range(50):
        assert channel.put_nowait(i, 1)
    assert await to_thread(channel.get, LONG) == list(range(50))


async def test_loop_to_thread_wakes_a_waiting_consumer() -> None:
    channel: LoopToThread[str] = LoopToThread(running_loop())
    consumer = Spawned(to_thread(channel.get, LONG))
    while not channel._consumer_waiting:  # noqa: ASYNC110 - a thread's progress
        await anyio.sleep(0.001)
    await channel.put("x", 1)
    assert await wait_for(consumer, LONG) == ["x"]


async def test_loop_to_thread_put_last_wakes_a_waiting_consumer_on_the_next_turn() -> None:
    channel: LoopToThread[str] = LoopToThread(running_loop())
    consumer = Spawned(to_thread(channel.get, LONG))
    while not channel._consumer_waiting:  # noqa: ASYNC110 - a thread's progress
        await anyio.sleep(0.001)
    channel.put_last("last", 4)
    assert channel._consumer_waiting  # not yet: the loop is still in this task's step
    assert await wait_for(consumer, LONG) == ["last"]
    channel.close()
    with pytest.raises(BridgeClosed):
        channel.put_last("late")


async def test_loop_to_thread_backpressure_blocks_producer_until_consumer_takes() -> None:
    channel: LoopToThread[bytes] = LoopToThread(running_loop(), budget=10)
    await channel.put(b"aaaa", 4)
    await channel.put(b"bbbb", 4)
    assert not channel.put_nowait(b"cc", 2)  # 10 >= 10: no room left
    blocked = Spawned(channel.put(b"dddd", 4))
    for _ in range(5):
        await anyio.lowlevel.checkpoint()
    assert not blocked.done()
    taken = await to_thread(channel.get, LONG)
    assert taken == [b"aaaa", b"bbbb", b"cc", b"dddd"]
    await wait_for(blocked, LONG)


async def test_loop_to_thread_consumer_timeout() -> None:
    channel: LoopToThread[bytes] = LoopToThread(running_loop())
    with pytest.raises(TimeoutError, match="nothing arrived"):
        await to_thread(channel.get, 0.02)
    channel.put_nowait(b"later")
    assert await to_thread(channel.get, LONG) == [b"later"]


async def test_loop_to_thread_producer_close_is_the_end() -> None:
    channel: LoopToThread[str] = LoopToThread(running_loop())
    await channel.put("a")
    await channel.put("b")
    channel.close()

    def consume() -> list[list[str]]:
        return [channel.get(LONG), channel.get(LONG), channel.get(LONG)]

    assert await to_thread(consume) == [["a", "b"], [], []]
    with pytest.raises(BridgeClosed):
        await channel.put("late")


async def test_loop_to_thread_consumer_close_with_error_wakes_blocked_producer() -> None:
    channel: LoopToThread[bytes] = LoopToThread(running_loop(), budget=1)
    blocked = Spawned(channel.put(b"xx", 2))
    await anyio.lowlevel.checkpoint()
    assert not blocked.done()
    await to_thread(channel.close, BrokenPipeError("server closed"))
    with pytest.raises(BrokenPipeError, match="server closed"):
        await wait_for(blocked, LONG)


async def test_loop_to_thread_producer_error_reaches_the_consumer() -> None:
    channel: LoopToThread[bytes] = LoopToThread(running_loop())
    consumer = Spawned(to_thread(channel.get, LONG))
    while not channel._consumer_waiting:  # noqa: ASYNC110 - a thread's progress
        await anyio.sleep(0.001)
    channel.close(OSError("app failed"))
    with pytest.raises(OSError, match="app failed"):
        await wait_for(consumer, LONG)


async def test_loop_to_thread_ask_runs_on_the_consumer_thread_inside_get() -> None:
    channel: LoopToThread[str] = LoopToThread(running_loop())
    consumer_thread: list[int] = []

    def consume() -> list[str]:
        consumer_thread.append(threading.get_ident())
        return channel.get(LONG)

    consumer = Spawned(to_thread(consume))
    assert await wait_for(channel.ask(threading.get_ident), LONG) == consumer_thread[0]

    def fail() -> None:
        raise LookupError("asked and failed")

    with pytest.raises(LookupError, match="asked and failed"):
        await wait_for(channel.ask(fail), LONG)
    assert not consumer.done()  # answering does not end the consumer's get()
    await channel.put("end")
    assert await wait_for(consumer, LONG) == ["end"]


async def test_loop_to_thread_ask_fails_with_bridge_closed_after_close() -> None:
    channel: LoopToThread[str] = LoopToThread(running_loop())
    pending = Spawned(channel.ask(lambda: "never served"))
    await anyio.lowlevel.checkpoint()
    channel.close()
    with pytest.raises(BridgeClosed):
        await wait_for(pending, LONG)
    with pytest.raises(BridgeClosed):
        await channel.ask(lambda: "too late")


@pytest.mark.parametrize("way", ["whole", "chunks", "bytes"])
async def test_loop_to_thread_carries_a_body_fed_three_ways(way: str) -> None:
    budget = 1024
    channel: LoopToThread[bytes] = LoopToThread(running_loop(), budget=budget)
    pieces = chunkings(BODY)[way]
    largest = max(len(piece) for piece in pieces)

    def consume() -> bytes:
        received = bytearray()
        while batch := channel.get(LONG):
            assert sum(map(len, batch)) < budget + largest  # bounded by the budget
            received += b"".join(batch)
        return bytes(received)

    consumer = Spawned(to_thread(consume))
    for piece in pieces:
        await channel.put(piece, len(piece))
    channel.close()
    assert await wait_for(consumer, LONG) == BODY
