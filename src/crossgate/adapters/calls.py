"""Function-level bridges: call sync code from async code and async code from sync code.

:func:`sync_to_async` turns a blocking function into a coroutine function that runs it in
a worker thread; :func:`async_to_sync` turns a coroutine function (or any callable that
returns an awaitable) into a blocking function. Both carry :mod:`contextvars` across in
both directions, keep exceptions with their traceback, and nest in either direction
without deadlock. The threads and loops they use all come from :mod:`._bridge`.

Differences from :mod:`asgiref.sync` on purpose: :func:`sync_to_async` always uses a
thread of a pool (there is no ``thread_sensitive`` mode), and :func:`async_to_sync` from
plain sync code runs on one long-lived per-process loop instead of a new loop per call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from crossgate.adapters import _bridge

__all__ = ["async_to_sync", "sync_to_async"]

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
    fn: Callable[P, R], /, *, pool: _bridge.WorkerPool | None = None
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def sync_to_async(
    fn: None = None, /, *, pool: _bridge.WorkerPool | None = None
) -> Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]: ...


def sync_to_async(
    fn: Callable[P, R] | None = None, /, *, pool: _bridge.WorkerPool | None = None
) -> (
    Callable[P, Coroutine[Any, Any, R]]
    | Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]
):
    """Wrap blocking ``fn`` in a coroutine function that runs it in a worker thread.

    Contract:

    * each call runs ``fn`` in a thread of ``pool`` (default: crossgate's process-wide
      pool), in a copy of the caller's context; context variables ``fn`` sets are visible
      to the caller once the call returns or raises;
    * the result is returned and an exception re-raised with its original traceback;
    * cancelling the awaiting task raises ``CancelledError`` in it at once: ``fn`` still
      runs to its end in its thread (threads cannot be interrupted), a queued call is
      skipped, and its context changes are not copied back;
    * when the caller is itself running inside :func:`async_to_sync`, ``fn`` runs on the
      thread blocked in that call instead of taking a second one, so nesting both ways
      cannot exhaust the pool. Such calls run there one at a time: functions that wait
      for each other must not be started concurrently (``gather``) from inside one
      :func:`async_to_sync` call;
    * ``fn`` gets no particular thread. This is **not** asgiref's ``thread_sensitive``
      mode: code that must always run on the same thread (the Django ORM and other code
      holding per-thread connections, called from async views) needs
      ``asgiref.sync.sync_to_async(fn, thread_sensitive=True)`` instead.

    Works as ``sync_to_async(fn)``, as a bare decorator, as ``@sync_to_async(pool=p)``, and
    on functions that become methods (the wrapper is a plain function, so ``self`` binds).
    Raises ``TypeError`` for a non-callable or an ``async def`` function.
    """
    if fn is None:

        def decorator(f: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
            return _wrap_sync(f, pool)

        return decorator
    return _wrap_sync(fn, pool)


def _wrap_sync(
    fn: Callable[P, R], pool: _bridge.WorkerPool | None
) -> Callable[P, Coroutine[Any, Any, R]]:
    if not callable(fn):
        raise TypeError(f"sync_to_async() needs a callable, not {type(fn).__name__}")
    if _is_async(fn):
        raise TypeError(f"sync_to_async() needs a sync function; {fn!r} is async")
    run_sync = _bridge.run_sync
    copy_back = _bridge.copy_back
    copy_context = contextvars.copy_context

    # An `async def` wrapper: iscoroutinefunction() is then true for inspect and asyncio
    # alike on every Python version, with no marker needed.
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx = copy_context()
        try:
            if kwargs:
                result = await run_sync(
                    functools.partial(fn, *args, **kwargs), pool=pool, context=ctx
                )
            else:
                result = await run_sync(fn, *args, pool=pool, context=ctx)
        except asyncio.CancelledError:
            # The caller gave up: the job may still be running in ctx, so nothing there is
            # final, and the caller is unwinding anyway.
            raise
        except BaseException:
            copy_back(ctx)
            raise
        copy_back(ctx)
        return result

    return wrapper


def async_to_sync(afn: Callable[P, Awaitable[R]], /) -> Callable[P, R]:
    """Wrap ``afn`` (a coroutine function, or any callable returning an awaitable) in a
    blocking function that runs ``await afn(...)`` on an event loop and returns its result.

    Contract:

    * called from a thread that :func:`sync_to_async` (or a crossgate adapter) started,
      the awaitable runs on the loop that is waiting for that thread, the caller's
      original loop, so objects bound to that loop stay usable;
    * called from plain sync code, it runs on crossgate's per-process portal loop: one
      loop thread for the whole process, started on first use, never a new thread or loop
      per call, so objects made in one call stay usable in the next;
    * called from a thread that is running an event loop, it raises ``RuntimeError``: that
      code must ``await`` instead (blocking would stop the loop it waits on);
    * the awaitable runs in a copy of the caller's context, and the context variables it
      sets are visible to the caller afterwards; its result is returned and its exception
      re-raised with the original traceback;
    * sync work the awaitable hands back with :func:`sync_to_async` runs on this blocked
      thread, so nesting both ways needs no extra thread and cannot deadlock.

    The wrapper is a plain function, so it works as a decorator and on methods. Raises
    ``TypeError`` at wrap time for a non-callable.
    """
    if not callable(afn):
        raise TypeError(f"async_to_sync() needs a callable, not {type(afn).__name__}")
    call_in_loop = _bridge.call_in_loop
    copy_back = _bridge.copy_back
    copy_context = contextvars.copy_context
    origin_loop = _bridge.origin_loop
    get_portal = _bridge.get_portal
    running_loop = asyncio._get_running_loop  # the public getter raises when there is none

    @functools.wraps(afn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if running_loop() is not None:
            raise RuntimeError(
                "async_to_sync() cannot block a thread that runs an event loop: use await instead"
            )
        loop = origin_loop()
        if loop is None:
            loop = get_portal().loop
        ctx = copy_context()
        try:
            if kwargs:
                return call_in_loop(loop, functools.partial(afn, *args, **kwargs), context=ctx)
            return call_in_loop(loop, afn, *args, context=ctx)
        finally:
            copy_back(ctx)

    for marker in _COROUTINE_MARKERS:
        wrapper.__dict__.pop(marker, None)
    return wrapper
