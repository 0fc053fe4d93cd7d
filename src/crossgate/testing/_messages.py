"""The two values the drivers trade in: :class:`Request` (what the client sends) and
:class:`Response` (what the server got back from the application, and what it saw)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, unquote_to_bytes

__all__ = ["Request", "Response"]

# RFC 9110 5.6.2: "token = 1*tchar". Methods and header names are tokens (9.1, 5.1).
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 5.5: a field value holds no CR, LF or NUL (nor other controls but HTAB).
_VALUE_CTL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 3986 2.1: "pct-encoded = "%" HEXDIG HEXDIG"; such escapes are kept as they are.
_ESCAPE: Final = re.compile(r"%[0-9A-Fa-f]{2}")
# RFC 3986 3.3: "pchar = unreserved / pct-encoded / sub-delims / ":" / "@"", plus "/".
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"
# RFC 3986 3.4: "query = *( pchar / "/" / "?" )".
_QUERY_SAFE: Final = _PATH_SAFE + "?"


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{what} {value!r} is not latin-1 text; pass bytes") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _encode(text: str, safe: str) -> bytes:
    """``text`` as it goes on the wire: escapes kept, everything else outside ``safe``
    percent-encoded as UTF-8 (a lone "%" becomes "%25"), as browsers and httpx do."""
    out: list[str] = []
    at = 0
    for match in _ESCAPE.finditer(text):
        out.append(quote(text[at : match.start()], safe=safe))
        out.append(match.group())
        at = match.end()
    out.append(quote(text[at:], safe=safe))
    return "".join(out).encode("ascii")


@dataclass(frozen=True, init=False)
class Request:
    """One HTTP request, as a client sends it; both drivers take it.

    ``path`` is written as in a URL: characters outside RFC 3986 ``pchar`` are
    percent-encoded (UTF-8), escapes already there are kept, so ``"/a%2Fb"`` is one
    segment. A ``?`` starts the query. The attributes hold the request as it is sent:

    * ``path``: the decoded path (the ASGI ``path``; U+FFFD where the bytes are not UTF-8),
      ``raw_path``: the path as sent (the ASGI ``raw_path``, gunicorn's ``RAW_URI``);
    * ``query``: the query string as sent, bytes;
    * ``headers``: ``(name, value)`` byte pairs in order, case kept, repeats allowed;
      ``content-length`` is added when there is a (whole) body and neither
      ``content-length`` nor ``transfer-encoding`` was given;
    * ``body``: the body in the chunks it arrives in (empty chunks too), ``content``
      the whole of it;
    * ``root_path``: where the app is mounted (the ASGI ``root_path``, WSGI
      ``SCRIPT_NAME``); ``path`` must be inside it;
    * ``truncated``: the client disconnects after sending ``body``, before its end (a
      ``content-length``, if given, must be larger than what is sent).

    >>> request = Request("POST", "/caf\\u00e9/a%2Fb?x=1", body=[b"he", b"", b"llo"])
    >>> request.path, request.raw_path, request.query, request.content
    ('/café/a/b', b'/caf%C3%A9/a%2Fb', b'x=1', b'hello')
    >>> request.headers
    ((b'content-length', b'5'),)
    """

    method: str
    path: str
    raw_path: bytes
    query: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: tuple[bytes, ...]
    root_path: str
    scheme: str
    http_version: str
    client: tuple[str, int] | None
    server: tuple[str, int]
    truncated: bool

    def __init__(
        self,
        method: str = "GET",
        path: str = "/",
        *,
        query: str | bytes | None = None,
        headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        body: bytes | Iterable[bytes] = b"",
        root_path: str = "",
        scheme: str = "http",
        http_version: str = "1.1",
        client: tuple[str, int] | None = ("127.0.0.1", 50000),
        server: tuple[str, int] = ("testserver", 80),
        truncated: bool = False,
    ) -> None:
        if not _TOKEN.fullmatch(method.encode("latin-1", "replace")):
            raise ValueError(f"method {method!r} is not an HTTP token (RFC 9110 9.1)")
        target, mark, inline_query = path.partition("?")
        if mark and query is not None:
            raise ValueError("give the query in the path or as query=, not both")
        if not target.startswith("/"):
            raise ValueError(f"path {path!r} must start with '/'")
        raw_path = _encode(target, _PATH_SAFE)
        if query is None:
            query = inline_query
        raw_query = _encode(query, _QUERY_SAFE) if isinstance(query, str) else bytes(query)
        # ASGI: path is the target "with percent-encoded sequences and UTF-8 byte sequences
        # decoded into characters"; bytes that are not UTF-8 become U+FFFD, as servers do.
        decoded = unquote_to_bytes(raw_path)
        if root_path:
            root = root_path.encode("utf-8")
            if root.endswith(b"/") or not (decoded == root or decoded.startswith(root + b"/")):
                raise ValueError(
                    f"root_path {root_path!r} must be a prefix of path {path!r} ending "
                    "before a '/' (the ASGI path includes root_path)"
                )
        pairs: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            name_bytes = _as_bytes(name, "header name")
            value_bytes = _as_bytes(value, "header value")
            if not _TOKEN.fullmatch(name_bytes):
                raise ValueError(f"header name {name_bytes!r} is not a token (RFC 9110 5.1)")
            if _VALUE_CTL.search(value_bytes):
                raise ValueError(f"header value {value_bytes!r} holds a control character")
            pairs.append((name_bytes, value_bytes))
        if isinstance(body, (bytes, bytearray)):
            chunks: tuple[bytes, ...] = (bytes(body),) if body else ()
        else:
            chunks = tuple(body)
        if not all(isinstance(chunk, bytes) for chunk in chunks):
            raise TypeError("body must be bytes or an iterable of bytes")
        size = sum(map(len, chunks))
        framed = {name.lower() for name, _ in pairs} & {b"content-length", b"transfer-encoding"}
        if size and not framed and not truncated:
            pairs.append((b"content-length", str(size).encode("ascii")))
        declared = next((v for n, v in pairs if n.lower() == b"content-length"), None)
        if truncated and declared is not None and declared.isdigit() and int(declared) <= size:
            raise ValueError(
                f"a truncated body must fall short of its content-length ({declared!r}), "
                f"but all {size} bytes are sent"
            )
        set_ = object.__setattr__
        set_(self, "method", method)
        set_(self, "path", decoded.decode("utf-8", "replace"))
        set_(self, "raw_path", raw_path)
        set_(self, "query", raw_query)
        set_(self, "headers", tuple(pairs))
        set_(self, "body", chunks)
        set_(self, "root_path", root_path)
        set_(self, "scheme", scheme)
        set_(self, "http_version", http_version)
        set_(self, "client", client)
        set_(self, "server", server)
        set_(self, "truncated", truncated)

    @property
    def content(self) -> bytes:
        """The whole body."""
        return b"".join(self.body)

    @property
    def target(self) -> str:
        """The request target as sent: ``raw_path``, then ``?`` and the query if any."""
        target = self.raw_path.decode("latin-1")
        return f"{target}?{self.query.decode('latin-1')}" if self.query else target

    def header(self, name: str | bytes) -> bytes | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = _as_bytes(name, "header name").lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


@dataclass(frozen=True)
class Response:
    """What a driver got from the application for one request, and what it observed.

    * ``status``: the status code sent, 500 when the app failed before its response
      started, None when the client left before anything was sent;
    * ``headers``: ``(name, value)`` pairs as the app gave them (WSGI text; ASGI bytes
      decoded as latin-1); ``reason``: the WSGI reason phrase (None over ASGI);
    * ``body``: the body bytes the client got; ``chunks``: the pieces as the app handed
      them over (empty ones too);
    * ``aborted``: the response started but did not end properly (the app failed after
      its first body byte, or sent less than its Content-Length): the client sees a cut
      connection. A body that reached its Content-Length is whole, whatever came after;
    * ``disconnected``: the client left (``Request.truncated`` or ``disconnect_after``);
    * ``error``: what the application raised to the server, or the protocol rule it broke;
    * ``received``: the request body bytes the application took;
    * ``messages``: every ASGI message the app sent (empty for WSGI);
    * ``log``: what a WSGI app wrote to ``wsgi.errors``.

    A response "starts" when its first body byte is sent, or its end: until then a failing
    app still gets a 500 (PEP 3333 and the ASGI spec both let the server hold the headers).
    """

    status: int | None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    reason: str | None = None
    chunks: tuple[bytes, ...] = ()
    aborted: bool = False
    disconnected: bool = False
    error: BaseException | None = None
    received: bytes = b""
    messages: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    log: str = ""

    @property
    def complete(self) -> bool:
        """The client got a whole response (a 500 for a failed app counts)."""
        return self.status is not None and not self.aborted and not self.disconnected

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_list(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]
