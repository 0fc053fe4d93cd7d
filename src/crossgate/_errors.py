"""crossgate's exceptions: one base class, each also a subclass of the builtin it refines."""

from __future__ import annotations

import logging

__all__ = [
    "BridgeClosed",
    "ClientDisconnectFilter",
    "ClientDisconnected",
    "CrossgateError",
    "InvalidHeader",
    "InvalidResponse",
    "InvalidStatus",
    "LifespanError",
    "RequestBodyTooLarge",
    "ResponseTimeout",
    "caused_by_disconnect",
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


def caused_by_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`ClientDisconnected`, or was raised from (or while
    handling) one: apps turn it into errors of their own (Django's ``UnreadablePostError``
    is raised ``from`` it)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, ClientDisconnected):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class ClientDisconnectFilter(logging.Filter):
    """A logging filter: a record whose exception comes from a client that left becomes one
    INFO line that says so, without the traceback. Other records pass as they are.

    For frameworks that log a client's disconnect as a server error themselves: Django
    logs ``Internal Server Error`` with an ``UnreadablePostError`` traceback when an upload
    is cut off. Attach it to that logger (a logger's filters run before its handlers' level
    checks, so an error mailer does not see the record)::

        LOGGING = {
            "version": 1,
            "filters": {"client_gone": {"()": "crossgate.ClientDisconnectFilter"}},
            "loggers": {"django.request": {"filters": ["client_gone"]}},
        }
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and caused_by_disconnect(exc):
            message = record.getMessage()
            record.msg = "%s: the client left before the request ended (%s)"
            record.args = (message, type(exc).__name__)
            record.levelno = logging.INFO
            record.levelname = logging.getLevelName(logging.INFO)
            record.exc_info = None
            record.exc_text = None
        return True
