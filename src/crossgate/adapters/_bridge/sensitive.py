"""Thread-sensitive calls: sync work of one context, all on one thread, in order.

Code that keeps per-thread state (Django's database connections, SQLite handles, COM
objects) must run every call of a request on the same thread. A *context* says which
calls belong together: what ``async with thread_sensitive():`` delimits (crossgate's
adapters open one per request), or asgiref's ``ThreadSensitiveContext`` (Django's
``ASGIHandler`` opens one per request). Outside any context, the thread blocked in an
``async_to_sync`` above the caller is used if there is one, else one process-wide thread.

Pieces:

* :class:`Seat`: a thread that sensitive work goes to, with the stack of crossgate
  ``async_to_sync`` calls it is blocked in. While blocked, the thread serves work through
  the innermost call's mailbox, so ``sync -> async -> sync`` comes back to it and never
  deadlocks (:func:`call_from_seat`).
* :class:`Lane`: a seat of crossgate's own, a serial queue served by one thread of a
  :class:`WorkerPool` from its first job until the context ends; an idle lane steps away
  (:func:`step_away`), so it holds no worker slot. No thread or executor per context.
* :class:`ThreadSensitive`: the context manager. It also stands as asgiref's current
  ``ThreadSensitiveContext`` and as that context's executor, so asgiref's
  ``sync_to_async`` (Django's own calls) inside it runs on the same lane, and a
  ``ThreadSensitiveContext`` entered inside it (Django's handler) joins it. Entering one
  makes no other object; its lane comes with its first call.
* :class:`LaneExecutor`: a lane as the executor of an asgiref context of someone else's
  that had none when crossgate's first call came.
* :func:`run_sensitive`: where a call goes (see there).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import weakref
from collections import deque
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Any, Final, TypeVar

import asgiref.sync

from crossgate._state import State, refused_move
from crossgate.adapters._bridge.backend import Loop, Waiter, trio_loop
from crossgate.adapters._bridge.hop import Job, make_job, run_job
from crossgate.adapters._bridge.mailbox import _current_mailbox, _Mailbox, call_in_loop
from crossgate.adapters._bridge.pool import WorkerPool, default_pool, step_away, step_back

__all__ = [
    "Lane",
    "LaneExecutor",
    "LaneState",
    "Seat",
    "ThreadSensitive",
    "call_from_seat",
    "current_seat",
    "process_lane",
    "run_sensitive",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_get_running_loop = asyncio._get_running_loop  # the public getter raises when there is none

# asgiref's state, read to run beside it (facts of its public behaviour, no code of it):
# the current ThreadSensitiveContext, the executor each context uses, and the executor of
# the thread blocked in asgiref's async_to_sync above the caller.
_ASGIREF_CONTEXT: contextvars.ContextVar[Any] = asgiref.sync.SyncToAsync.thread_sensitive_context
_ASGIREF_EXECUTORS: Any = asgiref.sync.SyncToAsync.context_to_thread_executor
_ASGIREF_BLOCKED: Any = asgiref.sync.AsyncToSync.executors


class _SeatLocal(threading.local):
    # A class default: a thread that never sat anywhere reads None without an exception.
    seat: Seat | None = None


_local = _SeatLocal()
#: The seat of each thread that has one (a lane's, while it serves it), by thread id: how
#: work for an asgiref executor finds the executor's thread when it is blocked in
#: crossgate's async_to_sync. Weak: a thread's seat goes with its thread-local.
_thread_seats: weakref.WeakValueDictionary[int, Seat] = weakref.WeakValueDictionary()


def current_seat() -> Seat:
    """The seat of this thread: the lane it serves, or a seat of its own, made now."""
    seat = _local.seat
    if seat is None:
        seat = _local.seat = Seat()
        _thread_seats[threading.get_ident()] = seat
    return seat


class Seat:
    """A thread sensitive work goes to, and the crossgate ``async_to_sync`` calls it is
    blocked in (innermost last): while blocked, it runs work posted to that mailbox.
    """

    __slots__ = ("__weakref__", "_blocked", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocked: list[_Mailbox] = []

    def post_blocked(self, job: Job) -> bool:
        """Hand ``job`` to the innermost blocked call; False if the thread is not blocked."""
        with self._lock:
            return bool(self._blocked) and self._blocked[-1].post(job)

    def _blocked_on(self, mailbox: _Mailbox) -> None:
        with self._lock:
            self._blocked.append(mailbox)

    def _unblocked(self, mailbox: _Mailbox) -> None:
        with self._lock:
            self._blocked.remove(mailbox)


def call_from_seat(
    seat: Seat,
    loop: Loop,
    fn: Any,
    args: tuple[Any, ...],
    context: contextvars.Context,
) -> Any:
    """:func:`call_in_loop` from the thread of ``seat``: while it blocks, the seat's
    sensitive work (from the coroutine, or from any other task of its context) runs here.
    """
    entered: list[_Mailbox] = []

    def enter(*inner: Any) -> Any:
        # On the loop, in the call's context, right after call_in_loop set its mailbox.
        mailbox = _current_mailbox.get()
        assert mailbox is not None
        seat._blocked_on(mailbox)
        entered.append(mailbox)
        if isinstance(seat, Lane):
            seat._move_queued(mailbox)
        return fn(*inner)

    try:
        return call_in_loop(loop, enter, *args, context=context)
    finally:
        if entered:
            seat._unblocked(entered[0])


class LaneState(State):
    """Where a lane is: no thread yet, a thread serving it, ending, ended."""

    IDLE = "idle"
    SERVING = "serving"
    CLOSING = "closing"  # the context ended: the thread runs what is queued, then leaves
    CLOSED = "closed"  # work posted now goes to the process-wide lane


#: The moves a lane may make, by the state it leaves.
_MOVES: Final[dict[LaneState, frozenset[LaneState]]] = {
    LaneState.IDLE: frozenset((LaneState.SERVING, LaneState.CLOSED)),
    LaneState.SERVING: frozenset((LaneState.CLOSING,)),
    LaneState.CLOSING: frozenset((LaneState.CLOSED,)),
    LaneState.CLOSED: frozenset(),
}


class Lane(Seat):
    """A serial queue of sync jobs, run in order on one thread of ``pool``.

    The thread is taken from the pool at the first job and kept until :meth:`close`; while
    it waits for work it has stepped away, so it does not count against the pool's
    ``max_workers``.
    """

    __slots__ = ("_jobs", "_pool", "_sleeping", "_wake", "busy", "state", "thread")

    def __init__(self, pool: WorkerPool | None = None) -> None:
        super().__init__()
        self._pool = pool
        self._jobs: deque[Job] = deque()
        self._wake = threading.Lock()
        self._wake.acquire()  # held: released once per wake-up of a sleeping thread
        self._sleeping = False
        self.busy = False  # a job runs on the thread now
        self.state = LaneState.IDLE
        self.thread: threading.Thread | None = None

    def _move(self, state: LaneState) -> None:  # with self._lock held
        if state not in _MOVES[self.state]:
            raise refused_move("lane", self.state, state)
        self.state = state

    def _notify(self) -> None:  # with self._lock held
        if self._sleeping:
            self._sleeping = False
            self._wake.release()

    def post(self, job: Job) -> None:
        """Run ``job`` on the lane's thread after the jobs before it."""
        with self._lock:
            state = self.state
            if state is LaneState.SERVING or state is LaneState.IDLE:
                if self._blocked and self._blocked[-1].post(job):
                    return
                self._jobs.append(job)
                if state is LaneState.SERVING:
                    self._notify()
                    return
                self._move(LaneState.SERVING)
        if state is LaneState.IDLE:
            try:
                (self._pool or default_pool()).submit(self._serve)
            except BaseException:
                with self._lock:
                    self.state = LaneState.CLOSED
                    self._jobs.clear()
                raise
            return
        # A task that outlived its context: nothing is left to keep it on this thread.
        process_lane().post(job)

    def _move_queued(self, mailbox: _Mailbox) -> None:
        """The thread blocks in ``mailbox``: the jobs queued behind its job go there."""
        with self._lock:
            while self._jobs:
                if not mailbox.post(self._jobs[0]):
                    return
                self._jobs.popleft()

    def close(self) -> None:
        """End the lane: its thread runs what is queued and goes back to the pool."""
        with self._lock:
            if self.state is LaneState.IDLE:
                self._move(LaneState.CLOSED)
            elif self.state is LaneState.SERVING:
                self._move(LaneState.CLOSING)
                self._notify()

    def _serve(self) -> None:
        """The pool job that serves the lane, from its first job until it closes."""
        previous = _local.seat
        _local.seat = self
        ident = threading.get_ident()
        _thread_seats[ident] = self
        self.thread = threading.current_thread()
        lock = self._lock
        jobs = self._jobs
        try:
            while True:
                with lock:
                    if jobs:
                        job: Job | None = jobs.popleft()
                        self.busy = True
                    elif self.state is LaneState.CLOSING:
                        self._move(LaneState.CLOSED)
                        return
                    else:
                        self._sleeping = True
                        job = None
                if job is None:
                    away = step_away()
                    self._wake.acquire()
                    if away:
                        step_back()
                    continue
                deliver: object = None
                try:
                    deliver = job()
                except BaseException:  # a job that breaks its contract must not end the lane
                    logger.exception("uncaught error in a thread-sensitive job")
                del job
                self.busy = False
                if callable(deliver):
                    deliver()
                del deliver
        finally:
            _local.seat = previous
            if previous is None:
                del _thread_seats[ident]
            else:
                _thread_seats[ident] = previous
            self.thread = None

    def __repr__(self) -> str:
        return f"<Lane {self.state.value} queued={len(self._jobs)}>"


def _post_to_executor(executor: Any, job: Job) -> bool:
    """Run ``job`` through an executor of asgiref's (or a lane's); False if it refused.

    When the executor's thread is blocked in crossgate's async_to_sync, the job goes to
    that call's mailbox: submitted to the executor, it would wait behind the blocked call.
    """
    if type(executor) is ThreadSensitive:
        _post_to_lane(executor.lane(), job)
        return True
    if type(executor) is LaneExecutor:
        _post_to_lane(executor.scope.lane(), job)
        return True
    # asgiref's CurrentThreadExecutor names its thread; a ThreadPoolExecutor keeps its own.
    thread = getattr(executor, "_work_thread", None)
    threads = (thread,) if thread is not None else getattr(executor, "_threads", ())
    for thread in threads:
        seat = _thread_seats.get(thread.ident)
        if seat is not None and seat.post_blocked(job):
            return True
    try:
        executor.submit(run_job, job)
    except RuntimeError:  # shut down, or asgiref's blocked thread has moved on
        return False
    return True


def _post_to_lane(lane: Lane, job: Job) -> None:
    if lane.busy:
        # The lane's job may be blocked in asgiref's async_to_sync, which serves its
        # thread's sensitive work through an executor of its own.
        blocked = getattr(_ASGIREF_BLOCKED, "current", None)
        if (
            blocked is not None
            and getattr(blocked, "_work_thread", None) is lane.thread
            and _post_to_executor(blocked, job)
        ):
            return
    lane.post(job)


class LaneExecutor(Executor):
    """A crossgate context's lane as a ``concurrent.futures`` executor, for asgiref."""

    def __init__(self, scope: ThreadSensitive) -> None:
        self.scope = scope

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.scope.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.scope.close()


class ThreadSensitive:
    """``async with`` block within which thread-sensitive calls share one thread.

    Entered inside another context (crossgate's or asgiref's), or inside an
    ``async_to_sync`` that blocks a thread, it joins that and changes nothing.

    Cheap to enter: its lane is made at its first call (most requests make none), and the
    adapters use :meth:`enter` and :meth:`exit` directly, with no coroutine in between.
    """

    # A context stands for itself in asgiref: it is the value of asgiref's context variable
    # (which reads `_exited`) and its executor (`submit`), so that entering one makes no
    # other object. asgiref's map holds it by a weak reference (`__weakref__`).
    __slots__ = (
        "__weakref__",
        "_borrowed",
        "_context",
        "_entered",
        "_exited",
        "_lane",
        "_pool",
        "_token",
    )

    def __init__(self, *, pool: WorkerPool | None = None) -> None:
        self._pool = pool
        self._lane: Lane | None = None  # made at the first call (see lane())
        self._token: contextvars.Token[Any] | None = None
        # A weak reference to asgiref's context object standing for this one, while
        # entered (the object points back here; its entry in asgiref's map goes at exit).
        self._context: Any = None
        self._entered = False
        # asgiref refuses calls in a context whose `_exited` is set (one with an executor of
        # its own, gone): calls that outlive this one go elsewhere instead.
        self._exited = False
        # Whether the block runs inside asgiref's async_to_sync, whose blocked thread then
        # takes the calls (as asgiref's own): decided at the first call, not at entry,
        # where reading asgiref's Local would cost every request a few µs.
        self._borrowed: bool | None = None

    def lane(self) -> Lane:
        """The context's lane, made on first use (from any thread: asgiref may ask for it
        from its own, through LaneExecutor.submit)."""
        lane = self._lane
        if lane is None:
            with _lane_lock:
                lane = self._lane
                if lane is None:
                    lane = self._lane = Lane(self._pool)
        return lane

    def enter(self) -> None:
        """Open the context in the current task (what ``async with`` does)."""
        if self._entered:
            raise RuntimeError("a thread_sensitive() block can be entered only once")
        self._entered = True
        if _ASGIREF_CONTEXT.get(None) is not None:
            return
        mailbox = _current_mailbox.get()
        if mailbox is not None and mailbox._open:  # crossgate's async_to_sync blocks a thread
            return
        # asgiref's map of contexts to executors is a WeakKeyDictionary, whose Python-level
        # __setitem__ and pop cost a request more than all the rest: the entry goes into the
        # underlying dict directly, under a plain weak reference, and leaves it at exit.
        key = self._context = weakref.ref(self)
        _ASGIREF_EXECUTORS.data[key] = self
        self._token = _ASGIREF_CONTEXT.set(self)

    def exit(self) -> None:
        """Close the context: its lane's thread finishes what is queued and goes back."""
        token, self._token = self._token, None
        if token is None:
            return
        _ASGIREF_CONTEXT.reset(token)
        key, self._context = self._context, None
        _ASGIREF_EXECUTORS.data.pop(key, None)
        self.close()  # a request that made no call: one lock, no lane

    async def __aenter__(self) -> ThreadSensitive:
        self.enter()
        return self

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on the context's thread (the executor asgiref uses)."""
        future: Future[Any] = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self.lane().post(job)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exit()

    def close(self) -> None:
        with _lane_lock:
            lane = self._lane
            if lane is None:
                # No call came: a task that outlives the context finds it closed (its calls
                # go to the process-wide lane), never a new lane nobody would close.
                self._lane = _CLOSED_LANE
                return
        lane.close()

    def post(self, job: Job) -> None:
        """Run ``job`` on this context's thread."""
        borrowed = self._borrowed
        if borrowed is None:
            borrowed = self._borrowed = getattr(_ASGIREF_BLOCKED, "current", None) is not None
        if borrowed:
            blocked = getattr(_ASGIREF_BLOCKED, "current", None)
            if blocked is not None and _post_to_executor(blocked, job):
                return
        _post_to_lane(self.lane(), job)


async def run_sensitive(fn: Any, /, *args: Any, context: contextvars.Context | None = None) -> Any:
    """Run sync ``fn(*args)`` on the thread of the current context and return its result.

    * In a crossgate context: its lane (or, when the lane's job is blocked in an
      ``async_to_sync``, that blocked call, so nesting comes back to the same thread).
    * In an asgiref ``ThreadSensitiveContext`` of someone else's (Django's handler): where
      asgiref's own thread-sensitive calls go: the thread blocked in asgiref's
      ``async_to_sync`` above, else the context's executor (a lane is installed as that
      executor when the context has none yet).
    * Outside any context: the thread blocked in an ``async_to_sync`` above (crossgate's,
      then asgiref's), else the process-wide lane.

    Cancelling the caller raises ``CancelledError`` at once; a job that has not started is
    skipped, one that has runs to its end.
    """
    loop: Loop = _get_running_loop() or trio_loop()
    fut: Waiter[Any] = loop.create_future()
    ctx = contextvars.copy_context() if context is None else context
    job = make_job(loop, fut, ctx, fn, args)
    asgiref_context = _ASGIREF_CONTEXT.get(None)
    if asgiref_context is not None:
        if type(asgiref_context) is ThreadSensitive:  # one of crossgate's (see enter)
            asgiref_context.post(job)
        else:
            _post_in_asgiref_context(asgiref_context, job)
    else:
        mailbox = _current_mailbox.get()
        if mailbox is None or not mailbox.post(job):
            blocked = getattr(_ASGIREF_BLOCKED, "current", None)
            if blocked is None or not _post_to_executor(blocked, job):
                _post_to_lane(process_lane(), job)
    return await fut


def _post_in_asgiref_context(asgiref_context: Any, job: Job) -> None:
    blocked = getattr(_ASGIREF_BLOCKED, "current", None)
    if blocked is not None and _post_to_executor(blocked, job):
        return
    executor = _ASGIREF_EXECUTORS.get(asgiref_context)
    if executor is None:
        # The context's first thread-sensitive call: a lane, which asgiref's later calls
        # use too and shut down (close) when the context exits.
        executor = LaneExecutor(ThreadSensitive())
        _ASGIREF_EXECUTORS[asgiref_context] = executor
    if not _post_to_executor(executor, job):
        raise RuntimeError("the thread-sensitive context's executor is shut down")


#: Guards the making of a context's lane (a rare race: asgiref's threads and the loop).
_lane_lock = threading.Lock()
#: The lane of every context that closed before its first call: closed, it passes what
#: still comes to the process-wide lane.
_CLOSED_LANE: Final = Lane()
_CLOSED_LANE.close()

_process_lane: Lane | None = None
_process_pid = -1
_process_lock = threading.Lock()


def process_lane() -> Lane:
    """The process-wide lane, for thread-sensitive calls outside any context."""
    global _process_lane, _process_pid
    lane = _process_lane
    if lane is not None and _process_pid == os.getpid():
        return lane
    with _process_lock:
        if _process_lane is None or _process_pid != os.getpid():
            _process_lane = Lane()
            _process_pid = os.getpid()
        return _process_lane


def _after_fork_in_child() -> None:
    # The parent's lane thread does not exist here, and its locks may be held.
    global _lane_lock, _process_lane, _process_lock
    _process_lane = None
    _process_lock = threading.Lock()
    _lane_lock = threading.Lock()
    _thread_seats.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_after_fork_in_child)
