"""WSGI apps (Flask, Django, Falcon) wrapped by crossgate.wsgi_to_asgi for real servers.

Each module exports ``application`` (the ASGI app) and serves the same routes:

* ``/hello``: a small fixed body;
* ``/stream?chunks=N&size=S``: a generator of N chunks of S bytes (``b"0123456789..."``);
* ``/upload`` (POST): reads the body in 64 KiB pieces, answers ``length sha256``;
* ``/endless?token=T``: yields forever; its ``close()`` marks T closed;
* ``/closed?token=T``: waits (up to 10 s) for T to be closed, answers ``closed`` or ``open``;
* ``/startup``: ``yes`` once the lifespan startup hook ran.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

__all__ = ["endless", "mark_started", "pattern", "sha_of_stream", "started", "wait_closed"]

_closed: dict[str, threading.Event] = {}
_lock = threading.Lock()
_started = threading.Event()
BLOCK = 64 * 1024


def _event(token: str) -> threading.Event:
    with _lock:
        return _closed.setdefault(token, threading.Event())


def pattern(chunks: int, size: int) -> Iterator[bytes]:
    """The streamed body: chunk i is ``size`` bytes of the digit ``i % 10``."""
    for index in range(chunks):
        yield str(index % 10).encode() * size


def endless(token: str) -> Iterator[bytes]:
    """Yield 16 KiB chunks until closed; closing marks ``token``."""
    try:
        while True:
            yield b"e" * 16384
    finally:
        _event(token).set()


def wait_closed(token: str) -> str:
    return "closed" if _event(token).wait(10) else "open"


def sha_of_stream(read: object) -> str:
    """``length sha256`` of everything ``read(BLOCK)`` returns."""
    digest = hashlib.sha256()
    length = 0
    assert callable(read)
    while True:
        block: bytes = read(BLOCK)
        if not block:
            break
        length += len(block)
        digest.update(block)
    return f"{length} {digest.hexdigest()}"


def mark_started() -> None:
    _started.set()


def started() -> str:
    return "yes" if _started.is_set() else "no"
