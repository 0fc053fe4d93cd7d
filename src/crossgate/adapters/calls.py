"""Function-level bridges: call sync code from async code and async code from sync code.

:func:`sync_to_async` turns a blocking function into a coroutine function that runs it in
a worker thread; :func:`async_to_sync` turns a coroutine function (or any callable that
returns an awaitable) into a blocking function. Both carry :mod:`contextvars` across in
both directions, keep exceptions with their traceback, and nest in either direction
without deadlock. The threads and loops they use all come from :mod:`._bridge`. They
work from asyncio (and uvloop) and from trio code alike: the loop is found per call.

:func:`sync_to_async` is thread-sensitive by default, as asgiref's is: the calls of one
context (:func:`thread_sensitive`, a request of crossgate's adapters, or asgiref's
``ThreadSensitiveContext`` that Django's ``ASGIHandler`` opens) all run on one thread,
borrowed from a pool rather than created per context; ``thread_sensitive=False`` runs
each call on any thread of a pool.

Differences from :mod:`asgiref.sync` on purpose: a context's thread comes from a pool and
goes back to it (asgiref starts an executor and its thread per context), and
:func:`async_to_sync` from plain sync code runs on one long-lived per-process loop instead
of a new loop per call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from crossgate.adapters import _bridge

__all__ = ["async_to_sync", "sync_to_async", "thread_sensitive"]

P = ParamSpec("P")
R = TypeVar("R")

# Markers that make a plain function look like a coroutine function: asyncio's (3.11) and
# inspect's (3.12+). functools.wraps copies __dict__, so a sync wrapper of a marked callable
# would inherit them and lie to iscoroutinefunction().
_COROUTINE_MARKERS = ("_is_coroutine", "_is_coroutine_marker")
# asyncio's marker object (what asyncio.iscoroutinefunction looks for on 3.11, and what
# asgiref sets there). Read directly: asyncio.iscoroutinefunction is deprecated in 3.14.
_ASYNCIO_MARKER = getattr(asyncio.coroutines, "_is_coroutine", None)


def _is_async(fn: object) -> bool:
    """True for an ``async def`` function or a callable marked as one (either marker)."""
    if inspect.iscoroutinefunction(fn):
        return True
    return _ASYNCIO_MARKER is not None and getattr(fn, "_is_coroutine", None) is _ASYNCIO_MARKER


@overload
def sync_to_async(
    fn: Callable[P, R],
    /,
    *,
    thread_sensitive: bool = True,
    pool: _bridge.WorkerPool | None = None,
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def sync_to_async(
    fn: None = None,
    /,
    *,
    thread_sensitive: bool = True,
    pool: _bridge.WorkerPool | None = None,
) -> Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]: ...


def sync_to_async(
    fn: Callable[P, R] | None = None,
    /,
    *,
    thread_sensitive: bool = True,
    pool: _bridge.WorkerPool | None = None,
) -> (
    Callable[P, Coroutine[Any, Any, R]]
    | Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]
):
    """Wrap blocking ``fn`` in a coroutine function that runs it in a worker thread.

    Contract:

    * ``thread_sensitive=True`` (the default, as asgiref's): every thread-sensitive call
      made within one context runs on one thread, one at a time, in the order they were
      made. A context is a :func:`thread_sensitive` block, a request of crossgate's
      adapters and of :func:`~crossgate.dispatch`, or asgiref's ``ThreadSensitiveContext``
      (Django's ``ASGIHandler``: the calls then run on the thread of Django's own). A call
      made inside an :func:`async_to_sync` that blocks the context's thread runs on that
      thread. Outside any context, the calls run on the thread blocked in an
      ``async_to_sync`` above the caller, else on one process-wide thread;
    * ``thread_sensitive=False``: each call runs in any thread of ``pool`` (default:
      crossgate's process-wide pool). ``pool`` needs ``thread_sensitive=False``;
    * ``fn`` runs in a copy of the caller's context; context variables ``fn`` sets are
      visible to the caller once the call returns or raises;
    * the result is returned and an exception re-raised with its original traceback;
    * cancelling the awaiting task raises ``CancelledError`` in it at once: ``fn`` still
      runs to its end in its thread (threads cannot be interrupted), a queued call is
      skipped, and its context changes are not copied back;
    * with ``thread_sensitive=False``, when the caller is itself running inside
      :func:`async_to_sync`, ``fn`` runs on the thread blocked in that call instead of
      taking a second one, so nesting both ways cannot exhaust the pool. Such calls run
      there one at a time: functions that wait for each other must not be started
      concurrently (``gather``) from inside one :func:`async_to_sync` call, nor as
      thread-sensitive calls of one context.

    Works as ``sync_to_async(fn)``, as a bare decorator, as
    ``@sync_to_async(thread_sensitive=False)``, and on functions that become methods (the
    wrapper is a plain function, so ``self`` binds). Awaited from asyncio, uvloop or trio
    code (under trio, a cancelled caller gets trio's ``Cancelled``).

    Args:
        fn: The blocking function; omitted, ``sync_to_async(...)`` is a decorator.
        thread_sensitive: Run the calls of one context on one thread (see above).
        pool: The :class:`~crossgate.WorkerPool` for ``thread_sensitive=False`` calls
            (default: crossgate's process-wide pool).

    Returns:
        A coroutine function with ``fn``'s signature (or the decorator).

    Raises:
        TypeError: For a non-callable, an ``async def`` function, or ``pool`` with
            ``thread_sensitive=True``.
    """
    if pool is not None and thread_sensitive:
        raise TypeError("sync_to_async(pool=...) needs thread_sensitive=False")
    if fn is None:

        def decorator(f: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
            return _wrap_sync(f, pool, thread_sensitive)

        return decorator
    return _wrap_sync(fn, pool, thread_sensitive)


def _wrap_sync(
    fn: Callable[P, R], pool: _bridge.WorkerPool | None, thread_sensitive: bool
) -> Callable[P, Coroutine[Any, Any, R]]:
    if not callable(fn):
        raise TypeError(f"sync_to_async() needs a callable, not {type(fn).__name__}")
    if _is_async(fn):
        raise TypeError(f"sync_to_async() needs a sync function; {fn!r} is async")
    if thread_sensitive:
        return _wrap(fn, _bridge.run_sensitive)
    # The default pool needs no partial: each call would merge its keywords.
    run = _bridge.run_sync if pool is None else functools.partial(_bridge.run_sync, pool=pool)
    return _wrap(fn, run)


def _wrap(
    fn: Callable[P, R], run: Callable[..., Coroutine[Any, Any, Any]]
) -> Callable[P, Coroutine[Any, Any, R]]:
    """The coroutine function that awaits ``run(fn, *args, context=ctx)``: a pool's thread
    (``run_sync``) or the context's thread (``run_sensitive``), in a copy of the caller's
    context whose changes come back to the caller when the call ends."""
    copy_back = _bridge.copy_back
    copy_context = contextvars.copy_context
    is_cancellation = _bridge.is_cancellation

    # An `async def` wrapper: iscoroutinefunction() is then true for inspect and asyncio
    # alike on every Python version, with no marker needed.
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx = copy_context()
        try:
            if kwargs:
                result: R = await run(functools.partial(fn, *args, **kwargs), context=ctx)
            else:
                result = await run(fn, *args, context=ctx)
        except BaseException as exc:
            # A cancelled caller (asyncio's or trio's) gave up while the job may still run
            # in ctx: nothing there is final, and the caller is unwinding anyway.
            if not is_cancellation(exc):
                copy_back(ctx)
            raise
        copy_back(ctx)
        return result

    return wrapper


def thread_sensitive(*, pool: _bridge.WorkerPool | None = None) -> _bridge.ThreadSensitive:
    """An async context manager: the thread-sensitive calls made within it (by
    :func:`sync_to_async` and by asgiref's ``sync_to_async``) all run on one thread.

    ``async with thread_sensitive(): ...`` is what a FastAPI or Starlette endpoint that
    calls the Django ORM wraps each request in (crossgate's adapters and
    :func:`~crossgate.dispatch` already open one per request). The thread is borrowed
    from ``pool`` (default: crossgate's process-wide pool) at the first call and goes back
    to it when the block ends; no thread or executor is started per context. Entered
    inside another context (crossgate's, or asgiref's ``ThreadSensitiveContext``), or
    inside an :func:`async_to_sync` that blocks a thread, it joins that and changes
    nothing. A task that outlives the block runs its later calls on the process-wide
    thread. Works under asyncio, uvloop and trio.

    Args:
        pool: The :class:`~crossgate.WorkerPool` the context's thread is borrowed from
            (default: crossgate's process-wide pool).
    """
    return _bridge.ThreadSensitive(pool=pool)


def async_to_sync(afn: Callable[P, Awaitable[R]], /) -> Callable[P, R]:
    """Wrap ``afn`` (a coroutine function, or any callable returning an awaitable) in a
    blocking function that runs ``await afn(...)`` on an event loop and returns its result.

    Contract:

    * called from a thread that :func:`sync_to_async` (or a crossgate adapter) started,
      the awaitable runs on the loop that is waiting for that thread, the caller's
      original loop (asyncio's, uvloop's or a trio run), so objects bound to that loop
      stay usable;
    * called from plain sync code, it runs on crossgate's per-process asyncio portal: one
      loop thread for the whole process, started on first use, never a new thread or loop
      per call, so objects made in one call stay usable in the next;
    * called from a thread that is running an event loop, it raises ``RuntimeError``: that
      code must ``await`` instead (blocking would stop the loop it waits on);
    * the awaitable runs in a copy of the caller's context, and the context variables it
      sets are visible to the caller afterwards; its result is returned and its exception
      re-raised with the original traceback;
    * sync work the awaitable hands back with :func:`sync_to_async` runs on this blocked
      thread, so nesting both ways needs no extra thread and cannot deadlock; when this
      thread is a context's thread-sensitive thread, so does every thread-sensitive call
      of that context made meanwhile.

    The wrapper is a plain function, so it works as a decorator and on methods.

    Args:
        afn: The coroutine function (or a callable returning an awaitable).

    Returns:
        A blocking function with ``afn``'s signature.

    Raises:
        TypeError: At wrap time, for a non-callable.
    """
    if not callable(afn):
        raise TypeError(f"async_to_sync() needs a callable, not {type(afn).__name__}")
    copy_back = _bridge.copy_back
    copy_context = contextvars.copy_context
    origin_loop = _bridge.origin_loop
    get_portal = _bridge.get_portal
    current_seat = _bridge.current_seat
    call_from_seat = _bridge.call_from_seat
    in_trio = _bridge.in_trio
    modules = sys.modules
    running_loop = asyncio._get_running_loop  # the public getter raises when there is none

    @functools.wraps(afn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if running_loop() is not None:
            raise RuntimeError(
                "async_to_sync() cannot block a thread that runs an event loop: use await instead"
            )
        loop = origin_loop()
        if loop is None:
            # Not a thread that a loop handed its job: plain sync code, or a thread that
            # runs trio (which asyncio's check above cannot see; checked only here, as a
            # worker thread with an origin loop runs no loop of its own).
            if "trio" in modules and in_trio():  # inline test first: no call without trio
                raise RuntimeError(
                    "async_to_sync() cannot block a thread that runs an event loop: "
                    "use await instead"
                )
            loop = get_portal().loop
        ctx = copy_context()
        try:
            # While this thread blocks, thread-sensitive work meant for it (as a context's
            # lane, or as the thread of asgiref's executor) comes to it here.
            seat = current_seat()
            if kwargs:
                return call_from_seat(  # type: ignore[no-any-return]
                    seat, loop, functools.partial(afn, *args, **kwargs), (), ctx
                )
            return call_from_seat(seat, loop, afn, args, ctx)  # type: ignore[no-any-return]
        finally:
            copy_back(ctx)

    for marker in _COROUTINE_MARKERS:
        wrapper.__dict__.pop(marker, None)
    return wrapper
