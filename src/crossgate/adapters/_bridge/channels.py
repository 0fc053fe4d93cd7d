"""Bounded byte channels between a thread and a loop, one per direction.

The producer wakes the consumer only when the consumer is waiting (everything queued
meanwhile is taken in one batch); once the bytes in flight reach the budget, its next item
waits for the consumer to take them.

A channel closed with an error raises it at every later use, and never the kept instance
twice: an exception raised gains the frames it passes through in its traceback, and those
frames hold the channel (or what holds it), so a kept error that was raised ties them all
into a reference cycle, which only Python's cyclic collector frees. The producer's error
reaches the consumer once as itself (its traceback is the app's, for the server's log);
every other raise is of a fresh copy, which nothing keeps.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from crossgate._errors import BridgeClosed
from crossgate.adapters._bridge.backend import Loop, Waiter
from crossgate.adapters._bridge.hop import post_threadsafe, set_exception, set_result
from crossgate.adapters._bridge.pool import step_away, step_back

__all__ = ["DEFAULT_BUDGET", "LoopToThread", "ThreadToLoop"]

T = TypeVar("T")
Item = TypeVar("Item")

#: Bytes allowed in flight per channel before the producer waits.
DEFAULT_BUDGET = 1 << 20


def _fresh(error: BaseException) -> BaseException:
    """A new exception of ``error``'s type and arguments, to raise in its place (``error``
    itself if it cannot be copied: an ``__init__`` its ``args`` do not fit)."""
    try:
        fresh = copy.copy(error)
    except Exception:
        return error
    return fresh if type(fresh) is type(error) else error


class _Channel(Generic[Item]):
    """State shared by both channel directions: a queue of (item, size) with a budget."""

    __slots__ = ("_bytes", "_error", "_items", "_lock", "_loop", "_loop_waiter", "budget", "closed")

    def __init__(self, loop: Loop, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1 byte, not {budget!r}")
        self.budget = budget
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._bytes = 0
        self.closed = False
        self._error: BaseException | None = None
        # The loop side's wait, if it waits: ThreadToLoop's consumer, LoopToThread's producer.
        self._loop_waiter: Waiter[None] | None = None

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
            raise self._closed_error()
        self._items.append(item)
        self._bytes += size

    def _take(self) -> list[Item]:  # with self._lock held
        items, self._items = self._items, []
        self._bytes = 0
        return items

    async def _wait_on_loop(self, waiter: Waiter[None]) -> None:
        """Await ``waiter`` (set as ``_loop_waiter`` under the lock); a cancelled wait
        leaves no waiter behind for the thread to wake."""
        try:
            await waiter
        except BaseException:
            with self._lock:
                self._loop_waiter = None
            raise

    def _closed_error(self) -> BaseException:
        """What to raise at a use of the closed channel (see the module's docstring)."""
        return BridgeClosed("channel closed") if self._error is None else _fresh(self._error)

    def _ended(self) -> list[Item]:  # with self._lock held, nothing queued, closed
        error = self._error
        if error is None:
            return []
        # The consumer meets the error itself once (see the module's docstring); the
        # channel keeps a copy for any later use.
        self._error = _fresh(error)
        try:
            raise error
        finally:
            del error  # this frame is in the traceback: no local of it may keep the error


class ThreadToLoop(_Channel[Item]):
    """Items from a thread (:meth:`put`, blocking) to the loop (:meth:`get`, awaited).

    :meth:`get` returns everything queued since the last call in one list, or ``[]`` once
    the producer has closed the channel and all was taken. :meth:`close` with an exception,
    from either side, releases the other side with that exception.
    """

    __slots__ = ("_producer_waiting", "_space")

    def __init__(self, loop: Loop, budget: int = DEFAULT_BUDGET) -> None:
        super().__init__(loop, budget)
        # Created by the first producer that has to wait: most channels (one response that
        # fits the budget) never need it.
        self._space: threading.Lock | None = None
        self._producer_waiting = False

    def _wake_consumer(self) -> None:  # with self._lock held
        waiter = self._loop_waiter
        if waiter is not None:
            self._loop_waiter = None
            post_threadsafe(self._loop, set_result, waiter, None)

    def _release_producer(self) -> None:  # with self._lock held
        if self._producer_waiting:
            self._producer_waiting = False
            self._space.release()  # type: ignore[union-attr]  # set by the waiting producer

    def put(self, item: Item, size: int = 0, *, timeout: float | None = None) -> None:
        """Queue ``item`` (``size`` bytes), first waiting while the budget is spent.

        The wait comes before the item is queued, not after it: a producer whose item
        spends the budget goes on at once, and if that was its last item it ends the
        stream with no wait at all, where waiting after the item would cost a round trip
        between the threads for nothing. The bytes in flight stay under the budget plus
        one item either way.

        Raises :class:`BridgeClosed` (or the exception the consumer closed with) once the
        channel is closed, and ``TimeoutError``, with nothing queued, if the budget stays
        spent for ``timeout``.
        """
        with self._lock:
            if self._bytes < self.budget or self.closed:  # closed: _push raises
                self._push(item, size)
                if self._loop_waiter is not None:  # tested here: put() is the streaming hot path
                    self._wake_consumer()
                return
            space = self._space
            if space is None:
                space = self._space = threading.Lock()
                space.acquire()
            self._producer_waiting = True
        # The budget is spent: wait until the consumer takes the queue (or closes the
        # channel). A pool's worker waits on the network here, not at work: it steps away.
        away = step_away()
        try:
            if not space.acquire(timeout=-1 if timeout is None else timeout):
                with self._lock:
                    if self._producer_waiting:
                        self._producer_waiting = False
                        raise TimeoutError(f"the consumer took nothing for {timeout} s")
                space.acquire()  # a release raced the timeout
        finally:
            if away:
                step_back()
        with self._lock:
            self._push(item, size)
            if self._loop_waiter is not None:
                self._wake_consumer()

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
                waiter = self._loop_waiter = self._loop.create_future()
            await self._wait_on_loop(waiter)

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

    __slots__ = ("_calls", "_consumer_waiting", "_wake")

    def __init__(self, loop: Loop, budget: int = DEFAULT_BUDGET) -> None:
        super().__init__(loop, budget)
        self._wake = threading.Lock()
        self._wake.acquire()
        self._consumer_waiting = False
        self._calls: list[tuple[Callable[[], Any], Waiter[Any]]] = []

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
                        raise self._closed_error()
                    return
                if self._bytes < self.budget:
                    return
                waiter = self._loop_waiter = self._loop.create_future()
            await self._wait_on_loop(waiter)

    async def ask(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the consumer thread during its next :meth:`get`; return its result."""
        fut: Waiter[T] = self._loop.create_future()
        with self._lock:
            if self.closed:
                raise self._closed_error()
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
                        producer, self._loop_waiter = self._loop_waiter, None
                        if producer is not None:
                            post_threadsafe(self._loop, set_result, producer, None)
                        return items
                    if self.closed:
                        return self._ended()
                    self._consumer_waiting = True
            if calls:
                for fn, fut in calls:
                    try:
                        result = fn()
                    except BaseException as exc:
                        post_threadsafe(self._loop, set_exception, fut, exc)
                    else:
                        post_threadsafe(self._loop, set_result, fut, result)
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
            producer, self._loop_waiter = self._loop_waiter, None
        if producer is not None:
            post_threadsafe(self._loop, set_result, producer, None)
        for _, fut in calls:
            post_threadsafe(self._loop, set_exception, fut, self._closed_error())
