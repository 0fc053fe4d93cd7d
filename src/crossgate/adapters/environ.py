"""Sans-IO translation between an ASGI HTTP scope and a WSGI environ: public API.

Pure functions, no threads, no awaits, no I/O: :func:`build_environ` (ASGI scope -> CGI/WSGI
variables), :func:`build_scope` (WSGI environ -> ASGI HTTP scope), the response-side checks
:func:`check_status`, :func:`status_line`, :func:`encode_response_headers` (WSGI -> ASGI) and
:func:`decode_response_headers` (ASGI -> WSGI). Both adapters are built on them; they serve
as well wherever one convention must be written in the other's terms without an adapter (a
server of one's own, a test harness, a router handing a sub-app its environ). The names in
``__all__`` are the public API, with the contracts their docstrings state; the rest is
private. Invalid input raises :class:`~crossgate.InvalidStatus` or
:class:`~crossgate.InvalidHeader`, both :class:`ValueError`.

Everything here runs once per request, so it avoids per-call imports and allocations:
regexes are compiled once, and the name translations that repeat on every request (header
names, environ keys, status lines) are memoised in bounded caches.

The specifications quoted beside the rules (PEP 3333, the ASGI HTTP spec and its "WSGI
Compatibility" section, RFC 9110 and 9112) are listed with their links in :mod:`crossgate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final, cast
from urllib.parse import quote_from_bytes

from crossgate._errors import InvalidHeader, InvalidStatus
from crossgate._types import Environ, HTTPScope

__all__ = [
    "ENVIRON_SCOPE_KEY",
    "build_environ",
    "build_scope",
    "check_status",
    "decode_response_headers",
    "encode_response_headers",
    "status_line",
]

ENVIRON_SCOPE_KEY: Final = "wsgi.environ"
"""Scope key under which :func:`build_scope` stores the WSGI environ it was built from."""

# The memo caches below are keyed by names that arrive from the network (header names,
# environ keys), so each is capped: past the cap, new names are computed but not stored.
_CACHE_MAX: Final = 1024

# RFC 9110 5.6.2 (https://www.rfc-editor.org/rfc/rfc9110#name-tokens):
#   token = 1*tchar
#   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`"
#           / "|" / "~" / DIGIT / ALPHA
# and 5.1: "field-name = token". Spelled out ASCII ranges: `\w` would admit non-ASCII letters.
_TCHARS: Final = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN_STR: Final = re.compile(f"[{_TCHARS}]+")
_TOKEN_BYTES: Final = re.compile(f"[{_TCHARS}]+".encode("ascii"))

# PEP 3333: "Each header_value must not include *any* control characters, including carriage
# returns or linefeeds, either embedded or at the end." HTAB is let through because RFC 9110
# 5.5 makes it part of a field value: "field-content = field-vchar [ 1*( SP / HTAB /
# field-vchar ) field-vchar ]" (recent CPython wsgiref.handlers draws the same line).
_VALUE_CTL_STR: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VALUE_CTL_BYTES: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# PEP 3333: 'The status argument is an HTTP "status" string like "200 OK" or "404 Not Found".
# That is, it is a string consisting of a Status-Code and a Reason-Phrase, in that order and
# separated by a single space [...] The string must not contain control characters'.
# RFC 9112 4: "status-line = HTTP-version SP status-code SP [ reason-phrase ]",
# "status-code = 3DIGIT", "reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )"; the
# reason phrase is optional, and obs-text is %x80-FF. Codes start at 100 (1xx is the lowest
# class in RFC 9110 15), hence the leading [1-9].
_STATUS: Final = re.compile(r"[1-9][0-9]{2} [\t\x20-\x7e\x80-\xff]*")

_WSGI_VERSION: Final = (1, 0)

# ASGI: "http_version (Unicode string) -- One of "1.0", "1.1" or "2"." PEP 3333:
# SERVER_PROTOCOL "Typically this will be something like "HTTP/1.0" or "HTTP/1.1"".
_SERVER_PROTOCOLS: Final[dict[str, str]] = {"1.0": "HTTP/1.0", "1.1": "HTTP/1.1", "2": "HTTP/2"}
_HTTP_VERSIONS: Final[dict[str, str]] = {
    "HTTP/1.0": "1.0",
    "HTTP/1.1": "1.1",
    "HTTP/2": "2",
    "HTTP/2.0": "2",
}

# PEP 3333: "SERVER_NAME and SERVER_PORT are required strings and must never be empty."
_DEFAULT_PORTS: Final[dict[str, str]] = {"https": "443", "wss": "443"}

# Characters left as they are when a request target has to be rebuilt from a decoded path:
# RFC 3986 3.3 "pchar = unreserved / pct-encoded / sub-delims / ":" / "@"", plus "/".
# Everything else, "%" and "?" included, is percent-encoded.
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"

# Percent-decoding table (RFC 3986 2.1 "pct-encoded = "%" HEXDIG HEXDIG").
_HEX: Final = "0123456789abcdefABCDEF"
_UNQUOTE_ALL: Final[dict[bytes, bytes]] = {
    (hi + lo).encode("ascii"): bytes((int(hi + lo, 16),)) for hi in _HEX for lo in _HEX
}

# Request header name (bytes) -> environ key; "" means "drop this header".
_ENVIRON_KEYS: dict[bytes, str] = {}
# Environ key -> request header name (bytes); b"" means "not a header".
_SCOPE_HEADER_NAMES: dict[str, bytes] = {
    "CONTENT_TYPE": b"content-type",
    "CONTENT_LENGTH": b"content-length",
    # Some servers copy Content-Type/-Length to HTTP_ keys as well; wsgiref.validate even
    # forbids those keys. The unprefixed ones are authoritative.
    "HTTP_CONTENT_TYPE": b"",
    "HTTP_CONTENT_LENGTH": b"",
}
# PEP 3333 CONTENT_TYPE, CONTENT_LENGTH: "May be empty or absent." Empty means absent.
_OPTIONAL_EMPTY: Final = frozenset((b"content-type", b"content-length"))
# Validated response header names: str -> lower-cased bytes, and bytes -> str.
_ENCODED_NAMES: dict[str, bytes] = {}
_DECODED_NAMES: dict[bytes, str] = {}
# Validated response headers, (str, str) -> (bytes, bytes): most responses repeat the same
# few pairs (Content-Type, a Content-Length, Cache-Control). Short values only, so the
# cache stays small when values vary (cookies, ETags).
_ENCODED_PAIRS: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_PAIR_VALUE_MAX: Final = 64


def _status_lines() -> dict[int, str]:
    # Empty reason phrase for codes http.HTTPStatus does not know: RFC 9112 makes the reason
    # optional ("[ reason-phrase ]") and wsgiref's handler only asks for `status[3] == " "`;
    # inventing a phrase would tell the client something the application never said.
    lines = {code: f"{code} " for code in range(100, 1000)}
    for status in HTTPStatus:
        lines[status.value] = f"{status.value} {status.phrase}"
    return lines


_STATUS_LINES: Final[dict[int, str]] = _status_lines()
# Known-good status strings -> code, seeded with every standard line, grown up to the cap.
_STATUS_CODES: dict[str, int] = {line: code for code, line in _STATUS_LINES.items()}


# --------------------------------------------------------------------------------------------
# ASGI scope -> WSGI environ
# --------------------------------------------------------------------------------------------


def build_environ(scope: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Environ:
    """CGI/WSGI variables for an ASGI HTTP scope. The caller adds wsgi.input, wsgi.errors,
    wsgi.multithread, wsgi.multiprocess, wsgi.run_once, wsgi.file_wrapper, wsgi.input_terminated.

    Every value is a PEP 3333 native string (request bytes decoded as latin-1) except
    ``wsgi.version``; the function never raises on odd bytes in the path, query or headers.

    Args:
        scope: an ASGI HTTP connection scope.
        extra: entries the environ starts with (an adapter's constant ``wsgi.*`` keys), so
            that the dict is built once; the scope's variables are set over them.

    Returns:
        A new environ dict (``extra`` is not changed).
    """
    root_path = scope.get("root_path")
    path = scope.get("path") or ""
    # ASGI: "raw_path (byte string) -- The original HTTP path component, excluding any query
    # string, unmodified from the bytes that were received by the web server." It is the
    # only place an encoded slash survives, so PATH_INFO comes from it when it can be
    # trusted.
    raw = scope.get("raw_path")
    target: str
    if not root_path and raw is not None and path.isascii() and raw == path.encode("ascii"):
        # The common case: no root_path, nothing percent-encoded. An ASCII str is its own
        # latin-1 decoding, so PATH_INFO and the request target are `path` itself.
        script = ""
        info_text = target = path
    else:
        # ASGI compat: "SCRIPT_NAME is root_path". PEP 3333 SCRIPT_NAME: "The initial portion
        # of the request URL's "path" that corresponds to the application object"; it never
        # ends with "/" because PATH_INFO takes the slash ("/app" + "/x", not "/app/" + "x").
        root = _utf8(root_path).rstrip(b"/") if root_path else b""
        try:
            path_bytes = path.encode("utf-8")
        except UnicodeEncodeError:
            path_bytes = _utf8(path)
        info: bytes | None = None
        if raw is not None and raw != path_bytes:
            raw, info = _raw_path_info(raw, path, path_bytes, root)
        if info is None:
            # ASGI compat: "PATH_INFO can be derived by stripping root_path from path".
            info = _below_root(path_bytes, root) if root else path_bytes
            if info is None:
                # A path outside root_path is left whole: servers from before ASGI made
                # `path` include root_path gave it relative to the root.
                info = path_bytes
        script = root.decode("latin-1")
        info_text = info.decode("latin-1")
        # RAW_URI (gunicorn) and REQUEST_URI (Apache, many apps): the request target as sent.
        if raw is not None:
            target = raw.decode("latin-1")
        else:
            target = quote_from_bytes(path_bytes, _PATH_SAFE)

    query: bytes = scope.get("query_string") or b""
    # PEP 3333 QUERY_STRING: "The portion of the request URL that follows the "?", if any."
    # ASGI: query_string is the "URL portion after the ?, percent-encoded" as bytes; latin-1
    # maps every byte, so a non-ASCII query cannot make this fail.
    query_str = query.decode("latin-1")
    if query_str:
        target = f"{target}?{query_str}"

    scheme: str = scope.get("scheme") or "http"
    http_version: str = scope.get("http_version") or "1.1"
    # Built by assignment on a copy of `extra`: one dict, grown in place, is cheaper than a
    # literal that is then merged with `extra` (this runs once per request).
    environ: Environ = dict(extra) if extra else {}
    # ASGI compat: "REQUEST_METHOD is the method".
    environ["REQUEST_METHOD"] = scope["method"]
    environ["SCRIPT_NAME"] = script
    # PEP 3333 PATH_INFO: "This may be an empty string, if the request URL targets the
    # application root and does not have a trailing slash."
    environ["PATH_INFO"] = info_text
    environ["QUERY_STRING"] = query_str
    environ["RAW_URI"] = environ["REQUEST_URI"] = target
    # ASGI compat: "SERVER_PROTOCOL is encoded in http_version".
    environ["SERVER_PROTOCOL"] = _SERVER_PROTOCOLS.get(http_version) or "HTTP/" + http_version
    environ["wsgi.version"] = _WSGI_VERSION
    # ASGI compat: "wsgi.url_scheme is scheme".
    environ["wsgi.url_scheme"] = scheme

    # PEP 3333 HTTP_ Variables: "Variables corresponding to the client-supplied HTTP request
    # headers (i.e., variables whose names begin with "HTTP_"). The presence or absence of
    # these variables should correspond with the presence or absence of the appropriate HTTP
    # header in the request." ASGI compat: "CONTENT_TYPE can be extracted from headers",
    # "CONTENT_LENGTH can be extracted from headers".
    keys_get = _ENVIRON_KEYS.get
    # Values of repeated headers, collected and joined once at the end: joined as they
    # came, a request of n copies of one header would cost n^2 bytes of copying (50,000
    # copies held the loop for seconds).
    repeated: dict[str, list[str]] | None = None
    for name, value in scope.get("headers") or ():
        try:
            key = keys_get(name)
        except TypeError:  # a bytearray name is unhashable
            key = _environ_key(bytes(name))
        else:
            if key is None:
                key = _environ_key(name)
        if not key:
            continue
        text = value.decode("latin-1")
        if key in environ:
            if repeated is None:
                repeated = {}
            values = repeated.get(key)
            if values is None:
                repeated[key] = [environ[key], text]
            else:
                values.append(text)
        else:
            environ[key] = text
    if repeated is not None:
        for key, values in repeated.items():
            # RFC 9110 5.3: "A recipient MAY combine multiple field lines within a field
            # section that have the same field name into one field line [...] by appending
            # each subsequent field line value to the initial field line value in order,
            # separated by a comma (",") and optional whitespace". The ASGI spec recalls that
            # this is "exactly equivalent to sending that header field only once with all the
            # values joined by commas", except for cookies: RFC 9113 8.2.3 says split Cookie
            # fields "MUST be concatenated into a single octet string using the two-octet
            # delimiter of 0x3b, 0x20 (the ASCII string "; ") before being passed into a
            # non-HTTP/2 context, such as [...] a generic HTTP server application."
            environ[key] = ("; " if key == "HTTP_COOKIE" else ",").join(values)

    # ASGI compat: "SERVER_NAME and SERVER_PORT are in server". ASGI: server is "[host, port]
    # [...] or [path, None] where path is that of the unix socket". PEP 3333: "SERVER_NAME
    # and SERVER_PORT are required strings and must never be empty."
    default_port = _DEFAULT_PORTS.get(scheme, "80")
    server = scope.get("server")
    if server is not None and server[0]:
        host, port = server
        environ["SERVER_NAME"] = _native(host)
        environ["SERVER_PORT"] = default_port if port is None else str(port)
    else:
        # PEP 3333 (SERVER_NAME, SERVER_PORT): "When HTTP_HOST is not set, these variables can
        # be combined to determine a default"; here the reverse: Host stands in for them.
        host_header = environ.get("HTTP_HOST")
        if host_header:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = _split_host(host_header, default_port)
        else:
            environ["SERVER_NAME"] = "localhost"
            environ["SERVER_PORT"] = default_port

    # ASGI compat: "REMOTE_HOST/REMOTE_ADDR and REMOTE_PORT are in client". PEP 3333: "missing
    # variables [...] should be left out of the environ dictionary."
    client = scope.get("client")
    if client is not None:
        host, port = client
        if host:
            environ["REMOTE_ADDR"] = _native(host)
            if port is not None:
                environ["REMOTE_PORT"] = str(port)
    return environ


def _raw_path_info(
    raw: bytes, path: str, path_bytes: bytes, root: bytes
) -> tuple[bytes | None, bytes | None]:
    """(raw_path, PATH_INFO bytes) from a raw_path that differs from ``path``'s UTF-8.

    raw_path comes back None when it is stale (it does not decode to ``path``); PATH_INFO
    comes back None when ``path`` must decide it instead.
    """
    if type(raw) is not bytes:
        raw = bytes(raw)
    # The spec excludes the query from raw_path; some servers have not always done so.
    query_at = raw.find(b"?")
    if query_at >= 0:
        raw = raw[:query_at]
    decoded = _unquote(raw, _UNQUOTE_ALL)
    matches = decoded == path_bytes or (bool(root) and decoded == root + path_bytes)
    if not matches and "\ufffd" in path:
        # The server could not decode raw_path as UTF-8 and put U+FFFD in `path` (ASGI:
        # "UTF-8 byte sequences decoded into characters"). raw_path holds the real bytes:
        # compare the way the server decoded them, then keep the bytes.
        replaced = decoded.decode("utf-8", "replace").encode("utf-8")
        matches = replaced == path_bytes or (bool(root) and replaced == root + path_bytes)
    if not matches:
        # Stale: something rewrote `path` (a prefix-stripping middleware, say) and left
        # raw_path behind. `path` is what the application is meant to see.
        return None, None
    # PATH_INFO is decoded in full, "%2F" too, as gunicorn, waitress and uWSGI decode it:
    # an app must see the path it sees on a WSGI server (RAW_URI keeps the bytes as sent).
    # raw_path matters here only for bytes that are not UTF-8, which `path` cannot carry.
    # When root_path does not line up with raw_path, `path` decides (None).
    return raw, _below_root(decoded, root)


def _below_root(path: bytes, root: bytes) -> bytes | None:
    """``path`` with ``root`` taken off its front at a "/" boundary, else None.

    "/app" is under "/app" ("") and "/app/x" ("/x"), but "/application" is not under "/app".
    """
    if not root:
        return path
    if path.startswith(root):
        size = len(root)
        if len(path) == size or path[size] == 0x2F:  # 0x2F == ord("/")
            return path[size:]
    return None


def _unquote(raw: bytes, table: Mapping[bytes, bytes]) -> bytes:
    """Percent-decode ``raw`` with ``table`` (two hex digits -> bytes); bad escapes stay."""
    if b"%" not in raw:
        return raw
    parts = raw.split(b"%")
    out = [parts[0]]
    append = out.append
    for part in parts[1:]:
        byte = table.get(part[:2])
        if byte is None:
            append(b"%")
            append(part)
        else:
            append(byte)
            append(part[2:])
    return b"".join(out)


def _environ_key(name: bytes) -> str:
    """The environ key of request header ``name``, or "" if the header must be dropped."""
    lowered = name.lower()
    if not _TOKEN_BYTES.fullmatch(lowered):
        # RFC 9110 5.1: "field-name = token". Anything else cannot have come through an HTTP
        # parser (HTTP/2 pseudo-headers such as ":authority" included, which ASGI says "must
        # be removed"), so it is not turned into a CGI variable.
        key = ""
    elif b"_" in lowered:
        # "X-User_Id" and "X-User-Id" would both become HTTP_X_USER_ID: a client could
        # overwrite (or pre-empt) a header a trusted proxy sets. Dropped, as nginx and
        # Apache 2.4 do.
        key = ""
    elif lowered == b"content-type":
        key = "CONTENT_TYPE"
    elif lowered == b"content-length":
        key = "CONTENT_LENGTH"
    else:
        # bytes.upper() touches ASCII only; str.upper() would map "\xff" outside latin-1.
        key = "HTTP_" + lowered.upper().replace(b"-", b"_").decode("latin-1")
    if len(_ENVIRON_KEYS) < _CACHE_MAX:
        _ENVIRON_KEYS[name] = key
    return key


def _split_host(host: str, default_port: str) -> tuple[str, str]:
    """(name, port) of a Host header value; IPv6 literals keep their brackets.

    RFC 9110 7.2: "Host = uri-host [ ":" port ]", and an IPv6 uri-host is "[" IPv6address "]".
    Brackets stay in SERVER_NAME so that PEP 3333's URL reconstruction
    (``url += environ['SERVER_NAME']``) still yields a valid URL.
    """
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return host, default_port
        name, rest = host[: end + 1], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    if not port.isascii() or not port.isdigit():
        port = default_port
    return name or "localhost", port


# --------------------------------------------------------------------------------------------
# WSGI environ -> ASGI scope
# --------------------------------------------------------------------------------------------


def build_scope(
    environ: Mapping[str, Any],
    *,
    extensions: dict[str, dict[object, object]] | None = None,
    state: dict[str, Any] | None = None,
) -> HTTPScope:
    """An ASGI HTTP scope for a WSGI environ (for running an ASGI app on a WSGI server).

    ``path`` includes ``root_path`` as the ASGI spec has it; the environ itself is kept under
    :data:`ENVIRON_SCOPE_KEY`.

    Args:
        environ: a PEP 3333 environ.
        extensions: the scope's ``extensions`` (default: none).
        state: the lifespan state, shallow-copied into the scope's ``state`` (default: no
            ``state`` key).

    Returns:
        A new ASGI HTTP connection scope.
    """
    # ASGI: "root_path (Unicode string) -- The root path this application is mounted at;
    # same as SCRIPT_NAME in WSGI." and "path (Unicode string) -- HTTP request target
    # excluding any query string, with percent-encoded sequences and UTF-8 byte sequences
    # decoded into characters." The environ holds those bytes as latin-1 native strings.
    script_name: str = environ.get("SCRIPT_NAME") or ""
    path_info: str = environ.get("PATH_INFO") or ""
    script_bytes = _wire_bytes(script_name)
    info_bytes = _wire_bytes(path_info)
    path_bytes = script_bytes + info_bytes

    # ASGI: "raw_path (byte string) -- The original HTTP path component, excluding any query
    # string, unmodified from the bytes that were received by the web server."
    raw_path: bytes | None = None
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target and isinstance(target, str):
        raw_path = _origin_path(target)
    if raw_path is not None:
        decoded = _unquote(raw_path, _UNQUOTE_ALL)
        if decoded != path_bytes:
            # A server that keeps encoded slashes as "%2F" in PATH_INFO (build_environ above,
            # Apache's "AllowEncodedSlashes NoDecode"): the path proper has "/" there.
            unslashed = _decode_encoded_slashes(info_bytes)
            if unslashed is not None and decoded == script_bytes + unslashed:
                info_bytes = unslashed
            else:
                # RAW_URI no longer describes SCRIPT_NAME + PATH_INFO (a middleware rewrote
                # them, or a proxy stripped a prefix): the path the app sees wins.
                raw_path = None
    if raw_path is None:
        # An empty path is "/" below, and raw_path says the same.
        raw_path = quote_from_bytes(path_bytes, _PATH_SAFE).encode("ascii") or b"/"

    root_path = _utf8_text(script_name)
    # Bytes that are not UTF-8 become U+FFFD, as ASGI servers decode them (uvicorn and
    # hypercorn both do); raw_path keeps the bytes for an app that needs them.
    path = root_path + info_bytes.decode("utf-8", "replace") or "/"

    query: str = environ.get("QUERY_STRING") or ""
    protocol: str = environ.get("SERVER_PROTOCOL") or ""
    http_version = _HTTP_VERSIONS.get(protocol) or _HTTP_VERSIONS.get(protocol.upper(), "1.1")

    # ASGI compat: "CONTENT_TYPE can be extracted from headers", "CONTENT_LENGTH can be
    # extracted from headers"; HTTP_* keys are the other request headers. ASGI: "Header names
    # should be lowercased".
    headers: list[tuple[bytes, bytes]] = []
    append = headers.append
    names_get = _SCOPE_HEADER_NAMES.get
    for key, value in environ.items():
        name = names_get(key)
        if name is None:
            name = _scope_header_name(key)
        if not name or not isinstance(value, str):
            continue
        if not value and name in _OPTIONAL_EMPTY:
            continue
        append((name, _wire_bytes(value)))

    # ASGI: client is "[host, port] [...] port is the remote port as an integer"; with no
    # REMOTE_PORT the port is unknown and 0 stands for it (the type has no room for None).
    client: tuple[str, int] | None = None
    remote_addr = environ.get("REMOTE_ADDR")
    if remote_addr and isinstance(remote_addr, str):
        client = (remote_addr, _port(environ.get("REMOTE_PORT")) or 0)
    # ASGI: server is "[host, port] [...] or [path, None]": None when the port is unknown.
    server: tuple[str, int | None] | None = None
    server_name = environ.get("SERVER_NAME")
    if server_name and isinstance(server_name, str):
        server = (server_name, _port(environ.get("SERVER_PORT")))

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "method": (environ.get("REQUEST_METHOD") or "GET").upper(),
        "scheme": environ.get("wsgi.url_scheme") or "http",
        "path": path,
        "raw_path": raw_path,
        # ASGI: "query_string (byte string) -- URL portion after the ?, percent-encoded."
        "query_string": _wire_bytes(query),
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "extensions": {} if extensions is None else extensions,
        ENVIRON_SCOPE_KEY: environ,
    }
    if state is not None:
        # ASGI: "state Optional(dict[Unicode string, Any]) -- A copy of the namespace passed
        # into the lifespan corresponding to this request." The lifespan spec asks for a
        # shallow copy, so a request cannot add or remove keys for the others.
        scope["state"] = state.copy()
    return cast("HTTPScope", scope)


def _origin_path(target: str) -> bytes | None:
    """The path of a request target (RAW_URI, REQUEST_URI) as bytes, or None.

    RFC 9112 3.2: origin-form is "absolute-path [ "?" query ]", absolute-form an absolute URI
    (sent to proxies); asterisk-form ("*") and authority-form have no path.
    """
    path = target.partition("?")[0]
    if not path.startswith("/"):
        authority = path.find("://")
        if authority <= 0:
            return None
        slash = path.find("/", authority + 3)
        path = path[slash:] if slash >= 0 else "/"
    return _wire_bytes(path)


def _decode_encoded_slashes(info: bytes) -> bytes | None:
    """``info`` with "%2F"/"%2f" turned into "/", or None if it has none."""
    if b"%2F" not in info and b"%2f" not in info:
        return None
    return info.replace(b"%2F", b"/").replace(b"%2f", b"/")


def _scope_header_name(key: str) -> bytes:
    """The request header name of environ ``key``, or b"" if the key is not a header."""
    if isinstance(key, str) and key.startswith("HTTP_") and len(key) > 5:
        try:
            name = key[5:].lower().replace("_", "-").encode("ascii")
        except UnicodeEncodeError:
            name = b""
    else:
        name = b""
    if len(_SCOPE_HEADER_NAMES) < _CACHE_MAX:
        _SCOPE_HEADER_NAMES[key] = name
    return name


def _port(value: object) -> int | None:
    """An environ port string as an int, None if absent or not plain ASCII digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


# --------------------------------------------------------------------------------------------
# Status lines and response headers
# --------------------------------------------------------------------------------------------


def check_status(status: str) -> int:
    """The status code of a PEP 3333 status string such as ``"200 OK"``.

    Args:
        status: three digits (100-999), one space and a reason phrase of HTAB, SP, VCHAR and
            obs-text (possibly empty).

    Returns:
        The status code.

    Raises:
        InvalidStatus: ``status`` is anything else (the message names it).
    """
    value: object = status
    if isinstance(value, str):
        code = _STATUS_CODES.get(value)
        if code is not None:
            return code
        if _STATUS.fullmatch(value):
            code = int(value[:3])
            if len(_STATUS_CODES) < _CACHE_MAX:
                _STATUS_CODES[value] = code
            return code
    raise InvalidStatus(
        f"invalid WSGI status {value!r}: expected a str of three digits (100-999), one space "
        "and a reason phrase without control characters, such as '200 OK' (PEP 3333)"
    )


def status_line(code: int) -> str:
    """The PEP 3333 status string for ``code``, such as ``"200 OK"``.

    Args:
        code: an integer status code, 100-999.

    Returns:
        The status line; codes http.HTTPStatus does not name get an empty reason phrase
        (``"599 "``).

    Raises:
        InvalidStatus: ``code`` is outside 100-999 or not an integer (bool included).
    """
    value: object = code
    # bool is an int, and 200.0 == 200 would find a line: both are refused up front.
    if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
        line = _STATUS_LINES.get(value)
        if line is not None:
            return line
    raise InvalidStatus(f"invalid HTTP status code {value!r}: expected an int in 100-999")


def encode_response_headers(
    headers: Iterable[tuple[str, str] | list[str]],
) -> list[tuple[bytes, bytes]]:
    """WSGI response headers ((name, value) str pairs: tuples, or lists of two) as ASGI
    ``(bytes, bytes)`` pairs.

    Hop-by-hop headers pass through: real applications send them and servers drop them.

    Args:
        headers: the pairs given to ``start_response``.

    Returns:
        The pairs, names lower-cased, values stripped of surrounding spaces and tabs (RFC
        9110 5.5), both latin-1 encoded.

    Raises:
        InvalidHeader: a pair is not two strings, a name is not an RFC 9110 token, or a
            value is not latin-1 text free of control characters (HTAB allowed).
    """
    # PEP 3333: "The response_headers argument is a list of (header_name, header_value)
    # tuples." Lists of two items are taken too, as gunicorn, waitress and wsgiref take them:
    # real applications send them. Any other 2-item sequence is checked the slow way.
    result: list[tuple[bytes, bytes]] = []
    append = result.append
    names = _ENCODED_NAMES
    pairs = _ENCODED_PAIRS
    for item in _iterate(headers, "WSGI"):
        if type(item) is tuple and len(item) == 2:
            try:
                encoded = pairs.get(item)
            except TypeError:  # unhashable, so not a pair of str: checked below
                encoded = None
            if encoded is not None:  # validated before (an app sends the same few headers)
                append(encoded)
                continue
            name, value = item
        elif type(item) is list and len(item) == 2:
            name, value = item
        else:
            name, value = _check_sequence_pair(item)
        try:
            encoded_name = names[name]
        except (KeyError, TypeError):
            encoded_name = _encode_name(name)
        # Fast path: printable ASCII (0x20-0x7E) is always valid and encodes 1:1; only
        # spaces can surround it (a tab is not printable, so it takes the slow path).
        if type(value) is str and value.isascii() and value.isprintable():
            # RFC 9110 5.5: "a field value does not include leading or trailing whitespace"
            # (https://www.rfc-editor.org/rfc/rfc9110#section-5.5). Django's cookies start
            # with a space, which h11 refuses as an illegal value. bytes.strip() returns
            # the same object when there is nothing to strip.
            encoded_value = value.encode("ascii").strip(b" ")
        else:
            encoded_value = _encode_value(name, value)
        encoded = (encoded_name, encoded_value)
        if (
            type(item) is tuple
            and type(name) is str
            and type(value) is str
            and len(value) <= _PAIR_VALUE_MAX
        ):
            if len(pairs) >= _CACHE_MAX:
                pairs.clear()  # bounded; the pairs an app keeps sending come back at once
            pairs[item] = encoded
        append(encoded)
    return result


def decode_response_headers(headers: Iterable[Iterable[bytes]]) -> list[tuple[str, str]]:
    """ASGI response headers (``[bytes, bytes]`` pairs) as WSGI ``(str, str)`` tuples.

    Args:
        headers: the ``headers`` of an ``http.response.start`` message.

    Returns:
        The pairs decoded latin-1, names in their case, values stripped of surrounding
        spaces and tabs.

    Raises:
        InvalidHeader: a pair is not two byte strings, a name is not an RFC 9110 token, or
            a value holds a control character (HTAB allowed).
    """
    result: list[tuple[str, str]] = []
    append = result.append
    names = _DECODED_NAMES
    for item in _iterate(headers, "ASGI"):
        # ASGI: "headers (Iterable[[byte string, byte string]]) -- An iterable of [name, value]
        # two-item iterables". A bare bytes item would unpack into two ints.
        if (type(item) is tuple or type(item) is list) and len(item) == 2:
            name, value = item
        else:
            name, value = _check_pair(item)
        try:
            decoded_name = names[name]
        except (KeyError, TypeError):
            decoded_name = _decode_name(name)
        if not isinstance(value, (bytes, bytearray)):
            raise InvalidHeader(
                f"ASGI header value for {decoded_name!r} must be bytes, "
                f"got {type(value).__name__}: {value!r}"
            )
        if _VALUE_CTL_BYTES.search(value):
            raise InvalidHeader(
                f"ASGI header value for {decoded_name!r} contains a control character "
                f"(CR, LF, NUL and the like are refused, RFC 9110 5.5): {value!r}"
            )
        # RFC 9110 5.5: "a field value does not include leading or trailing whitespace".
        append((decoded_name, value.strip(b" \t").decode("latin-1")))
    return result


def _iterate(headers: Iterable[Any], side: str) -> Iterable[Any]:
    """``headers`` itself (lists and tuples, the usual case) or an iterator over it;
    InvalidHeader, not TypeError, when it is not iterable at all."""
    if type(headers) is list or type(headers) is tuple:
        return headers
    try:
        return iter(headers)
    except TypeError:
        raise InvalidHeader(
            f"{side} headers must be an iterable of (name, value) pairs, "
            f"got {type(headers).__name__}: {headers!r}"
        ) from None


def _check_sequence_pair(item: object) -> tuple[Any, Any]:
    """A WSGI header given as some other 2-item sequence (not str or bytes) as a pair,
    or InvalidHeader saying what is wrong with it."""
    if isinstance(item, Sequence) and not isinstance(item, (str, bytes, bytearray)):
        if len(item) == 2:
            return item[0], item[1]
        raise InvalidHeader(
            f"WSGI header must be a (name, value) pair of str, got {len(item)} items: {item!r}"
        )
    raise InvalidHeader(
        f"WSGI header must be a (name, value) tuple of str, got {type(item).__name__}: {item!r}"
    )


def _check_pair(item: object) -> tuple[Any, Any]:
    """An ASGI header ``item`` as a (name, value) pair, or InvalidHeader saying what was wrong
    with it."""
    if not isinstance(item, (str, bytes, bytearray)):
        try:
            pair = tuple(cast("Iterable[object]", item))
        except TypeError:
            pass
        else:
            if len(pair) == 2:
                return pair[0], pair[1]
            raise InvalidHeader(
                f"ASGI header must be a (name, value) pair of bytes, got {len(pair)} items: "
                f"{item!r}"
            )
    raise InvalidHeader(
        f"ASGI header must be a (name, value) pair of bytes, got {type(item).__name__}: {item!r}"
    )


def _encode_name(name: object) -> bytes:
    """A validated WSGI header name, lower-cased and encoded; memoised."""
    if not isinstance(name, str):
        raise InvalidHeader(f"WSGI header name must be str, got {type(name).__name__}: {name!r}")
    # PEP 3333: "Each header_name must be a valid HTTP header field-name (as defined by RFC
    # 2616, Section 4.2), without a trailing colon or other punctuation." (RFC 9110 5.1
    # today: "field-name = token".)
    if not _TOKEN_STR.fullmatch(name):
        raise InvalidHeader(f"WSGI header name {name!r} is not an HTTP token (RFC 9110 5.6.2)")
    # ASGI (Response Start): "Header names must be lowercased."
    encoded = name.lower().encode("ascii")
    if type(name) is str and len(_ENCODED_NAMES) < _CACHE_MAX:
        _ENCODED_NAMES[name] = encoded
    return encoded


def _encode_value(name: str, value: object) -> bytes:
    """A validated WSGI header value as latin-1 bytes."""
    if not isinstance(value, str):
        raise InvalidHeader(
            f"WSGI header value for {name!r} must be str, got {type(value).__name__}: {value!r}"
        )
    if _VALUE_CTL_STR.search(value):
        raise InvalidHeader(
            f"WSGI header value for {name!r} contains a control character (PEP 3333: "
            f"'must not include any control characters'): {value!r}"
        )
    try:
        # RFC 9110 5.5: "a field value does not include leading or trailing whitespace".
        return value.strip(" \t").encode("latin-1")
    except UnicodeEncodeError:
        # PEP 3333: strings passed as response headers "must either be ISO-8859-1
        # characters, or use RFC 2047 MIME encoding."
        raise InvalidHeader(
            f"WSGI header value for {name!r} is not latin-1 (encode it, e.g. RFC 2047 or "
            f"percent-encoding): {value!r}"
        ) from None


def _decode_name(name: object) -> str:
    """A validated ASGI header name decoded to str (case kept); memoised."""
    if not isinstance(name, (bytes, bytearray)):
        raise InvalidHeader(f"ASGI header name must be bytes, got {type(name).__name__}: {name!r}")
    if not _TOKEN_BYTES.fullmatch(name):
        raise InvalidHeader(f"ASGI header name {name!r} is not an HTTP token (RFC 9110 5.6.2)")
    decoded = name.decode("ascii")
    if type(name) is bytes and len(_DECODED_NAMES) < _CACHE_MAX:
        _DECODED_NAMES[name] = decoded
    return decoded


# --------------------------------------------------------------------------------------------
# Native-string helpers
#
# PEP 3333: "all "strings" referred to in this specification must contain only code points
# representable in ISO-8859-1 encoding (\u0000 through \u00FF, inclusive)". Request bytes are
# decoded as latin-1, so each byte becomes the code point of the same value and encodes back.
# --------------------------------------------------------------------------------------------


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8, never failing: lone surrogates are carried, not refused."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            # U+DC80-U+DCFF from a surrogateescape decode: give the original bytes back.
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


def _native(text: str) -> str:
    """A PEP 3333 native string for ``text``: its UTF-8 bytes decoded as latin-1."""
    if text.isascii():
        return text
    return _utf8(text).decode("latin-1")


def _wire_bytes(text: str) -> bytes:
    """The bytes a native string stands for (latin-1), or its UTF-8 if it is not native.

    Servers that break PEP 3333 by handing over characters above U+00FF still get an answer.
    """
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return _utf8(text)


def _utf8_text(native: str) -> str:
    """The text a native string's bytes spell in UTF-8, or the string itself if they do not.

    Bytes that are not UTF-8 (a latin-1 URL, say) stay as their latin-1 reading rather than
    become U+FFFD or lone surrogates: readable, and still encodable by the application.
    """
    if native.isascii():
        return native
    try:
        return native.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return native
