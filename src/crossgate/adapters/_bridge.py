"""The one place where threads meet the event loop.

Everything that crosses between a thread and an event loop goes through this module:

* :class:`WorkerPool` runs sync code in a bounded set of daemon threads, created lazily.
* :class:`Portal` is the per-process event loop thread that sync code borrows (started on
  first use, rebuilt after ``fork()``, stopped at interpreter exit).
* :func:`call_in_loop` runs a coroutine on a loop from a thread and blocks until it ends.
  While it blocks, the thread serves sync work that the coroutine sends back to it, so
  nesting ``sync -> async -> sync`` never needs a second thread and never deadlocks.
* :class:`ThreadToLoop` and :class:`LoopToThread` are bounded byte channels: the producer
  wakes the consumer only when the consumer is waiting (everything queued meanwhile is
  taken in one batch), and blocks once the bytes in flight reach the budget.

A thread hop costs tens of microseconds, so the rule here is to hop as rarely as possible:
results travel with one ``call_soon_threadsafe`` (thread -> loop) or one lock release
(loop -> thread), never through ``concurrent.futures`` and its callback chains.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar
from weakref import WeakSet

from crossgate._errors import BridgeClosed

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_WORKERS",
    "LoopToThread",
    "Portal",
    "ThreadToLoop",
    "WorkerPool",
    "call_in_loop",
    "copy_back",
    "default_pool",
    "get_portal",
    "origin_loop",
    "post_threadsafe",
    "run_sync",
    "set_default_workers",
]

T = TypeVar("T")
Item = TypeVar("Item")

logger = logging.getLogger("crossgate")

DEFAULT_WORKERS = 40
#: Bytes allowed in flight per channel before the producer waits.
DEFAULT_BUDGET = 1 << 20
#: Seconds of work after which a worker thread, between two jobs, lets the others run.
YIELD_AFTER = 0.0002


#: Releases the GIL and the CPU, so that a thread waiting for the GIL takes it now.
#: os.sched_yield() releases the GIL around the call; time.sleep(0), the fallback where
#: there is no sched_yield() (Windows), may hand it straight back to this thread.
_yield_cpu: Callable[[], None] = getattr(os, "sched_yield", None) or functools.partial(
    time.sleep, 0
)


# The loop that handed the current thread its job (sync_to_async and the adapters set it),
# so that async code called back from this thread runs on that loop, not a new one.
class _Origin(threading.local):
    # A class default: reading it on a thread that never set it is a plain attribute hit,
    # not an AttributeError caught by getattr() (5x slower, on every async_to_sync call).
    loop: asyncio.AbstractEventLoop | None = None


_origin = _Origin()

_current_mailbox: contextvars.ContextVar[_Mailbox | None] = contextvars.ContextVar(
    "crossgate_mailbox", default=None
)
#: Context variables private to the bridge, never copied back into a caller's context.
_PRIVATE_VARS: frozenset[contextvars.ContextVar[Any]] = frozenset({_current_mailbox})


def origin_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop waiting on the job this thread runs, if it runs one for a loop."""
    return _origin.loop


def copy_back(ctx: contextvars.Context) -> None:
    """Set in the current context every variable whose value differs in ``ctx``.

    This is how context changes made by code that ran in a copied context (in another
    thread, or in a task on another loop) become visible to the caller afterwards.
    """
    missing = object()
    for var, value in ctx.items():
        if var not in _PRIVATE_VARS and var.get(missing) is not value:
            var.set(value)


# Both run on the loop. The awaiting side may have been cancelled meanwhile: then the
# outcome has nobody to go to, and setting it would raise InvalidStateError.
def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def post_threadsafe(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any
) -> bool:
    """Schedule ``callback`` on ``loop`` from any thread; False when the loop is closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is left to tell
        return False
    return True


#: A job for :meth:`WorkerPool.submit`. It may return a "delivery": a callable that the
#: worker calls after counting itself idle again (see :meth:`WorkerPool._work`).
Job = Callable[[], object]
#: What :meth:`WorkerPool.start` queues: (origin loop, context, fn, args). A tuple rather
#: than a closure: the request path builds one per request.
_Started = tuple[
    asyncio.AbstractEventLoop, contextvars.Context, Callable[..., object], tuple[Any, ...]
]


def _make_job(
    loop: asyncio.AbstractEventLoop,
    fut: asyncio.Future[T],
    ctx: contextvars.Context,
    fn: Callable[..., T],
    args: tuple[Any, ...],
) -> Callable[[], Callable[[], object] | None]:
    def job() -> Callable[[], object] | None:
        if fut.cancelled():  # the caller gave up while the job was queued
            return None
        try:
            result = _run_from(loop, ctx, fn, args)
        except BaseException as exc:
            # Base exceptions too: a SystemExit in the job belongs to the awaiting caller.
            return functools.partial(post_threadsafe, loop, _set_exception, fut, exc)
        return functools.partial(post_threadsafe, loop, _set_result, fut, result)

    return job


def resolve_threadsafe(fut: asyncio.Future[T], value: T) -> None:
    """Set ``fut``'s result from any thread (nothing happens once its loop is closed)."""
    post_threadsafe(fut.get_loop(), _set_result, fut, value)


def _run_from(
    loop: asyncio.AbstractEventLoop,
    ctx: contextvars.Context,
    fn: Callable[..., T],
    args: tuple[Any, ...],
) -> T:
    """``fn(*args)`` in ``ctx``, on a worker serving ``loop`` (see :func:`origin_loop`)."""
    previous = _origin.loop
    _origin.loop = loop
    try:
        return ctx.run(fn, *args)
    finally:
        _origin.loop = previous


def _run_job(job: Job) -> None:
    """Run ``job`` and its delivery on this thread (how a blocked caller serves work)."""
    deliver = job()
    if callable(deliver):
        deliver()


class WorkerPool:
    """A bounded set of daemon threads that run sync callables, created on first use.

    Threads start one at a time as work arrives and no thread is idle, up to
    ``max_workers``; past that, work queues (first in, first out) and never deadlocks the
    loop. After ``fork()`` the child starts with no threads and builds its own.
    """

    def __init__(self, max_workers: int = DEFAULT_WORKERS, *, name: str = "crossgate") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers!r}")
        self.max_workers = max_workers
        self.name = name
        self._lock = threading.Lock()
        self._pid = -1
        self._reset()
        _pools.add(self)

    def _reset(self) -> None:
        import queue  # noqa: PLC0415 - only queue.SimpleQueue; keeps import time low

        self._queue: queue.SimpleQueue[Job | _Started | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # The hot path takes no lock: deque.append() and pop() are atomic, so the counts
        # live in deques and are read with len(). (A lock taken per job by the caller and
        # again by the worker cost about 6% of a hello-world request under uvicorn.)
        # One item per thread that is waiting, or about to wait, for work and that no job
        # has claimed yet: a job that claims one needs no new thread.
        self._idle: deque[None] = deque()
        # One item per job submitted and not finished: drain() waits for it to empty.
        self._busy: deque[None] = deque()
        self._drained: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closed = False
        self._pid = os.getpid()

    @property
    def thread_count(self) -> int:
        """How many threads the pool has started (in this process)."""
        return len(self._threads) if self._pid == os.getpid() else 0

    def submit(self, job: Job) -> None:
        """Run ``job()`` in a worker thread; it must not raise (wrap it, as :meth:`run` does).

        If ``job()`` returns a callable, the worker calls that too, once it counts itself
        idle again: deliver results that way, so that the caller's next :meth:`submit`
        finds the thread idle instead of starting another one.
        """
        self._enqueue(job)

    def _enqueue(self, job: Job | _Started) -> None:
        # No getpid() here, on the hot path: a forked child resets every pool before it
        # runs any code of its own (_after_fork_in_child).
        if self._closed:
            raise RuntimeError(f"worker pool {self.name!r} is shut down")
        self._busy.append(None)
        try:
            self._idle.pop()  # claim a waiting thread
        except IndexError:
            try:
                self._grow()
            except BaseException:
                self._busy.pop()  # the job is refused: drain() must not wait for it
                raise
        self._queue.put(job)

    def _grow(self) -> None:
        """No thread is free: start one, unless the pool is full (the job then queues).

        A job queued on a full pool is taken by the next thread that frees up, which has
        put itself in ``_idle`` first, so ``_idle`` may then count one thread too many.
        That only ever happens on a full pool, where it decides nothing: no thread can be
        started anyway, and drain() counts ``_busy``, not ``_idle``.
        """
        with self._lock:
            if len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self.name}-{len(self._threads)}",
                    daemon=True,  # a stuck app must never keep the interpreter alive
                )
                try:
                    thread.start()
                except RuntimeError:  # "can't start new thread": a process or memory limit
                    if not self._threads:
                        raise  # nobody could ever run the job: the caller must know
                    logger.warning(
                        "crossgate: pool %r could not start a thread; the job waits for one of "
                        "its %d threads",
                        self.name,
                        len(self._threads),
                        exc_info=True,
                    )
                    return
                self._threads.append(thread)

    def _work(self) -> None:
        get = self._queue.get
        idle = self._idle
        busy = self._busy
        clock = time.perf_counter
        worked = 0.0  # seconds of jobs since this thread last yielded
        while True:
            job = get()
            if job is None:
                return
            deliver: object = None
            started = clock()
            try:
                # A tuple comes from start(): run in the caller's context.
                deliver = _run_from(*job) if type(job) is tuple else job()  # type: ignore[operator]
            except BaseException:  # a job that breaks its contract must not kill the worker
                logger.exception("crossgate: uncaught error in a worker job")
            del job
            # Idle before the result is delivered: a caller that submits again as soon as
            # it has its result must find this thread idle, not start a new one.
            idle.append(None)
            busy.pop()
            if self._drained:
                self._wake_drained()
            if callable(deliver):
                try:
                    deliver()
                except BaseException:
                    logger.exception("crossgate: uncaught error delivering a job's result")
            del deliver
            worked += clock() - started
            if worked > YIELD_AFTER:
                # A thread that runs job after job without blocking keeps the GIL until
                # CPython forces a switch (sys.getswitchinterval(), 5 ms), wherever the app
                # then is: often inside a lock that every request takes, such as the RLock
                # of each asgiref Local that Django reads many times per request. Every
                # thread scheduled next then blocks on that lock in turn: a convoy. Django
                # under uvicorn ran at 656 requests/s that way, 1,838/s with this yield
                # (CPU per request 1,553 -> 553 us): the switch happens here, between jobs.
                worked = 0.0
                _yield_cpu()

    def _wake_drained(self) -> None:
        # Called after the last job's busy.pop(), and by drain() after it registered: with
        # no lock on the worker's path, one of the two sees the other's write, never neither.
        with self._lock:
            if self._busy or not self._drained:
                return
            waiters, self._drained = self._drained, []
        for waiter_loop, fut in waiters:
            post_threadsafe(waiter_loop, _set_result, fut, None)

    async def run(
        self, fn: Callable[..., T], /, *args: Any, context: contextvars.Context | None = None
    ) -> T:
        """Run ``fn(*args)`` in a worker thread, in ``context`` (default: a copy of the
        caller's), and return its result. Cancelling the caller raises ``CancelledError`` at
        once; a job that has not started yet is then skipped, one that has runs to its end.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        ctx = contextvars.copy_context() if context is None else context
        self.submit(_make_job(loop, fut, ctx, fn, args))
        return await fut

    def start(
        self,
        fn: Callable[..., object],
        /,
        *args: Any,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None = None,
    ) -> None:
        """Run ``fn(*args)`` in a worker thread, in ``context`` (default: a copy of the
        caller's), with ``loop`` as the thread's origin loop; nothing is delivered back.

        For a job that reports through a channel of its own: it spares the future, the
        task that awaits it and the wake-up of the loop that delivers its result. ``fn``
        must handle its errors (one that escapes is logged and dropped). If it returns a
        callable, the worker calls that once it counts itself idle, as for :meth:`submit`.
        """
        ctx = contextvars.copy_context() if context is None else context
        self._enqueue((loop, ctx, fn, args))

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until no job runs or waits; True if that happened within ``timeout``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._pid != os.getpid() or not self._busy:
                return True
            self._drained.append((loop, fut))
        self._wake_drained()  # the last job may have ended before it could see us
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        return True

    def shutdown(self) -> None:
        """Let every thread exit once the queued work is done; later :meth:`submit` raises.

        Threads are daemons and are not joined: a job stuck in application code must not
        hang the caller (use :meth:`drain` first to wait for work with a timeout).
        """
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
            self._threads = []
            self._idle.clear()

    def __repr__(self) -> str:
        return f"<WorkerPool {self.name!r} threads={self.thread_count}/{self.max_workers}>"


#: Every pool, so that a forked child can replace their locks (see _after_fork_in_child).
_pools: WeakSet[WorkerPool] = WeakSet()

_default_pool: WorkerPool | None = None
_default_workers = DEFAULT_WORKERS
_default_lock = threading.Lock()


def set_default_workers(max_workers: int) -> None:
    """Size of the process-wide pool that :func:`run_sync` uses (before its first use)."""
    global _default_workers
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, not {max_workers!r}")
    with _default_lock:
        _default_workers = max_workers
        if _default_pool is not None:
            _default_pool.max_workers = max_workers


def default_pool() -> WorkerPool:
    """The process-wide worker pool, created on first use."""
    global _default_pool
    pool = _default_pool
    if pool is None:
        with _default_lock:
            if _default_pool is None:
                _default_pool = WorkerPool(_default_workers, name="crossgate-sync")
            pool = _default_pool
    return pool


async def run_sync(
    fn: Callable[..., T],
    /,
    *args: Any,
    pool: WorkerPool | None = None,
    context: contextvars.Context | None = None,
) -> T:
    """Run sync ``fn(*args)`` off the loop and return its result.

    When the calling coroutine was itself started from a thread by :func:`call_in_loop`,
    that thread is blocked waiting for it, so the function runs there: no second thread is
    taken, and a ``sync -> async -> sync`` chain cannot exhaust the pool and deadlock.
    Otherwise it runs in ``pool`` (default: the process-wide pool).
    """
    # WorkerPool.run inlined: one coroutine frame fewer on the hot path.
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()
    ctx = contextvars.copy_context() if context is None else context
    job = _make_job(loop, fut, ctx, fn, args)
    mailbox = _current_mailbox.get()
    if mailbox is None or not mailbox.post(job):
        (pool or default_pool()).submit(job)
    return await fut


class _Mailbox:
    """What a thread blocked in :func:`call_in_loop` waits on: the outcome, or work to do."""

    __slots__ = ("_jobs", "_lock", "_open", "_sleeping", "_wake", "done", "error", "result", "task")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Lock()
        self._wake.acquire()  # held: released once per wake-up
        self._jobs: deque[Job] = deque()
        self._open = True
        # Armed from the start: nothing can post or finish before call_in_loop has posted
        # the start, and then wait() blocks at once (see there).
        self._sleeping = True
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None

    def _notify(self) -> None:  # with self._lock held
        if self._sleeping:
            self._sleeping = False
            self._wake.release()

    def post(self, job: Job) -> bool:
        """Queue ``job`` for the waiting thread; False if it no longer waits."""
        with self._lock:
            if not self._open:
                return False
            self._jobs.append(job)
            self._notify()
            return True

    def succeed(self, result: Any) -> None:
        with self._lock:
            self.result = result
            self.done = True
            self._notify()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            self.error = exc
            self.done = True
            self._notify()

    def abandon(self) -> None:
        """The waiting thread leaves early (an exception): later work goes to the pool.

        Without this, sync work the (now cancelled) coroutine hands over while it cleans
        up would wait forever for a thread that no longer serves this mailbox.
        """
        with self._lock:
            self._open = False
            jobs = list(self._jobs)
            self._jobs.clear()
        for job in jobs:
            default_pool().submit(job)

    def wait(self, timeout: float | None) -> bool:
        """Serve posted jobs until done; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Block first: right after posting the start, the loop thread is waking up and
            # needs the GIL, which this thread should give up at once.
            if deadline is None:
                self._wake.acquire()
            elif not self._wake.acquire(timeout=max(0.0, deadline - time.monotonic())):
                with self._lock:
                    if self._sleeping:  # nobody released the lock: a real timeout
                        self._sleeping = False
                        self._open = False
                        return False
                self._wake.acquire()  # a release raced the timeout: take it
            while True:
                with self._lock:
                    if self._jobs:
                        job = self._jobs.popleft()
                    elif self.done:
                        self._open = False
                        return True
                    else:
                        self._sleeping = True
                        break
                _run_job(job)


def call_in_loop(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[..., Awaitable[T]],
    /,
    *args: Any,
    context: contextvars.Context | None = None,
    timeout: float | None = None,
) -> T:
    """From a thread that is not ``loop``'s, run ``await fn(*args)`` on ``loop`` and block
    until it ends; return its result or raise its exception.

    The coroutine runs in ``context`` (default: a copy of the caller's); read the changes
    back with :func:`copy_back`. Sync work the coroutine hands to :func:`run_sync` runs on
    this (blocked) thread. On ``timeout`` the task is cancelled and ``TimeoutError`` raised;
    an exception in the waiting thread (KeyboardInterrupt) cancels the task too.
    """
    if not loop.is_running():
        raise RuntimeError(f"event loop {loop!r} is not running")
    if asyncio._get_running_loop() is loop:
        raise RuntimeError("call_in_loop() from the loop's own thread would deadlock")
    ctx = contextvars.copy_context() if context is None else context
    mailbox = _Mailbox()
    if not post_threadsafe(loop, _start, loop, ctx, mailbox, fn, args):
        raise RuntimeError(f"event loop {loop!r} is closed")
    try:
        finished = mailbox.wait(timeout)
    except BaseException:
        mailbox.abandon()
        _cancel_from_thread(loop, mailbox)
        raise
    if not finished:
        _cancel_from_thread(loop, mailbox)
        raise TimeoutError(f"{_name(fn)} did not finish within {timeout} s")
    # The task's context holds the mailbox: dropping the task breaks that cycle, so each
    # call's objects are freed by reference counting, not left for the cyclic collector.
    mailbox.task = None
    if mailbox.error is not None:
        error = mailbox.error
        mailbox.error = None  # break the frame <-> exception cycle
        raise error
    result: T = mailbox.result
    return result


def _start(
    loop: asyncio.AbstractEventLoop,
    ctx: contextvars.Context,
    mailbox: _Mailbox,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
) -> None:
    """On the loop: call ``fn`` in ``ctx`` and start the task that awaits its result."""
    try:
        awaitable = ctx.run(_enter, mailbox, fn, args)  # one ctx.run, not two
    except BaseException as exc:
        mailbox.fail(exc)
        return
    coro = _drive(mailbox, awaitable)
    try:
        task = _create_task(loop, coro, ctx)
    except BaseException as exc:  # a task factory that failed: no "never awaited" warnings
        coro.close()
        if isinstance(awaitable, Coroutine):
            awaitable.close()
        mailbox.fail(exc)
        return
    if not task.done():  # done: it ran eagerly to its end, nothing left to cancel
        mailbox.task = task


if sys.version_info >= (3, 12):

    def _create_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None], ctx: contextvars.Context
    ) -> asyncio.Task[None]:
        # Run the first step now, in this callback, instead of one loop iteration later:
        # a coroutine that does not suspend then completes with no extra iteration. Only
        # without a task factory, so that one the application installed is never bypassed.
        if loop.get_task_factory() is None:
            return asyncio.Task(coro, loop=loop, context=ctx, eager_start=True)
        return loop.create_task(coro, context=ctx)

else:

    def _create_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None], ctx: contextvars.Context
    ) -> asyncio.Task[None]:
        return loop.create_task(coro, context=ctx)


def _enter(
    mailbox: _Mailbox, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]
) -> Awaitable[T]:
    _current_mailbox.set(mailbox)
    return fn(*args)


async def _drive(mailbox: _Mailbox, awaitable: Awaitable[Any]) -> None:
    """Await ``awaitable`` and hand its outcome to the blocked thread from inside the task.

    Doing it here rather than in a done callback saves a loop iteration per call (done
    callbacks run one iteration later). The outcome is swallowed: it belongs to the
    blocked thread, so the task neither logs "exception was never retrieved" nor, for
    SystemExit or KeyboardInterrupt, stops the loop (the portal) that other callers share.
    """
    try:
        result = await awaitable
    except BaseException as exc:  # CancelledError included: it is the outcome
        mailbox.fail(exc)
    else:
        mailbox.succeed(result)


def _cancel_from_thread(loop: asyncio.AbstractEventLoop, mailbox: _Mailbox) -> None:
    def cancel() -> None:
        task, mailbox.task = mailbox.task, None  # no task <-> context <-> mailbox cycle
        if task is not None:
            task.cancel()

    post_threadsafe(loop, cancel)


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class Portal:
    """An event loop running in a daemon thread, for sync code that needs one.

    Use :func:`get_portal` for the per-process instance: it is created on first use and
    rebuilt in a child process after ``fork()``, because a forked child inherits the
    portal object but not its thread.
    """

    def __init__(self, *, name: str = "crossgate-portal") -> None:
        self.pid = os.getpid()
        self._close_hooks: list[Callable[[], Coroutine[Any, Any, object]]] = []
        self._ready = threading.Event()
        self._stopped = False
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self._cancel_remaining())
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    async def _cancel_remaining(self) -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not me and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def call(
        self, fn: Callable[..., Awaitable[T]], /, *args: Any, timeout: float | None = None
    ) -> T:
        """Run ``await fn(*args)`` on the portal loop and block until it ends."""
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("Portal.call() from the portal's own thread would deadlock")
        return call_in_loop(self.loop, fn, *args, timeout=timeout)

    def spawn(
        self,
        fn: Callable[..., Coroutine[Any, Any, Any]],
        /,
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        """Start ``fn(*args)`` as a task on the portal loop without waiting for it."""
        ctx = contextvars.copy_context() if context is None else context

        def start() -> None:
            self.loop.create_task(fn(*args), context=ctx)

        if not post_threadsafe(self.loop, start):
            raise RuntimeError("the crossgate portal is closed")

    def on_close(self, hook: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Await ``hook()`` on the portal loop when it closes (last registered, first run)."""
        self._close_hooks.append(hook)

    def close(self, timeout: float = 10.0) -> None:
        """Run the close hooks, cancel what is left, stop the loop and join its thread."""
        if self._stopped or self.pid != os.getpid():
            return
        self._stopped = True
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("Portal.close() from the portal's own thread")
        hooks, self._close_hooks = self._close_hooks[::-1], []
        for hook in hooks:
            try:
                call_in_loop(self.loop, hook, timeout=timeout)
            except BaseException:
                logger.exception("crossgate: a portal close hook failed")
        post_threadsafe(self.loop, self.loop.stop)
        self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._stopped


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (as uvicorn picks it), unless CROSSGATE_LOOP=asyncio."""
    choice = os.environ.get("CROSSGATE_LOOP", "auto")
    if choice not in {"auto", "asyncio", "uvloop"}:
        raise ValueError(f"CROSSGATE_LOOP must be auto, asyncio or uvloop, not {choice!r}")
    if choice != "asyncio":
        try:
            import uvloop  # noqa: PLC0415
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


_portal: Portal | None = None
_portal_lock = threading.Lock()


def get_portal() -> Portal:
    """The per-process portal, started on first use and rebuilt after ``fork()``."""
    global _portal
    portal = _portal
    if portal is not None and portal.pid == os.getpid() and not portal.closed:
        return portal
    with _portal_lock:
        if _portal is None or _portal.pid != os.getpid() or _portal.closed:
            if _portal is None or _portal.pid != os.getpid():
                atexit.register(_close_portal_at_exit)
            _portal = Portal()
        return _portal


def _close_portal_at_exit() -> None:
    portal = _portal
    if portal is not None and portal.pid == os.getpid():
        portal.close()


def _after_fork_in_child() -> None:
    # A lock that another thread of the parent held at fork() stays held forever in the
    # child, where that thread does not exist: the pid checks would then deadlock on it.
    global _default_lock, _portal_lock
    _default_lock = threading.Lock()
    _portal_lock = threading.Lock()
    for pool in list(_pools):
        # The parent's threads do not exist here: the child starts with none of them, and
        # nothing it queued (submit skips a pid check for this reason).
        pool._lock = threading.Lock()
        pool._reset()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------------------
# Byte channels
# --------------------------------------------------------------------------------------


class _Channel(Generic[Item]):
    """State shared by both channel directions: a queue of (item, size) with a budget."""

    __slots__ = ("_bytes", "_error", "_items", "_lock", "_loop", "budget", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1 byte, not {budget!r}")
        self.budget = budget
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._bytes = 0
        self.closed = False
        self._error: BaseException | None = None

    @property
    def in_flight(self) -> int:
        """Bytes queued and not yet taken by the consumer."""
        return self._bytes

    def _mark_closed(self, error: BaseException | None, keep: bool) -> bool:  # lock held
        """Close; an ``error`` drops what is queued unless ``keep`` (then the consumer
        takes it first and meets the error after). False if closed already."""
        if self.closed:
            return False
        self.closed = True
        if error is not None:
            self._error = error
            if not keep:
                self._items.clear()
                self._bytes = 0
        return True

    def _push(self, item: Item, size: int) -> None:  # with self._lock held
        """Queue ``item`` of ``size`` bytes; raise if the channel is closed."""
        if self.closed:
            raise self._error or BridgeClosed("channel closed")
        self._items.append(item)
        self._bytes += size

    def _take(self) -> list[Item]:  # with self._lock held
        items, self._items = self._items, []
        self._bytes = 0
        return items

    def _ended(self) -> list[Item]:  # with self._lock held, nothing queued, closed
        if self._error is not None:
            raise self._error
        return []


class ThreadToLoop(_Channel[Item]):
    """Items from a thread (:meth:`put`, blocking) to the loop (:meth:`get`, awaited).

    :meth:`get` returns everything queued since the last call in one list, or ``[]`` once
    the producer has closed the channel and all was taken. :meth:`close` with an exception,
    from either side, releases the other side with that exception.
    """

    __slots__ = ("_consumer", "_producer_waiting", "_space")

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: int = DEFAULT_BUDGET) -> None:
        super().__init__(loop, budget)
        self._consumer: asyncio.Future[None] | None = None
        # Created by the first producer that has to wait: most channels (one response that
        # fits the budget) never need it.
        self._space: threading.Lock | None = None
        self._producer_waiting = False

    def _wake_consumer(self) -> None:  # with self._lock held
        waiter = self._consumer
        if waiter is not None:
            self._consumer = None
            post_threadsafe(self._loop, _set_result, waiter, None)

    def _release_producer(self) -> None:  # with self._lock held
        if self._producer_waiting:
            self._producer_waiting = False
            self._space.release()  # type: ignore[union-attr]  # set by the waiting producer

    def put(self, item: Item, size: int = 0, *, timeout: float | None = None) -> None:
        """Queue ``item`` (``size`` bytes); wait while the budget is spent.

        Raises :class:`BridgeClosed` (or the exception the consumer closed with) once the
        channel is closed, and ``TimeoutError`` if the budget stays spent for ``timeout``.
        """
        with self._lock:
            self._push(item, size)
            if self._consumer is not None:  # tested here: put() is the streaming hot path
                self._wake_consumer()
            if self._bytes < self.budget:
                return
            space = self._space
            if space is None:
                space = self._space = threading.Lock()
                space.acquire()
            self._producer_waiting = True
        # Over budget: wait until the consumer takes the queue (or closes the channel).
        if not space.acquire(timeout=-1 if timeout is None else timeout):
            with self._lock:
                if self._producer_waiting:
                    self._producer_waiting = False
                    raise TimeoutError(f"the consumer took nothing for {timeout} s")
            space.acquire()  # a release raced the timeout
        error = self._error
        if error is not None:
            raise error

    async def get(self) -> list[Item]:
        """Everything queued, waiting for at least one item; ``[]`` at the end."""
        while True:
            with self._lock:
                if self._items:
                    items = self._take()
                    self._release_producer()
                    return items
                if self.closed:
                    return self._ended()
                waiter = self._consumer = self._loop.create_future()
            try:
                await waiter
            except BaseException:
                with self._lock:
                    self._consumer = None
                raise

    def close(self, error: BaseException | None = None, *, keep: bool = False) -> None:
        """End the stream (producer) or abandon it (consumer, with ``error``), from any side.

        ``keep``: the producer failing after it queued data that must still be delivered;
        the consumer gets what is queued, then ``error``.
        """
        with self._lock:
            if not self._mark_closed(error, keep):
                return
            self._wake_consumer()
            self._release_producer()


class LoopToThread(_Channel[Item]):
    """Items from the loop (:meth:`put`, awaited) to a thread (:meth:`get`, blocking).

    The loop can also hand the thread work with :meth:`ask`: the thread runs it inside its
    next :meth:`get` and the result comes back to the awaiting coroutine. That is how a
    WSGI server's own thread reads ``wsgi.input`` for an ASGI app while it waits for the
    response, with no extra thread.
    """

    __slots__ = ("_calls", "_consumer_waiting", "_producer", "_wake")

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: int = DEFAULT_BUDGET) -> None:
        super().__init__(loop, budget)
        self._producer: asyncio.Future[None] | None = None
        self._wake = threading.Lock()
        self._wake.acquire()
        self._consumer_waiting = False
        self._calls: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []

    def _wake_consumer(self) -> None:  # with self._lock held
        if self._consumer_waiting:
            self._consumer_waiting = False
            self._wake.release()

    def put_nowait(self, item: Item, size: int = 0) -> bool:
        """Queue ``item`` without waiting; True if the budget still has room after it."""
        with self._lock:
            self._push(item, size)
            self._wake_consumer()
            return self._bytes < self.budget

    def put_last(self, item: Item, size: int = 0) -> None:
        """Queue the stream's last ``item``; the consumer is woken on the loop's next turn.

        Woken at once, the thread would find the loop still holding the GIL to finish the
        task that sent it, and sleep again until the loop lets go: a second sleep and
        wake-up. One turn later the task is done and the loop about to wait for I/O.
        """
        with self._lock:
            self._push(item, size)
        self._loop.call_soon(self._wake_later)

    def _wake_later(self) -> None:
        with self._lock:
            self._wake_consumer()

    async def put(self, item: Item, size: int = 0) -> None:
        """Queue ``item``; wait (backpressure) while the bytes in flight reach the budget."""
        if self.put_nowait(item, size):
            return
        while True:
            with self._lock:
                if self.closed:
                    if self._error is not None:
                        raise self._error
                    return
                if self._bytes < self.budget:
                    return
                waiter = self._producer = self._loop.create_future()
            try:
                await waiter
            except BaseException:
                with self._lock:
                    self._producer = None
                raise

    async def ask(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the consumer thread during its next :meth:`get`; return its result."""
        fut: asyncio.Future[T] = self._loop.create_future()
        with self._lock:
            if self.closed:
                raise self._error or BridgeClosed("channel closed")
            self._calls.append((fn, fut))
            self._wake_consumer()
        return await fut

    def get(self, timeout: float | None = None) -> list[Item]:
        """Everything queued, blocking for at least one item; ``[]`` at the end.

        Runs the work the loop asked for meanwhile. Raises ``TimeoutError`` if nothing came
        within ``timeout``, and the closing exception if the channel was closed with one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                calls, self._calls = self._calls, []
                if not calls:
                    if self._items:
                        items = self._take()
                        producer, self._producer = self._producer, None
                        if producer is not None:
                            post_threadsafe(self._loop, _set_result, producer, None)
                        return items
                    if self.closed:
                        return self._ended()
                    self._consumer_waiting = True
            if calls:
                for fn, fut in calls:
                    try:
                        result = fn()
                    except BaseException as exc:
                        post_threadsafe(self._loop, _set_exception, fut, exc)
                    else:
                        post_threadsafe(self._loop, _set_result, fut, result)
                continue
            if deadline is None:
                self._wake.acquire()
            elif not self._wake.acquire(timeout=max(0.0, deadline - time.monotonic())):
                with self._lock:
                    if self._consumer_waiting:
                        self._consumer_waiting = False
                        raise TimeoutError(f"nothing arrived within {timeout} s")
                self._wake.acquire()

    def close(self, error: BaseException | None = None, *, keep: bool = False) -> None:
        """End the stream (producer) or abandon it (consumer, with ``error``), from any side.

        ``keep`` as for :meth:`ThreadToLoop.close`. Pending :meth:`ask` calls fail with
        ``error`` (or :class:`BridgeClosed`).
        """
        with self._lock:
            if not self._mark_closed(error, keep):
                return
            calls, self._calls = self._calls, []
            self._wake_consumer()
            producer, self._producer = self._producer, None
        if producer is not None:
            post_threadsafe(self._loop, _set_result, producer, None)
        for _, fut in calls:
            failure = error or BridgeClosed("channel closed")
            post_threadsafe(self._loop, _set_exception, fut, failure)
