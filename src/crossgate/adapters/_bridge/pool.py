"""Worker pools: bounded sets of daemon threads that run sync code, created lazily."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar
from weakref import WeakSet

from crossgate.adapters._bridge.backend import Loop, Waiter, fail_after, running_loop
from crossgate.adapters._bridge.hop import (
    Job,
    Started,
    make_job,
    post_threadsafe,
    run_from,
    set_result,
)

__all__ = [
    "DEFAULT_MAX_THREADS",
    "DEFAULT_WORKERS",
    "WorkerPool",
    "default_pool",
    "set_default_workers",
    "step_away",
    "step_back",
    "thread_cap",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_get_running_loop = asyncio._get_running_loop  # the public getter raises when there is none

DEFAULT_WORKERS = 40
#: The hard cap on a pool's threads, jobs that stepped away included (see step_away).
DEFAULT_MAX_THREADS = 400
#: Seconds a thread beyond ``max_workers`` waits for work before it ends.
SURPLUS_IDLE = 1.0
#: Seconds of work after which a worker thread, between two jobs, lets the others run.
YIELD_AFTER = 0.0002


#: Releases the GIL and the CPU, so that a thread waiting for the GIL takes it now.
#: os.sched_yield() releases the GIL around the call; time.sleep(0), the fallback where
#: there is no sched_yield() (Windows), may hand it straight back to this thread.
_yield_cpu: Callable[[], None] = getattr(os, "sched_yield", None) or functools.partial(
    time.sleep, 0
)


class WorkerPool:
    """A bounded set of daemon threads that run sync callables, created on first use.

    Threads start one at a time as work arrives and no thread is idle, up to
    ``max_workers`` jobs at work; past that, work queues (first in, first out) and never
    deadlocks the loop. A job that waits on the network (:func:`step_away`) is not at work:
    it does not count against ``max_workers``, so another thread starts for the work behind
    it, up to ``max_threads`` threads in all; a thread beyond ``max_workers`` ends once it
    finds nothing queued. After ``fork()`` the child starts with no threads and builds its
    own.
    """

    def __init__(
        self,
        max_workers: int = DEFAULT_WORKERS,
        *,
        max_threads: int | None = None,
        name: str = "crossgate",
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers!r}")
        self.max_workers = max_workers
        self.max_threads = thread_cap(max_workers, max_threads)
        self.name = name
        self._started = 0  # threads ever started, for their names
        self._lock = threading.Lock()
        self._pid = -1
        self._reset()
        _pools.add(self)

    def _reset(self) -> None:
        import queue  # noqa: PLC0415 - only queue.SimpleQueue; keeps import time low

        self._queue: queue.SimpleQueue[Job | Started | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # The hot path takes no lock: deque.append() and pop() are atomic, so the counts
        # live in deques and are read with len(). (A lock taken per job by the caller and
        # again by the worker cost about 6% of a hello-world request under uvicorn.)
        # One item per thread that is waiting, or about to wait, for work and that no job
        # has claimed yet: a job that claims one needs no new thread.
        self._idle: deque[None] = deque()
        # One item per job submitted and not finished: drain() waits for it to empty.
        self._busy: deque[None] = deque()
        # One item per job that stepped away (waits on the network, or streams a response
        # that outlived its first batch): not counted against max_workers.
        self._away: deque[None] = deque()
        self._drained: list[tuple[Loop, Waiter[None]]] = []
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

    def _enqueue(self, job: Job | Started) -> None:
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

    def _grow(self, *, for_queued: bool = False) -> None:
        """No thread is free: start one, unless the pool is full (the job then queues).

        Full: ``max_workers`` threads at work (threads that stepped away do not count), or
        ``max_threads`` threads in all. A job queued on a full pool is taken by the next
        thread that frees up, which has put itself in ``_idle`` first, so ``_idle`` may then
        count one thread too many. That only ever happens on a full pool, where it decides
        nothing: no thread can be started anyway, and drain() counts ``_busy``, not
        ``_idle``.
        """
        with self._lock:
            if for_queued and not self._queued():
                # Checked again under the lock: a thread that _grow is starting may run its
                # job (and step away) before it is counted in `_threads`.
                return
            threads = len(self._threads)
            if threads - len(self._away) < self.max_workers and threads < self.max_threads:
                self._started += 1
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self.name}-{self._started}",
                    daemon=True,  # a stuck app must never keep the interpreter alive
                )
                try:
                    thread.start()
                except RuntimeError:  # "can't start new thread": a process or memory limit
                    if not self._threads:
                        raise  # nobody could ever run the job: the caller must know
                    logger.warning(
                        "pool %r could not start a thread; the job waits for one of its %d threads",
                        self.name,
                        len(self._threads),
                        exc_info=True,
                    )
                    return
                self._threads.append(thread)

    def _queued(self) -> bool:
        """Whether a job waits in the queue with no thread to take it."""
        return len(self._busy) > len(self._threads) - len(self._idle)

    def _retire(self) -> bool:
        """End the calling thread, idle and beyond ``max_workers``; True if it is to end.

        It gives up one of the idle marks: if there is none, a job has claimed this thread
        (or the one it stands for) and is on its way through the queue, so it stays.
        """
        with self._lock:
            if len(self._threads) <= self.max_workers:
                return False
            try:
                self._idle.pop()
            except IndexError:
                return False
            self._threads.remove(threading.current_thread())
            return True

    def _work(self) -> None:
        from queue import Empty  # noqa: PLC0415 - see _reset

        get = self._queue.get
        idle = self._idle
        busy = self._busy
        clock = time.perf_counter
        me = _local.worker = _Worker(self)
        worked = 0.0  # seconds of jobs since this thread last yielded
        while True:
            if len(self._threads) > self.max_workers:
                # A thread beyond max_workers (started for jobs that stepped away) ends
                # once it has waited SURPLUS_IDLE seconds for work in vain.
                try:
                    job = get(timeout=SURPLUS_IDLE)
                except Empty:
                    if self._retire():
                        return
                    continue
            else:
                job = get()
            if job is None:
                return
            deliver: object = None
            started = clock()
            try:
                # A tuple comes from start(): run in the caller's context.
                deliver = run_from(*job) if type(job) is tuple else job()  # type: ignore[operator]
            except BaseException:  # a job that breaks its contract must not kill the worker
                logger.exception("uncaught error in a worker job")
            del job
            if me.away:  # stepped away for the rest of its job (see step_away)
                me.away = False
                self._away.pop()
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
                    logger.exception("uncaught error delivering a job's result")
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
            post_threadsafe(waiter_loop, set_result, fut, None)

    async def run(
        self, fn: Callable[..., T], /, *args: Any, context: contextvars.Context | None = None
    ) -> T:
        """Run ``fn(*args)`` in a worker thread, in ``context`` (default: a copy of the
        caller's), and return its result. Cancelling the caller raises ``CancelledError`` at
        once; a job that has not started yet is then skipped, one that has runs to its end.
        """
        loop: Loop = _get_running_loop() or running_loop()
        fut: Waiter[T] = loop.create_future()
        ctx = contextvars.copy_context() if context is None else context
        self.submit(make_job(loop, fut, ctx, fn, args))
        return await fut

    def start(
        self,
        fn: Callable[..., object],
        /,
        *args: Any,
        loop: Loop,
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
        loop = running_loop()
        fut: Waiter[None] = loop.create_future()
        with self._lock:
            if self._pid != os.getpid() or not self._busy:
                return True
            self._drained.append((loop, fut))
        self._wake_drained()  # the last job may have ended before it could see us
        try:
            async with fail_after(timeout):
                await fut
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
        return (
            f"<WorkerPool {self.name!r} threads={self.thread_count} "
            f"workers={self.max_workers} max_threads={self.max_threads}>"
        )


def thread_cap(workers: int, max_threads: int | None) -> int:
    """``max_threads`` checked against ``workers`` (at least as many), or its default."""
    if max_threads is None:
        return max(workers, DEFAULT_MAX_THREADS)
    if max_threads < workers:
        raise ValueError(f"max_threads ({max_threads!r}) must be at least workers ({workers!r})")
    return max_threads


class _Worker:
    """A pool's worker thread: its pool, and whether its job stepped away."""

    __slots__ = ("away", "pool")

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.away = False


#: On a pool's worker thread, ``worker``: its _Worker (a plain object, read once per call:
#: attributes of a threading.local cost a lookup by thread each).
_local = threading.local()


def step_away() -> bool:
    """Called by a job on a pool's worker thread that is about to wait on the network (for
    request body bytes, or for room in a response budget), or that streams a response
    that outlived its first batch: until :func:`step_back` (or the job's end), it does not
    count against the pool's ``max_workers``, so the work queued behind it gets a thread
    of its own, up to ``max_threads``.

    True if it stepped away; False on any other thread, or if the job already had (a
    caller that gets False must not call :func:`step_back`).
    """
    me: _Worker | None = getattr(_local, "worker", None)
    if me is None or me.away:
        return False
    me.away = True
    pool = me.pool
    pool._away.append(None)
    if pool._queued():
        try:
            pool._grow(for_queued=True)
        except RuntimeError:  # no thread could be started: the queued job waits its turn
            logger.debug("pool %r could not start a thread", pool.name, exc_info=True)
    return True


def step_back() -> None:
    """The wait that :func:`step_away` announced is over: the job counts again."""
    me: _Worker = _local.worker
    me.away = False
    me.pool._away.pop()


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


def _after_fork_in_child() -> None:
    # A lock that another thread of the parent held at fork() stays held forever in the
    # child, where that thread does not exist: the pid checks would then deadlock on it.
    global _default_lock
    _default_lock = threading.Lock()
    for pool in list(_pools):
        # The parent's threads do not exist here: the child starts with none of them, and
        # nothing it queued (submit skips a pid check for this reason).
        pool._lock = threading.Lock()
        pool._reset()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_after_fork_in_child)
