"""What the bridge needs from an event loop, and the backends that provide it.

The interface is the part of asyncio's loop and future that the bridge uses, written down
as the protocols :class:`Loop`, :class:`Waiter` and :class:`Task`:

* post a callback from any thread (``call_soon_threadsafe``; ``RuntimeError`` once the
  loop is gone), or from the loop's own thread (``call_soon``), or after a delay
  (``call_later``, cancellable);
* create a waiter (``create_future``) that a callback posted from a thread resolves
  (``set_result``, ``set_exception``); the coroutine that awaits it may give up
  (cancelled), which the resolving side sees as ``done()``;
* spawn a task in a given context (``create_task``), cancel it, ask whether it is done.

An asyncio loop (uvloop's too) *is* its own backend: the bridge calls its methods as it
always did, so the asyncio path pays nothing for trio. Trio's run is wrapped in a
:class:`TrioLoop` (its :class:`~trio.lowlevel.TrioToken` posts callbacks, waiters park
the task with :func:`trio.lowlevel.wait_task_rescheduled`, tasks are system tasks with a
cancel scope each), made once per run and kept in a :class:`trio.lowlevel.RunVar`.

The rarer operations that asyncio keeps outside its loop object are functions here:
:func:`running_loop`, :func:`current_task`, :func:`wait_tasks`, :func:`fail_after`,
:func:`timeout`, :func:`cancel_and_wait`, :func:`is_cancellation`, and the primitives a
request's parts wait on (:func:`new_lock`, :func:`new_event`, :class:`CancelHandle`).
The loop is found per call: asyncio's running loop first (the check the bridge always
made, a C call), trio's only when there is none. Trio is imported only when a trio run
is found, so processes that never use it never load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    import outcome
    import trio
else:
    # Imported by _import_trio() once a trio run is found: a process that never uses trio
    # never loads it.
    trio = outcome = None

__all__ = [
    "AsyncLock",
    "CancelHandle",
    "Event",
    "Handle",
    "Loop",
    "Task",
    "Timeout",
    "TrioCancelScope",
    "TrioLoop",
    "TrioTask",
    "TrioTimeout",
    "TrioWaiter",
    "Waiter",
    "asyncio_loop",
    "cancel_and_wait",
    "current_task",
    "fail_after",
    "in_trio",
    "is_cancellation",
    "new_event",
    "new_lock",
    "running_loop",
    "timeout",
    "trio_loop",
    "wait_tasks",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

logger = logging.getLogger(__name__)

_get_running_loop = asyncio._get_running_loop  # the public getter raises when there is none
#: asyncio's (or uvloop's) running loop, or None: a C call, the first check of every
#: detection, for callers that then fall back to :func:`trio_loop` themselves.
asyncio_loop = _get_running_loop


class Waiter(Protocol[T]):
    """A one-shot result for a coroutine to await, resolved on the loop's thread."""

    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def get_loop(self) -> Loop: ...
    def set_result(self, result: T, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...
    def __await__(self) -> Generator[Any, None, T]: ...


class Task(Protocol):
    """A task spawned on a loop: it can be cancelled and asked whether it ended."""

    def cancel(self) -> bool: ...
    def done(self) -> bool: ...


class Handle(Protocol):
    """A call scheduled for later (``call_later``): it can be called off."""

    def cancel(self) -> None: ...


class Timeout(Protocol):
    """What :func:`timeout` enters: ``expired()`` says whether its time ran out."""

    def expired(self) -> bool: ...
    async def __aenter__(self) -> Timeout: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class AsyncLock(Protocol):
    """A lock for the tasks of one loop (``async with lock:``)."""

    async def __aenter__(self) -> object: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class Event(Protocol):
    """A one-shot flag for the tasks of one loop: ``set()`` wakes every ``wait()``."""

    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    async def wait(self) -> object: ...


class Loop(Protocol):
    """The part of an asyncio loop the bridge uses; :class:`TrioLoop` provides it for trio."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> object: ...
    def call_soon(self, callback: Callable[..., object], *args: Any) -> object: ...
    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Handle: ...
    def create_future(self) -> Waiter[Any]: ...
    def create_task(
        self, coro: Coroutine[Any, Any, Any], *, context: contextvars.Context | None = None
    ) -> Task: ...
    def is_running(self) -> bool: ...
    def get_task_factory(self) -> object: ...


# --------------------------------------------------------------------------------------------
# Per-call detection and the operations asyncio keeps outside its loop
# --------------------------------------------------------------------------------------------


def running_loop() -> Loop:
    """The loop running the current task: asyncio's (or uvloop's), else trio's.

    Raises ``RuntimeError`` (as ``asyncio.get_running_loop()`` does) when there is none.
    """
    loop = _get_running_loop()
    if loop is not None:
        return loop
    return trio_loop()


def in_trio() -> bool:
    """Whether this thread is running a trio loop (False when trio was never imported)."""
    if "trio" not in sys.modules:
        return False
    _import_trio()
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def trio_loop() -> TrioLoop:
    """The :class:`TrioLoop` of the trio run on this thread, made at its first use.

    Raises ``RuntimeError`` outside a trio run (as asyncio does outside a loop).
    """
    if "trio" not in sys.modules:  # nobody imported trio: no trio run anywhere
        raise RuntimeError("no running event loop")
    var = _TRIO_LOOP or _import_trio()
    try:
        loop: TrioLoop = var.get()
    except LookupError:
        loop = TrioLoop(trio.lowlevel.current_trio_token())
        var.set(loop)
    except RuntimeError:  # not inside a trio run either
        raise RuntimeError("no running event loop") from None
    return loop


def _import_trio() -> Any:
    """Import trio (and outcome, its dependency) into this module; return the RunVar that
    holds each run's :class:`TrioLoop`."""
    global trio, outcome, _TRIO_LOOP
    if _TRIO_LOOP is None:
        import outcome as outcome_module  # noqa: PLC0415
        import trio as trio_module  # noqa: PLC0415

        trio, outcome = trio_module, outcome_module
        _TRIO_LOOP = trio_module.lowlevel.RunVar("crossgate_loop")
    return _TRIO_LOOP


#: The RunVar holding each trio run's TrioLoop (None until trio is first found running).
_TRIO_LOOP: Any = None


def current_task() -> Task | None:
    """The task running now, on asyncio or trio (None outside one)."""
    if _get_running_loop() is not None:
        return asyncio.current_task()
    loop = trio_loop()
    return loop._tasks.get(trio.lowlevel.current_task())


async def wait_tasks(tasks: Collection[Task], timeout: float | None) -> set[Task]:
    """Wait until every task in ``tasks`` is done, for at most ``timeout`` seconds;
    return those still running (as ``asyncio.wait(tasks, timeout=...)`` does)."""
    pending = {task for task in tasks if not task.done()}
    if not pending:
        return pending
    if _get_running_loop() is not None:
        _, left = await asyncio.wait(pending, timeout=timeout)  # type: ignore[type-var]
        return left
    with trio.move_on_after(float("inf") if timeout is None else timeout):
        for task in pending:
            assert isinstance(task, TrioTask)
            await task.wait()
    return {task for task in pending if not task.done()}


@contextlib.asynccontextmanager
async def fail_after(seconds: float | None) -> AsyncIterator[Callable[[], bool]]:
    """Cancel the block and raise ``TimeoutError`` when it has not ended within
    ``seconds`` (None: no limit). Yields ``expired()``: whether the time ran out, for a
    block whose code swallowed the cancellation and ended normally."""
    if _get_running_loop() is not None:
        async with asyncio.timeout(seconds) as timeout:
            yield timeout.expired
        return
    trio_loop()  # imports trio here when this is the run's first use of the bridge
    try:
        with trio.fail_after(float("inf") if seconds is None else seconds) as scope:
            yield lambda: scope.cancel_called
    except trio.TooSlowError:
        raise TimeoutError from None


def timeout(seconds: float | None) -> Timeout:
    """``async with timeout(seconds):`` raises ``TimeoutError`` when the block has not ended
    within ``seconds`` (None: no limit), as ``asyncio.timeout`` does; on trio a cancel
    scope does it.

    On asyncio this builds the ``asyncio.Timeout`` itself, as ``asyncio.timeout`` would:
    calling that from here would cost the request path a second Python frame per receive().
    """
    loop = _get_running_loop()
    if loop is not None:
        return asyncio.Timeout(None if seconds is None else loop.time() + seconds)
    trio_loop()  # raises RuntimeError outside a trio run, as asyncio.timeout's entry does
    return TrioTimeout(seconds)


def new_lock(loop: Loop) -> AsyncLock:
    """A lock for tasks of ``loop``."""
    if type(loop) is TrioLoop:
        lock: AsyncLock = trio.Lock()
        return lock
    return asyncio.Lock()


def new_event(loop: Loop) -> Event:
    """An event for tasks of ``loop`` (set once: make a new one to wait again)."""
    if type(loop) is TrioLoop:
        event: Event = trio.Event()
        return event
    return asyncio.Event()


async def cancel_and_wait(task: Task) -> None:
    """Cancel ``task`` and wait until it has ended. Only the caller's own cancellation
    propagates: the task's is absorbed."""
    task.cancel()
    if isinstance(task, asyncio.Task):
        try:
            await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise  # we are cancelled too, not only the task
        return
    assert isinstance(task, TrioTask)
    await task.wait()


class CancelHandle(Protocol):
    """The code running now, as a block another callback may cancel.

    On asyncio it is the current task itself (``cancel()``, ``uncancel()`` taken back by
    the canceller); on trio a cancel scope that the caller enters around the block.
    """

    def cancel(self) -> object: ...
    def uncancel(self) -> int: ...
    def get_loop(self) -> Loop: ...


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is the loop cancelling a task (asyncio's or trio's)."""
    if isinstance(exc, asyncio.CancelledError):
        return True
    return trio is not None and isinstance(exc, trio.Cancelled)


# --------------------------------------------------------------------------------------------
# The trio backend
# --------------------------------------------------------------------------------------------


class TrioLoop:
    """A trio run seen through the :class:`Loop` interface.

    Callbacks go through the run's token (``run_sync_soon`` is thread-safe and, on trio's
    own thread, runs on the next scheduler pass, like ``call_soon``); tasks are system
    tasks (they belong to no caller's nursery: the bridge starts them on behalf of
    threads), each inside a cancel scope so that it can be cancelled alone.
    """

    __slots__ = ("__weakref__", "_tasks", "_token", "thread_id")

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token
        self.thread_id = threading.get_ident()
        # trio's task -> its handle, for current_task().
        self._tasks: dict[Any, TrioTask] = {}

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        # trio.RunFinishedError, a RuntimeError, once the run has ended: as asyncio's
        # call_soon_threadsafe on a closed loop.
        self._token.run_sync_soon(callback, *args)

    call_soon = call_soon_threadsafe

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TrioTimer:
        timer = TrioTimer()
        self.create_task(timer.run(delay, callback, args))
        return timer

    def create_future(self) -> TrioWaiter[Any]:
        return TrioWaiter(self)

    def create_task(
        self, coro: Coroutine[Any, Any, Any], *, context: contextvars.Context | None = None
    ) -> TrioTask:
        task = TrioTask(self)
        try:
            trio.lowlevel.spawn_system_task(task.run, coro, context=context)
        except BaseException:
            coro.close()
            raise
        return task

    def is_running(self) -> bool:
        """True: a run that ended shows as ``RuntimeError`` from :meth:`call_soon_threadsafe`."""
        return True

    def get_task_factory(self) -> object:
        """Never None: the bridge then never starts an ``asyncio.Task`` eagerly here."""
        return self.create_task

    def __repr__(self) -> str:
        return f"<TrioLoop thread={self.thread_id}>"


class TrioWaiter(Generic[T]):
    """A :class:`Waiter` for trio: the awaiting task parks until it is resolved.

    Touched on trio's thread only (resolved by callbacks posted there). A task cancelled
    while it waits leaves the waiter cancelled; a later result is then dropped, as an
    asyncio future refuses it once cancelled.
    """

    __slots__ = ("_cancelled", "_loop", "_outcome", "_task")

    def __init__(self, loop: TrioLoop) -> None:
        self._loop = loop
        self._outcome: Any = None  # outcome.Value or outcome.Error, once resolved
        self._task: Any = None  # the trio task parked on it
        self._cancelled = False

    def get_loop(self) -> TrioLoop:
        return self._loop

    def done(self) -> bool:
        return self._outcome is not None or self._cancelled

    def cancelled(self) -> bool:
        return self._cancelled

    def set_result(self, result: T, /) -> None:
        self._resolve(outcome.Value(result))

    def set_exception(self, exception: BaseException, /) -> None:
        self._resolve(outcome.Error(exception))

    def _resolve(self, result: Any) -> None:
        if self.done():
            raise asyncio.InvalidStateError("the waiter is already done")
        task, self._task = self._task, None
        if task is None:
            self._outcome = result
        else:
            self._outcome = True  # done; the outcome travels to the task
            trio.lowlevel.reschedule(task, result)

    def _abort(self, raise_cancel: object) -> Any:
        self._task = None
        self._cancelled = True
        return trio.lowlevel.Abort.SUCCEEDED

    def __await__(self) -> Generator[Any, None, T]:
        result = self._outcome
        if result is None:
            if self._cancelled:
                raise RuntimeError("a cancelled waiter cannot be awaited again")
            self._task = trio.lowlevel.current_task()
            value: T = yield from trio.lowlevel.wait_task_rescheduled(self._abort).__await__()
            return value
        self._outcome = True  # an outcome is unwrapped once
        unwrapped: T = result.unwrap()
        return unwrapped


class TrioTask:
    """A :class:`Task` for trio: a system task running a coroutine in a cancel scope."""

    __slots__ = ("_done", "_loop", "_scope", "_waiters")

    def __init__(self, loop: TrioLoop) -> None:
        self._loop = loop
        self._scope = trio.CancelScope()
        self._done = False
        self._waiters: list[TrioWaiter[None]] = []

    def cancel(self) -> bool:
        if self._done:
            return False
        self._scope.cancel()
        return True

    def done(self) -> bool:
        return self._done

    async def wait(self) -> None:
        """Wait until the task has ended."""
        if self._done:
            return
        waiter: TrioWaiter[None] = TrioWaiter(self._loop)
        self._waiters.append(waiter)
        await waiter

    async def run(self, coro: Coroutine[Any, Any, Any]) -> None:
        me = trio.lowlevel.current_task()
        tasks = self._loop._tasks
        tasks[me] = self
        try:
            with self._scope:
                await coro
        except Exception:
            # A system task's exception would crash the whole run: logged, as asyncio logs
            # a task's exception that nobody retrieved.
            logger.exception("uncaught error in a task on the trio loop")
        finally:
            del tasks[me]
            self._done = True
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


class TrioTimer:
    """What :meth:`TrioLoop.call_later` returns: ``cancel()`` stops the call."""

    __slots__ = ("_scope",)

    def __init__(self) -> None:
        self._scope = trio.CancelScope()

    def cancel(self) -> None:
        self._scope.cancel()

    async def run(
        self, delay: float, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        with self._scope:
            await trio.sleep(delay)
            callback(*args)


class TrioTimeout:
    """:func:`timeout` on trio: a cancel scope with a deadline, its expiry turned into
    ``TimeoutError`` as ``asyncio.timeout`` does."""

    __slots__ = ("_scope", "_seconds")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._scope: Any = None

    def expired(self) -> bool:
        return self._scope is not None and bool(self._scope.cancelled_caught)

    async def __aenter__(self) -> TrioTimeout:
        seconds = self._seconds
        deadline = float("inf") if seconds is None else trio.current_time() + seconds
        self._scope = scope = trio.CancelScope(deadline=deadline)
        scope.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        scope = self._scope
        suppressed: bool = scope.__exit__(exc_type, exc, tb)
        if scope.cancelled_caught:
            raise TimeoutError
        return suppressed


class TrioCancelScope:
    """A :class:`CancelHandle` on trio: ``with handle:`` around the block to cancel.

    A cancel from inside the block ends it there (trio absorbs its own scope's cancellation
    at the ``with``), so there is nothing to take back: ``uncancel()`` says 0.
    """

    __slots__ = ("_loop", "_scope")

    def __init__(self) -> None:
        self._loop = trio_loop()
        self._scope = trio.CancelScope()

    def cancel(self) -> None:
        self._scope.cancel()

    def uncancel(self) -> int:
        return 0

    def get_loop(self) -> TrioLoop:
        return self._loop

    def __enter__(self) -> TrioCancelScope:
        self._scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        suppressed: bool = self._scope.__exit__(exc_type, exc, tb)
        return suppressed
