"""The primitives of a hop: a callback posted to a loop from a thread, a future resolved
from a thread, and a job that runs on a worker for a loop (with that loop as its origin).
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from crossgate.adapters._bridge.backend import Loop, Waiter

__all__ = [
    "Job",
    "Started",
    "make_job",
    "origin_loop",
    "post_threadsafe",
    "resolve_threadsafe",
    "run_from",
    "run_job",
    "set_exception",
    "set_result",
]

T = TypeVar("T")


# The loop that handed the current thread its job (sync_to_async and the adapters set it),
# so that async code called back from this thread runs on that loop, not a new one.
class _Origin(threading.local):
    # A class default: reading it on a thread that never set it is a plain attribute hit,
    # not an AttributeError caught by getattr() (5x slower, on every async_to_sync call).
    loop: Loop | None = None


_origin = _Origin()


def origin_loop() -> Loop | None:
    """The event loop (asyncio's, or trio's :class:`TrioLoop`) waiting on the job this
    thread runs, if it runs one for a loop."""
    return _origin.loop


# Both run on the loop. The awaiting side may have been cancelled meanwhile: then the
# outcome has nobody to go to, and setting it would raise InvalidStateError.
def set_result(fut: Waiter[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def set_exception(fut: Waiter[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def post_threadsafe(loop: Loop, callback: Callable[..., object], *args: Any) -> bool:
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
Started = tuple[Loop, contextvars.Context, Callable[..., object], tuple[Any, ...]]


def make_job(
    loop: Loop,
    fut: Waiter[T],
    ctx: contextvars.Context,
    fn: Callable[..., T],
    args: tuple[Any, ...],
) -> Callable[[], Callable[[], object] | None]:
    def job() -> Callable[[], object] | None:
        if fut.cancelled():  # the caller gave up while the job was queued
            return None
        try:
            result = run_from(loop, ctx, fn, args)
        except BaseException as exc:
            # Base exceptions too: a SystemExit in the job belongs to the awaiting caller.
            return functools.partial(post_threadsafe, loop, set_exception, fut, exc)
        return functools.partial(post_threadsafe, loop, set_result, fut, result)

    return job


def resolve_threadsafe(fut: Waiter[T], value: T) -> None:
    """Set ``fut``'s result from any thread (nothing happens once its loop is closed)."""
    post_threadsafe(fut.get_loop(), set_result, fut, value)


def run_from(
    loop: Loop,
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


def run_job(job: Job) -> None:
    """Run ``job`` and its delivery on this thread (how a blocked caller serves work)."""
    deliver = job()
    if callable(deliver):
        deliver()
