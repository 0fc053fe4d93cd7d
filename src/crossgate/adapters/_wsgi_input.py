"""``wsgi.input`` for :class:`~crossgate.adapters.wsgi_to_asgi.WSGIToASGI`: the request body
read as a file, on the worker thread.

The file's unread bytes are touched by the worker only; refills come from the loop's side,
:class:`~crossgate.adapters._wsgi_body.BodyReceiver`: the message it read ahead, the
message its reader is receiving (waited for without a trip to the loop), or a pull, one
trip that receives just enough for the call at hand (``read()`` to the end, ``read(n)``
until n bytes, ``readline()`` until a newline).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from crossgate.adapters._wsgi_body import COMPLETE, BodyReceiver

__all__ = ["InputStream"]


class InputStream:
    """``wsgi.input``: a read-only file over the request body.

    PEP 3333 (https://peps.python.org/pep-3333/#input-and-error-streams): ``read(size)``,
    ``readline(size)``, ``readlines(hint)`` and ``__iter__``. The unread bytes are the tail
    of one received chunk from an offset, so a read copies each byte once: a slice of the
    chunk, or a join of the chunks it spans.

    Args:
        body: the loop's side of the body; its first message's body (``head``) is the
            file's first chunk.
    """

    __slots__ = ("_body", "_data", "_eof", "_pos", "_started")

    def __init__(self, body: BodyReceiver) -> None:
        self._body = body
        # Taken, not shared: the file lets go of the bytes once they are read.
        self._data, body.head = body.head, b""
        self._pos = 0
        self._eof = body.state is COMPLETE
        self._started = False

    def _start(self) -> None:
        # The app has started on the message received before it ran: the loop may now
        # read the next one ahead (if there is one).
        self._started = True
        if not self._eof:
            self._body.ask_ahead()

    def _fill(self, want: int, line: bool) -> list[bytes]:
        """The next body chunks: at least one byte, or all that is left (``want`` < 0 and
        not ``line``), unless the body ends first. ``line``: a chunk holding a newline is
        enough.
        """
        body = self._body
        handed = None
        if body.ahead is None and body.reading:
            handed = body.wait_for_reader()
        ahead = handed if handed is not None else body.take_ahead()
        if ahead is not None:
            data, more = ahead
            if not more:
                self._eof = True
                return [data] if data else []
            if handed is None:  # handed over: the loop already reads the next one ahead
                body.ask_ahead()  # the app has asked into this message: read the next one
            if data and (want >= 0 or line):
                return [data]  # the caller asks again if it needs more; read() needs all
            chunks = [data] if data else []
        else:
            chunks = []
        got, more = body.pull_from_worker(want, line)
        if not more:
            self._eof = True
        chunks += got
        return chunks

    def _rest(self) -> bytes:
        """The unread bytes of the current chunk, which is then used up."""
        data, pos = self._data, self._pos
        self._data, self._pos = b"", 0
        return data[pos:] if pos else data

    def read(self, size: int | None = -1) -> bytes:
        if not self._started and size != 0:
            self._start()
        data, pos = self._data, self._pos
        available = len(data) - pos
        if size is None or size < 0:
            # One trip receives up to more_body=False, unless an error cuts it short: then
            # the next trip raises, and what came before stays readable.
            chunks = [self._rest()]
            try:
                while not self._eof:
                    chunks += self._fill(-1, False)
            except BaseException:
                self._keep(chunks)
                raise
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if available >= size:
            if not pos and available == size:
                self._data = b""
                return data
            self._pos = pos + size
            return data[pos : pos + size]
        parts: list[bytes | memoryview[int]] = [memoryview(data)[pos:]] if available else []
        got = available
        last = b""
        try:
            while got < size and not self._eof:
                for last in self._fill(size - got, False):
                    parts.append(last)
                    got += len(last)
        except BaseException:
            self._keep(parts)  # what came before the error is still the app's to read
            raise
        if got <= size:
            self._data, self._pos = b"", 0
            if len(parts) == 1 and type(parts[0]) is bytes:
                return parts[0]
            return b"".join(parts)
        # The last chunk runs past the read: its tail is the next read's start.
        cut = len(last) - (got - size)
        parts[-1] = memoryview(last)[:cut]
        self._data, self._pos = last, cut
        return b"".join(parts)

    def _keep(self, parts: Sequence[bytes | memoryview[int]]) -> None:
        self._data, self._pos = b"".join(parts), 0

    def readline(self, size: int | None = -1) -> bytes:
        if not self._started and size != 0:
            self._start()
        limit = -1 if size is None or size < 0 else size
        data, pos = self._data, self._pos
        end = len(data) if limit < 0 else min(len(data), pos + limit)
        newline = data.find(b"\n", pos, end)
        if newline < 0 and end == len(data) and (limit < 0 or end - pos < limit) and not self._eof:
            # The line goes on past this chunk: gather chunks up to one holding a newline
            # (or the limit, or the end), then cut the line from them.
            parts = [self._rest()]
            got = len(parts[0])
            try:
                while not self._eof and (limit < 0 or got < limit):
                    chunks = self._fill(limit - got if limit >= 0 else -1, True)
                    parts += chunks
                    got += sum(map(len, chunks))
                    if any(b"\n" in chunk for chunk in chunks):
                        break
            except BaseException:
                self._keep(parts)
                raise
            data, pos = b"".join(parts), 0
            end = len(data) if limit < 0 else min(len(data), limit)
            newline = data.find(b"\n", 0, end)
        if newline >= 0:
            end = newline + 1
        self._data, self._pos = data, end
        if not pos and end == len(data):
            self._data, self._pos = b"", 0
            return data
        return data[pos:end]

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """The server owns the stream; closing it is a no-op."""
