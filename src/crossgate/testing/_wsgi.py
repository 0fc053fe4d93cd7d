"""``call_wsgi``: one request through a WSGI application, served the way PEP 3333 says.

The driver is its own small server, independent of crossgate's adapters (it builds the
environ itself, as gunicorn and waitress do), so that what it reports can be held against
what the adapters produce. PEP 3333: https://peps.python.org/pep-3333/
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import unquote_to_bytes
from wsgiref.util import FileWrapper, is_hop_by_hop
from wsgiref.validate import validator

from crossgate._errors import InvalidResponse
from crossgate._types import Environ, OptExcInfo, WriteCallable, WSGIApp
from crossgate.testing._messages import Request, Response

__all__ = ["call_wsgi", "wsgi_environ"]

# PEP 3333: 'The status argument is an HTTP "status" string like "200 OK" [...] a string
# consisting of a Status-Code and a Reason-Phrase, in that order and separated by a single
# space [...] The string must not contain control characters'. The reason may be empty
# (RFC 9112 4: "status-line = HTTP-version SP status-code SP [ reason-phrase ]").
_STATUS: Final = re.compile(r"[1-9][0-9]{2} [\t\x20-\x7e\x80-\xff]*")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_CTL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _Input:
    """``wsgi.input`` over the request body: a read-only binary file, as PEP 3333 lists
    its methods (``read``, ``readline``, ``readlines``, ``__iter__``)."""

    def __init__(self, data: bytes, truncated: bool) -> None:
        self._data = data
        self._at = 0
        self._truncated = truncated

    @property
    def consumed(self) -> bytes:
        return self._data[: self._at]

    def _lost(self) -> None:
        # gunicorn raises an IOError subclass when the connection ends inside a body.
        raise ConnectionResetError("the client disconnected before the end of the request body")

    def _take(self, end: int) -> bytes:
        data = self._data[self._at : end]
        self._at = end
        return data

    def read(self, size: int | None = -1) -> bytes:
        left = len(self._data) - self._at
        if size is None or size < 0 or size > left:
            if self._truncated:
                self._lost()
            return self._take(len(self._data))
        return self._take(self._at + size)

    def readline(self, size: int | None = -1) -> bytes:
        data = self._data
        end = len(data) if size is None or size < 0 else min(len(data), self._at + size)
        newline = data.find(b"\n", self._at, end)
        if newline >= 0:
            return self._take(newline + 1)
        if (
            end == len(data)
            and self._truncated
            and (size is None or size < 0 or end - self._at < size)
        ):
            self._lost()
        return self._take(end)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def close(self) -> None:
        """The server owns the stream: nothing to do."""


class _Errors:
    """``wsgi.errors``: a text stream whose content lands in ``Response.log``."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors.write() takes str, not {type(text).__name__}")
        self.parts.append(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing is buffered."""


def wsgi_environ(request: Request) -> Environ:
    """The PEP 3333 environ a server builds for ``request`` (without the ``wsgi.`` streams).

    ``PATH_INFO`` is the percent-decoded path below ``SCRIPT_NAME`` (``%2F`` decoded too,
    as gunicorn, waitress and wsgiref do), ``RAW_URI`` and ``REQUEST_URI`` the target as
    sent; repeated headers are joined with ``,`` (``Cookie`` with ``; ``); header names
    holding ``_`` are dropped, as nginx, waitress and gunicorn do.

    >>> env = wsgi_environ(Request("GET", "/a%2Fb?q=1", headers=[("X-Id", "7")]))
    >>> env["PATH_INFO"], env["RAW_URI"], env["QUERY_STRING"], env["HTTP_X_ID"]
    ('/a/b', '/a%2Fb?q=1', 'q=1', '7')
    """
    decoded = unquote_to_bytes(request.raw_path)
    root = request.root_path.encode("utf-8")
    host, port = request.server
    environ: Environ = {
        "REQUEST_METHOD": request.method,
        # PEP 3333: "strings [...] must contain only code points representable in
        # ISO-8859-1": the request bytes, decoded as latin-1.
        "SCRIPT_NAME": root.decode("latin-1"),
        "PATH_INFO": decoded[len(root) :].decode("latin-1"),
        "QUERY_STRING": request.query.decode("latin-1"),
        "RAW_URI": request.target,
        "REQUEST_URI": request.target,
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
    }
    if request.client is not None:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = request.client[0], str(request.client[1])
    for name, value in request.headers:
        lowered = name.lower()
        if b"_" in lowered:
            continue
        if lowered == b"content-type":
            key = "CONTENT_TYPE"
        elif lowered == b"content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + lowered.upper().replace(b"-", b"_").decode("latin-1")
        text = value.decode("latin-1")
        if key in environ:
            # RFC 9110 5.3: repeated field lines may be combined "separated by a comma";
            # RFC 9113 8.2.3: Cookie fields are concatenated with "; ".
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + text
        else:
            environ[key] = text
    environ.update(
        {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.scheme,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            # mod_wsgi's extension: the input ends where the body does.
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }
    )
    return environ


class _Exchange:
    """The server side of one request: start_response, write and the body rules."""

    def __init__(self, request: Request, disconnect_after: int | None) -> None:
        self.request = request
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False  # PEP 3333 "sent": the headers are committed
        self.delivered_status: str | None = None
        self.chunks: list[bytes] = []
        self.body = bytearray()
        self.remaining: int | None = None
        self.full = False  # Content-Length reached: iterate no further
        self.disconnect_after = disconnect_after
        self.taken = 0
        self.gone = request.truncated or disconnect_after == 0
        self.finished = False  # the body was iterated to its end (or to a stop)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> WriteCallable:
        if exc_info is not None and exc_info[0] is not None:
            try:
                # PEP 3333: "if exc_info is provided, and the HTTP headers have already
                # been sent, start_response must raise an error, and should re-raise using
                # the exc_info tuple."
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: "avoid dangling circular ref"
        elif self.status is not None:
            # PEP 3333: "it is a fatal error to call start_response without the exc_info
            # argument if start_response has already been called".
            raise InvalidResponse("start_response() called twice without exc_info")
        self.remaining = _check(status, headers)
        self.status = status
        self.headers = list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        if self.status is None:
            raise InvalidResponse("write() called before start_response()")
        if type(data) is not bytes:
            raise InvalidResponse(f"write() takes bytes, not {type(data).__name__}")
        self.chunks.append(data)
        if self.gone:
            raise BrokenPipeError("the client disconnected")
        # PEP 3333: headers are sent "upon the application's first invocation of the
        # write() callable", an empty write included.
        self.commit()
        self.deliver(data)

    def commit(self) -> None:
        if self.sent:
            return
        if self.status is None:
            raise InvalidResponse(
                "the application returned a body without calling start_response()"
            )
        self.sent = True
        if not self.gone:
            self.delivered_status = self.status

    def deliver(self, data: bytes) -> None:
        if self.full or not data:
            return
        if self.remaining is not None:
            # PEP 3333 (Handling the Content-Length Header): "the server should not transmit
            # more bytes to the client than the header allows, and should stop iterating over
            # the response when enough data has been sent".
            data = data[: self.remaining]
            self.remaining -= len(data)
            self.full = not self.remaining
        self.body += data
        self.taken += 1
        if self.disconnect_after is not None and self.taken >= self.disconnect_after:
            self.gone = True

    def run(self, app: WSGIApp, environ: Environ) -> BaseException | None:
        error: BaseException | None = None
        result: Any = None
        try:
            result = app(environ, self.start_response)
            for item in result:
                if type(item) is not bytes:
                    raise InvalidResponse(f"the body yielded {type(item).__name__}, not bytes")
                self.chunks.append(item)
                # PEP 3333: headers wait for "the first iteration of the application return
                # value that yields a non-empty bytestring".
                if not item:
                    continue
                if self.gone:
                    break  # the client is gone: a server stops at the first failed send
                self.commit()
                self.deliver(item)
                if self.full or self.gone:
                    break
            else:
                if not self.gone:
                    self.commit()
            self.finished = True
        except Exception as exc:
            error = exc
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                # PEP 3333: the server "must call that method upon completion of the
                # current request, whether the request was completed normally, or
                # terminated early due to an application error during iteration or an
                # early disconnect of the browser."
                try:
                    close()
                except Exception as exc:
                    error = error or exc
        return error

    def short(self) -> bool:
        """The body ended before its Content-Length (where a body is due at all)."""
        if not self.remaining or self.request.method == "HEAD" or self.status is None:
            return False
        code = int(self.status[:3])
        return not (code < 200 or code in (204, 304))


def _check(status: object, headers: object) -> int | None:
    """Refuse a status or header list PEP 3333 does not allow; the Content-Length, if any."""
    if not isinstance(status, str) or not _STATUS.fullmatch(status):
        raise InvalidResponse(f"invalid status {status!r}: PEP 3333 wants '200 OK' and the like")
    if type(headers) is not list:
        raise InvalidResponse(f"response headers must be a list, not {type(headers).__name__}")
    length = None
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise InvalidResponse(f"a response header must be a (name, value) tuple: {item!r}")
        name, value = item
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidResponse(f"invalid header name {name!r} (RFC 9110 5.1: a token)")
        if not isinstance(value, str) or _VALUE_CTL.search(value) or not _latin1(value):
            raise InvalidResponse(f"invalid value {value!r} for header {name!r}")
        lowered = name.lower()
        # PEP 3333: "Applications and middleware are forbidden from using HTTP/1.1
        # "hop-by-hop" features or headers" (wsgiref's own test, as its handler uses).
        if is_hop_by_hop(lowered):
            raise InvalidResponse(f"hop-by-hop header {name!r} (forbidden by PEP 3333)")
        if lowered == "content-length":
            if not value.isascii() or not value.isdigit():
                raise InvalidResponse(f"invalid Content-Length {value!r}")
            length = int(value)
    return length


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def call_wsgi(
    app: WSGIApp,
    request: Request | None = None,
    *,
    disconnect_after: int | None = None,
    raise_app_exceptions: bool = True,
    validate: bool = False,
) -> Response:
    """Serve ``request`` (default: ``GET /``) with the WSGI application ``app``.

    The driver plays a PEP 3333 server: it builds the environ (:func:`wsgi_environ`),
    checks ``start_response`` (status, header list, ``exc_info`` rules), sends the headers
    with the first non-empty chunk or ``write()``, stops at Content-Length and always calls
    the iterable's ``close()``. An app failing before its response started gets a 500;
    after it, the response is ``aborted``. Either way the exception is kept in
    ``Response.error`` and, unless ``raise_app_exceptions=False``, raised once the request
    is over. ``disconnect_after=n`` makes the client leave after ``n`` non-empty body
    chunks (0: before any); ``validate=True`` runs ``app`` inside ``wsgiref.validate``.

    >>> def app(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"hello ", environ["PATH_INFO"].encode("latin-1")]
    >>> response = call_wsgi(app, Request("GET", "/world"))
    >>> response.status, response.header("content-type"), response.body
    (200, 'text/plain', b'hello /world')
    """
    if request is None:
        request = Request()
    if disconnect_after is not None and disconnect_after < 0:
        raise ValueError(f"disconnect_after must be None or >= 0, not {disconnect_after!r}")
    environ = wsgi_environ(request)
    stream = _Input(request.content, request.truncated)
    errors = _Errors()
    environ["wsgi.input"] = stream
    environ["wsgi.errors"] = errors
    exchange = _Exchange(request, disconnect_after)
    error = exchange.run(validator(app) if validate else app, environ)

    status: int | None = None
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    aborted = False
    gone = exchange.gone
    delivered = exchange.delivered_status
    if delivered is not None:
        status, reason = int(delivered[:3]), delivered[4:]
        headers = tuple(exchange.headers)
        if not exchange.finished and not gone and not exchange.full:
            # Cut before its end, unless the body reached its Content-Length: then the
            # client has all it was promised, whatever the app did next.
            aborted = True
        elif error is None and not gone and exchange.short():
            aborted = True
            error = InvalidResponse(
                f"the body ended {exchange.remaining} bytes short of its Content-Length"
            )
    elif error is not None and not gone:
        status = 500  # PEP 3333 lets the server send an error response: nothing went out
    response = Response(
        status=status,
        headers=headers,
        body=bytes(exchange.body),
        reason=reason,
        chunks=tuple(exchange.chunks),
        aborted=aborted,
        disconnected=gone,
        error=error,
        received=stream.consumed,
        log="".join(errors.parts),
    )
    if error is not None and raise_app_exceptions and not gone:
        raise error
    return response
