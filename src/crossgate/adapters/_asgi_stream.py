"""The server thread's side of one streamed response of
:class:`~crossgate.adapters.asgi_to_wsgi.ASGIToWSGI`: the WSGI iterable that yields the
body as the app sends it, and the abort that stops the app when the server closes early.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Final

from crossgate._errors import ClientDisconnected
from crossgate.adapters._asgi_exchange import Item, LoopRequest
from crossgate.adapters._bridge import BasePortal

__all__ = ["FileStream", "Stream", "abort", "collect"]


# Batches of body chunks up to this size are joined before they reach the server.
_COALESCE: Final = 64 * 1024


def collect(batch: list[Item], start: int, first: bytes = b"") -> tuple[list[bytes], bool]:
    """The body chunks in ``batch[start:]`` (after ``first``), empty ones dropped, and
    whether the last chunk is among them.

    Large chunks pass as they are (copying a megabyte costs more than handing the server a
    few more writes); a run of small ones is joined, one write instead of many.
    """
    chunks: list[bytes] = [first] if first else []
    final = False
    total = len(first)
    for index in range(start, len(batch)):
        item = batch[index]
        if type(item) is not bytes:
            if type(item) is not tuple:
                continue
            item = item[0]
            final = True
        if item:
            chunks.append(item)
            total += len(item)
    if len(chunks) > 1 and total <= _COALESCE:
        return [b"".join(chunks)], final
    return chunks, final


class Stream:
    """The WSGI iterable of a streamed response: yields body chunks as the app sends them."""

    __slots__ = ("_channel", "_chunks", "_done", "_exchange", "_grace", "_index", "_portal")

    def __init__(
        self, exchange: LoopRequest, portal: BasePortal, grace: float, first: list[bytes]
    ) -> None:
        self._exchange = exchange
        self._channel = exchange.channel
        self._portal = portal
        self._grace = grace
        self._chunks = first
        self._index = 0
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        index = self._index
        chunks = self._chunks
        if index < len(chunks):
            self._index = index + 1
            return chunks[index]
        get = self._channel.get
        while not self._done:
            try:
                batch = get()
            except BaseException as exc:
                self._done = True
                # An Exception is the app's error, passed on by the loop: raised to the
                # WSGI server, which logs it with its traceback (logged here too, it would
                # be logged twice) and aborts the response.
                if not isinstance(exc, Exception):
                    # KeyboardInterrupt, SystemExit in the server thread: stop the app.
                    abort(self._exchange, self._portal, 0.0, ClientDisconnected(repr(exc)))
                raise
            if not batch:  # closed without an error: nothing more comes
                self._done = True
                break
            chunks, self._done = collect(batch, 0)
            if chunks:
                self._chunks = chunks
                self._index = 1
                return chunks[0]
        self._chunks = []
        self._index = 0
        raise StopIteration

    def close(self) -> None:
        """PEP 3333: called by the server when it is done with the response, early or not."""
        if self._done:
            return
        self._done = True
        abort(
            self._exchange,
            self._portal,
            self._grace,
            ClientDisconnected("the WSGI server closed the response before its end"),
        )


class FileStream:
    """A file's blocks, for servers without ``wsgi.file_wrapper``."""

    __slots__ = ("_file", "_size")

    def __init__(self, file: IO[bytes], size: int) -> None:
        self._file = file
        self._size = size

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        block = self._file.read(self._size)
        if not block:
            raise StopIteration
        return block

    def close(self) -> None:
        self._file.close()


def abort(exchange: LoopRequest, portal: BasePortal, grace: float, error: BaseException) -> None:
    """From the server thread: make the app's send() raise, its receive() disconnect."""
    exchange.channel.close(error)
    # RuntimeError: the portal is closed (interpreter exit), nothing is left to stop.
    with contextlib.suppress(RuntimeError):
        portal.spawn(exchange.abort, grace)
