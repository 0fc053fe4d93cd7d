"""crossgate's exceptions: one base class, each also a subclass of the builtin it refines."""

from __future__ import annotations

__all__ = [
    "BridgeClosed",
    "ClientDisconnected",
    "CrossgateError",
    "InvalidHeader",
    "InvalidResponse",
    "InvalidStatus",
    "LifespanError",
    "RequestBodyTooLarge",
    "ResponseTimeout",
]


class CrossgateError(Exception):
    """Base class of every exception crossgate raises on purpose."""


class InvalidResponse(CrossgateError, ValueError):
    """A status line, header or message that must not reach the wire."""


class InvalidStatus(InvalidResponse):
    """A response status that is not ``NNN reason`` (PEP 3333) or not in 100-999."""


class InvalidHeader(InvalidResponse):
    """A header name that is not a token, or a name or value holding CR, LF or NUL."""


class ClientDisconnected(CrossgateError, OSError):
    """The peer went away: raised from a body read or a send, never a silent short read.

    An :class:`OSError` because that is what the ASGI spec asks a ``send()`` to raise after
    a disconnect (https://asgi.readthedocs.io/en/latest/specs/www.html#disconnected-client-send)
    and what WSGI frameworks already treat as a broken client connection.
    """


class RequestBodyTooLarge(CrossgateError, OSError):
    """The request body crossed the configured ``max_request_body``."""


class BridgeClosed(CrossgateError, RuntimeError):
    """The other end of a thread/loop channel was closed; the waiting side is released."""


class LifespanError(CrossgateError, RuntimeError):
    """An ASGI app's lifespan startup or shutdown failed, or did not finish in time."""


class ResponseTimeout(CrossgateError, TimeoutError):
    """The application did not answer within the configured response timeout."""
