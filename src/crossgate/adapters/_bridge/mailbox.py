"""Calls from a thread into a loop (:func:`call_in_loop`) and back (:func:`run_sync`).

A thread blocked in :func:`call_in_loop` waits on a mailbox that also takes sync work: a
:func:`run_sync` in the coroutine it waits for runs on that thread, so nesting
``sync -> async -> sync`` never needs a second thread and never deadlocks.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from crossgate.adapters._bridge.backend import Loop, Task, TrioLoop, Waiter, trio_loop
from crossgate.adapters._bridge.hop import Job, make_job, post_threadsafe, run_job
from crossgate.adapters._bridge.pool import WorkerPool, default_pool

__all__ = ["call_in_loop", "copy_back", "run_sync"]

T = TypeVar("T")

_get_running_loop = asyncio._get_running_loop  # the public getter raises when there is none

_current_mailbox: contextvars.ContextVar[_Mailbox | None] = contextvars.ContextVar(
    "crossgate_mailbox", default=None
)
#: Context variables private to the bridge, never copied back into a caller's context.
_PRIVATE_VARS: frozenset[contextvars.ContextVar[Any]] = frozenset({_current_mailbox})


def copy_back(ctx: contextvars.Context) -> None:
    """Set in the current context every variable whose value differs in ``ctx``.

    This is how context changes made by code that ran in a copied context (in another
    thread, or in a task on another loop) become visible to the caller afterwards.
    """
    missing = object()
    for var, value in ctx.items():
        if var not in _PRIVATE_VARS and var.get(missing) is not value:
            var.set(value)


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
    # WorkerPool.run inlined: one coroutine frame fewer on the hot path. The loop is
    # asyncio's (the check made before trio was supported), else trio's.
    loop: Loop = _get_running_loop() or trio_loop()
    fut: Waiter[T] = loop.create_future()
    ctx = contextvars.copy_context() if context is None else context
    job = make_job(loop, fut, ctx, fn, args)
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
        self.task: Task | None = None

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
                run_job(job)


def call_in_loop(
    loop: Loop,
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
    if _get_running_loop() is loop or (
        type(loop) is TrioLoop and loop.thread_id == threading.get_ident()
    ):
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
    error = mailbox.error
    if error is not None:
        # Neither the mailbox nor this frame may keep the exception once it is raised: its
        # traceback holds this frame, a cycle only the cyclic collector would free.
        mailbox.error = None
        try:
            raise error
        finally:
            del error
    result: T = mailbox.result
    return result


def _start(
    loop: Loop,
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

    def _create_task(loop: Loop, coro: Coroutine[Any, Any, None], ctx: contextvars.Context) -> Task:
        # Run the first step now, in this callback, instead of one loop iteration later:
        # a coroutine that does not suspend then completes with no extra iteration. Only
        # without a task factory, so that one the application installed is never bypassed
        # (a TrioLoop reports one: its tasks are trio's).
        if loop.get_task_factory() is None:
            return asyncio.Task(
                coro,
                loop=loop,  # type: ignore[arg-type]  # an asyncio loop: it has no factory
                context=ctx,
                eager_start=True,
            )
        return loop.create_task(coro, context=ctx)

else:

    def _create_task(loop: Loop, coro: Coroutine[Any, Any, None], ctx: contextvars.Context) -> Task:
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


def _cancel_from_thread(loop: Loop, mailbox: _Mailbox) -> None:
    def cancel() -> None:
        task, mailbox.task = mailbox.task, None  # no task <-> context <-> mailbox cycle
        if task is not None:
            task.cancel()

    post_threadsafe(loop, cancel)


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
