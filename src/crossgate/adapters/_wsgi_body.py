"""The loop's side of a request body for :class:`~crossgate.adapters.wsgi_to_asgi.WSGIToASGI`:
receiving it from ``receive()``, reading one message ahead of the app, bounding the wait
for the client (``body_timeout``), and listening for ``http.disconnect`` while the
response streams.

The worker's side, the file the app reads (``wsgi.input``), is
:class:`~crossgate.adapters._wsgi_input.InputStream`. The two meet at one slot, ``ahead``
(the message the loop received before the app asked for it), and at the hand-off where a
worker waits while the loop's reader receives (the methods under "called from the worker
thread"). The loop never reads ahead more than that one message; the same ``receive()``
also serves the watcher.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from crossgate._errors import ClientDisconnected, RequestBodyTooLarge
from crossgate._state import State, refused_move
from crossgate._types import Message, Receive
from crossgate.adapters._bridge import (
    AsyncLock,
    Event,
    Loop,
    Task,
    call_in_loop,
    cancel_and_wait,
    new_event,
    new_lock,
    post_threadsafe,
    step_away,
    step_back,
    timeout,
)

__all__ = ["COMPLETE", "CUT", "RECEIVING", "TIMED_OUT", "TOO_LARGE", "BodyReceiver", "BodyState"]


class BodyState(State):
    """Where a request body stands on the loop's side. It starts RECEIVING (or COMPLETE,
    when the first message holds it all) and moves once, in :meth:`BodyReceiver._move`.

    Whether the client is still connected is another matter (``disconnected``): a client
    can leave after its body was COMPLETE, and a body can be CUT by a ``send()`` that
    failed while the client was still sending.
    """

    #: More body messages are to come.
    RECEIVING = "receiving"
    #: The message with ``more_body=False`` came: the body is whole.
    COMPLETE = "complete"
    #: It crossed ``max_request_body``: the rest is refused, not received.
    TOO_LARGE = "too large"
    #: The client left before its body ended.
    CUT = "cut"
    #: The client sent nothing for ``timeout`` seconds before its body ended: dropped, and
    #: told so (408) if no response went out yet.
    TIMED_OUT = "timed out"


# The members as module constants: a global is read in a few nanoseconds, an enum member
# (a descriptor on its class) in about 90, and a request reads them several times.
RECEIVING: Final = BodyState.RECEIVING
COMPLETE: Final = BodyState.COMPLETE
TOO_LARGE: Final = BodyState.TOO_LARGE
CUT: Final = BodyState.CUT
TIMED_OUT: Final = BodyState.TIMED_OUT

# A body moves once, from RECEIVING: the other states are final.
_MOVES: Final[dict[BodyState, frozenset[BodyState]]] = {
    RECEIVING: frozenset((COMPLETE, TOO_LARGE, CUT, TIMED_OUT)),
    COMPLETE: frozenset(),
    TOO_LARGE: frozenset(),
    CUT: frozenset(),
    TIMED_OUT: frozenset(),
}


class BodyReceiver:
    """A request body received from ``receive()`` on the loop, for the file on the worker.

    A refill of the file takes the message read ahead, if one is there, without a trip to
    the loop; if the loop is still receiving it, the worker waits for it, again without a
    trip (and the loop, seeing the worker waiting, reads on at once); otherwise it is one
    trip (:meth:`pull`) that receives just enough messages for the call at hand. Either
    way the loop then reads one message ahead, so that an app reading a long body in
    pieces waits for the loop only when it outpaces the client. Nothing is received beyond
    what was asked plus one message.

    ``on_disconnect``, set by the part that answers the request, is called with the
    reason when an ``http.disconnect`` comes: nobody is left to answer.

    Args:
        loop: the request's event loop (asyncio's, uvloop's or trio's, through the bridge).
        receive: the request's ``receive()``.
        first: the request's first message, received before the app was called.
        limit: ``max_request_body``: past it the body is TOO_LARGE (None: no limit).
        timeout: seconds the body may go without a message before the client counts as
            gone (TIMED_OUT); None: no bound.
    """

    __slots__ = (
        "_handed",
        "_lock",
        "_mutex",
        "_space",
        "_wake",
        "_worker_waits",
        "ahead",
        "disconnected",
        "head",
        "head_unread",
        "limit",
        "loop",
        "on_disconnect",
        "reader",
        "reading",
        "receive",
        "received",
        "state",
        "timeout",
        "watcher",
    )

    def __init__(
        self,
        loop: Loop,
        receive: Receive,
        first: Message,
        limit: int | None,
        timeout: float | None,
    ) -> None:
        self.loop = loop
        self.receive = receive
        self.limit = limit
        self.timeout = timeout
        # The request refers to this body, and the callback to the request: finish() lets
        # go of it, so that the two are freed by reference counting, not by the collector.
        self.on_disconnect: Callable[[str], object] | None = None
        self.state = RECEIVING
        self.disconnected = False  # the client is gone (whatever the body's state)
        self.received = 0
        # The first body message has more after it and the app has not asked for more yet:
        # it counts as the one message read ahead.
        self.head_unread = False
        # The first message's body, for the file (which takes it at once): a body that fits
        # in it (most requests) is read with no trip to the loop at all.
        head = b""
        if first["type"] == "http.request":
            head = first.get("body", b"")
            self.head_unread = bool(first.get("more_body", False))
            self.received = len(head)
            if limit is not None and len(head) > limit:
                self.state = TOO_LARGE
                head = b""
            elif not self.head_unread:
                self.state = COMPLETE
        self.head = head
        self._lock: AsyncLock | None = None
        self._space: Event | None = None
        # A body message received before the app asked for it, accounted for (its body and
        # whether more follows): set on the loop while None, taken by the worker or the loop.
        self.ahead: tuple[bytes, bool] | None = None
        self.reader: Task | None = None  # receiving a message ahead
        # A worker that needs the body while the reader receives waits for the reader rather
        # than posting a receive of its own; only bodies that span messages need the locks.
        self.reading = False  # a reader task has been started and has not ended
        self._worker_waits = False
        self._handed: tuple[bytes, bool] | None = None  # the reader's message, for the worker
        # Made only for a body that spans messages: a reader, and so every use of these,
        # exists only for one (a body in one message is whole before the app runs).
        self._mutex: threading.Lock
        self._wake: threading.Lock
        if self.state is RECEIVING:
            self._mutex = threading.Lock()
            self._wake = threading.Lock()
            self._wake.acquire()
        self.watcher: Task | None = None  # listening for http.disconnect

    # ------------------------------------------------------- called from the worker thread

    def take_ahead(self) -> tuple[bytes, bool] | None:
        """The message held ahead, taken (None if none is): its body and whether more
        follows. Only the loop sets ``ahead``, and only while it is None, so taking it
        needs no lock."""
        ahead = self.ahead
        if ahead is not None:
            self.ahead = None
        return ahead

    def wait_for_reader(self) -> tuple[bytes, bool] | None:
        """The message the loop's reader is receiving, waited for; None if the reader has
        ended (it may have left a message ahead) or ends with nothing for the file (the pull
        that follows sorts out why). Called only while ``reading`` and nothing is ahead.

        Waiting here instead of pulling spares a trip to the loop: an app that reads faster
        than the client sends would otherwise make one per message, each a task on the loop.
        """
        with self._mutex:
            if not self.reading or self.ahead is not None:
                return None  # the caller takes what is held ahead, or pulls
            self._worker_waits = True
        # Waiting on the client, not at work: the worker steps away from the pool's count.
        away = step_away()
        try:
            self._wake.acquire()
        finally:
            if away:
                step_back()
        handed, self._handed = self._handed, None
        return handed

    def pull_from_worker(self, want: int, line: bool) -> tuple[list[bytes], bool]:
        """:meth:`pull`, run on the loop while the worker waits (away from the pool's count:
        it waits on the client, not at work)."""
        away = step_away()
        try:
            return call_in_loop(self.loop, self.pull, want, line)
        finally:
            if away:
                step_back()

    def ask_ahead(self) -> None:
        """The app has asked into the message held ahead (or the first one): the loop may
        read the next one ahead."""
        # Once the loop is closed (False) the request is over: nothing to read ahead for.
        post_threadsafe(self.loop, self._asked_ahead)

    # ------------------------------------------------------------------------ on the loop

    async def pull(self, want: int, line: bool) -> tuple[list[bytes], bool]:
        """Receive body chunks for the file: ``want`` bytes (-1: all), or up to a chunk
        holding a newline when ``line``; returns them and whether more may follow.
        """
        if self.head_unread:
            self._asked()
        chunks: list[bytes] = []
        got = 0
        while True:
            ahead = self.ahead
            body: bytes | None
            if ahead is not None:  # read ahead meanwhile: it comes first
                self.ahead = None
                self._asked()
                body = ahead[0]
            else:
                state = self.state
                if state is not RECEIVING or self.disconnected:
                    if chunks:
                        break  # what came before is the app's; the next pull raises
                    if state is COMPLETE:
                        break
                    if state is TOO_LARGE:
                        raise self._too_large()
                    raise ClientDisconnected(self._gone())
                async with self._receiving():  # the watcher or the read-ahead may be in one
                    # Whoever held the lock may have changed the state: a message read
                    # ahead, the end of the body, or a disconnect, after which receive()
                    # may never return again.
                    if not self._may_receive():
                        continue
                    message = await self._receive_body()
                body = self._accept(message)
                if body is None:
                    # Too large or a disconnect (or another type of message): the top of
                    # the loop delivers what came before, or raises. ASGI: http.disconnect
                    # is "sent to the application if receive is called after a response
                    # has been sent or after the HTTP connection has been closed". Before
                    # more_body=False it means a truncated upload.
                    continue
            if body:
                chunks.append(body)
                got += len(body)
                if (want >= 0 and got >= want) or (line and b"\n" in body):
                    break
        self._read_ahead()
        return chunks, self.state is not COMPLETE

    async def _receive_body(self) -> Message:
        """``receive()``, bounded by the timeout while body bytes are due: a client silent
        for that long is TIMED_OUT, and then treated as one that left."""
        seconds = self.timeout
        if seconds is None or self.state is not RECEIVING:
            return await self.receive()
        try:
            async with timeout(seconds):
                return await self.receive()
        except TimeoutError:
            if self.state is RECEIVING:
                self._move(TIMED_OUT)
            return {"type": "http.disconnect"}

    def _move(self, state: BodyState) -> None:
        """The one place where the body's state changes (see BodyState)."""
        if state not in _MOVES[self.state]:
            raise refused_move("request body", self.state, state)
        self.state = state

    def client_left(self) -> None:
        """The client is gone (an http.disconnect, or a send() that failed): a body still
        being received is CUT."""
        self.disconnected = True
        if self.state is RECEIVING:
            self._move(CUT)

    def _accept(self, message: Message) -> bytes | None:
        """Account for a received message: its body (http.request) or None."""
        kind = message["type"]
        if kind == "http.request":
            if self.state is not RECEIVING:
                return None  # a server's stray message after the body ended: nothing more
            body: bytes = message.get("body", b"")
            if body:
                self.received += len(body)
                limit = self.limit
                if limit is not None and self.received > limit:
                    self._move(TOO_LARGE)
                    return None
            if not message.get("more_body", False):
                self._move(COMPLETE)
            return body
        if kind == "http.disconnect":
            self.client_left()
            # Nobody is left to answer: the worker's next put() of a chunk raises, so a
            # generator stops and its close() runs.
            on_disconnect = self.on_disconnect
            if on_disconnect is not None:  # None: the request is over, already stopped
                on_disconnect(self._gone())
        return None

    def _gone(self) -> str:
        if self.state is TIMED_OUT:
            return f"the client sent no request body bytes for {self.timeout} s"
        return "the client disconnected before the request body ended"

    def _asked_ahead(self) -> None:
        self._asked()
        self._read_ahead()

    def _asked(self) -> None:
        """The message held ahead is the app's now: the watcher may receive again."""
        self.head_unread = False
        if self._space is not None:
            self._space.set()

    def _may_receive(self) -> bool:
        """More of the body may come, and no message received is waiting for the app."""
        return self.ahead is None and self.state is RECEIVING and not self.disconnected

    def _receiving(self) -> AsyncLock:
        """The lock that keeps receive() to one caller at a time, made on first use."""
        lock = self._lock
        if lock is None:
            lock = self._lock = new_lock(self.loop)
        return lock

    def _read_ahead(self) -> None:
        """Receive the next body message before the app asks for it, if none is held."""
        if self._may_receive() and not self.head_unread and not self.reading:
            self.reader = self.loop.create_task(self._receive_ahead())
            self.reading = True  # the task cannot start before this: it is the loop's turn

    async def _receive_ahead(self) -> None:
        message = None
        try:
            async with self._receiving():
                if not self._may_receive():
                    return
                message = await self._receive_body()
        finally:
            self._reader_done(message)

    def _reader_done(self, message: Message | None) -> None:
        """The reader ended, with ``message`` or without one."""
        body = None if message is None else self._accept(message)
        with self._mutex:
            self.reading = False
            handed = False
            if body is not None:
                handed = self._arrived(body)
            elif self._worker_waits:
                # Empty-handed (a disconnect, a body over the limit, or the watcher took the
                # message): the worker pulls, and the pull sorts out which.
                self._worker_waits = False
                self._wake.release()
        if handed:
            self._hand_over()

    def _hold(self, message: Message) -> None:
        """Account for a message the watcher received before the app asked: its body is
        held ahead, or handed to a worker waiting for one."""
        body = self._accept(message)
        if body is None:
            return
        # A body: the watcher holds one only while more was to come, so it spans messages.
        with self._mutex:
            handed = self._arrived(body)
        if handed:
            self._hand_over()

    def _arrived(self, body: bytes) -> bool:  # with self._mutex held
        """A body message received ahead: handed to the waiting worker (True), else held.

        Every message received ahead comes through here under the mutex, and the worker
        waits only if none is held (``wait_for_reader``), so a waiting worker gets the
        next message whoever receives it: the watcher may take the lock before the reader
        and then keep it, after the last body message, until the client leaves.
        """
        if self._worker_waits:
            self._worker_waits = False
            self._handed = (body, self.state is not COMPLETE)
            return True  # the caller wakes the worker: _hand_over
        self.ahead = (body, self.state is not COMPLETE)
        return False

    def _hand_over(self) -> None:
        """Wake the worker for the message handed to it.

        The app has asked into that message (its worker waited for it): the next one may
        be read ahead at once, with no word from the worker. The reader starts before the
        worker wakes, so that the worker, back for more, finds it and waits for it too.
        """
        self._asked()
        self._read_ahead()
        self._wake.release()

    def _too_large(self) -> RequestBodyTooLarge:
        return RequestBodyTooLarge(f"the request body is larger than max_request_body={self.limit}")

    def watch(self) -> None:
        """From now on, notice a client that leaves while the response streams."""
        if not self.disconnected:
            self.watcher = self.loop.create_task(self._watch())

    async def _watch(self) -> None:
        """Listen for http.disconnect while the response streams.

        It shares ``receive()`` with the file under one lock and holds at most one body
        message ahead for the reader, so the body is never read ahead by more than a message.
        """
        lock = self._receiving()
        while not self.disconnected:
            if self._holds_unasked():
                # The reader has not taken the message held ahead yet: receiving again would
                # read ahead a second message. (After the final body message only a
                # disconnect can come, so that one does not stop the watch.)
                # A new event each time (trio's cannot be cleared): _asked sets the last one.
                space = self._space = new_event(self.loop)
                await space.wait()
                continue
            async with lock:
                if self._holds_unasked() or self.disconnected:
                    continue
                message = await self._receive_body()
            if self.state is RECEIVING or message["type"] != "http.request":
                self._hold(message)

    def _holds_unasked(self) -> bool:
        # A method, not an inline test: the state changes while the watcher awaits.
        if self.state is TOO_LARGE:
            # The body over the limit is refused, not drained: receiving on would read
            # it all. A client that leaves is still noticed, by a send() that fails.
            return True
        ahead = self.ahead
        if ahead is None:
            return self.head_unread
        return ahead[1]

    async def stop_watching(self) -> None:
        watcher = self.watcher
        if watcher is not None and not watcher.done():
            await cancel_and_wait(watcher)

    def abort(self) -> None:
        """The request is over early: stop listening for a disconnect."""
        if self.watcher is not None:
            self.watcher.cancel()

    def finish(self) -> None:
        """The request is over: a message still being received ahead is nobody's, and the
        callback is let go of (see ``__init__``).

        So are the tasks: a task cancelled and never awaited keeps its CancelledError, whose
        traceback holds the task's frame and so this body. Kept here, body and task would be
        a cycle that only the cyclic collector frees, with the last message of the body in
        it: under load, many requests' worth of memory before a collection comes.
        """
        reader, self.reader, self.watcher = self.reader, None, None
        if reader is not None:
            reader.cancel()
            if self.reading:
                # Cancelled before it ran, it never ends by itself: a worker waiting for it
                # (the request cancelled under it) goes on, and finds the request over.
                self._reader_done(None)
        self.on_disconnect = None
