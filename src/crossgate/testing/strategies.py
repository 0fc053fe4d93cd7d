"""Hypothesis strategies for HTTP requests and for WSGI and ASGI apps that record what they
observed and know what a correct server answers (``pip install crossgate[testing]``).

* :func:`requests`: a :class:`~crossgate.testing.Request` (methods, unicode and
  percent-encoded paths with ``%2F``, raw query bytes, repeated and mixed-case headers,
  cookies, a body in arbitrary chunks with empty ones, Content-Length or chunked framing);
* :func:`wsgi_apps`: a :class:`ScriptedWSGIApp` (status, headers, list, generator,
  ``close()`` or ``write()`` bodies, Content-Length, exceptions before and after
  ``start_response`` and in the body, ``exc_info`` recovery);
* :func:`asgi_apps`: a :class:`ScriptedASGIApp` (message sequences, ``more_body``
  patterns, errors or early returns at any point).

Each app's ``behaviour.expected(request)`` is what a spec-conforming server answers, and its
``calls`` what it saw, so a property can check a wrapper end to end::

    @given(request=requests(), app=wsgi_apps())
    def test_my_middleware(request, app):
        response = call_wsgi(my_middleware(app), request, raise_app_exceptions=False)
        assert app.behaviour.expected(request).matches(response)

Everything shrinks towards ``GET /`` answered ``200 OK`` with an empty list body.
"""

from __future__ import annotations

from typing import Any, Final, get_args
from wsgiref.util import is_hop_by_hop

from crossgate._deprecated import renamed

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - hypothesis is a dev dependency
    raise ImportError(
        "crossgate.testing.strategies needs Hypothesis: pip install 'crossgate[testing]'"
    ) from exc

from crossgate.testing._messages import Request
from crossgate.testing._scripted import (
    ASGIBehaviour,
    ASGICall,
    ASGIFailure,
    Outcome,
    ScriptedASGIApp,
    ScriptedWSGIApp,
    ScriptError,
    WSGIBehaviour,
    WSGICall,
    WSGIFailure,
)

__all__ = [
    "ASGIBehaviour",
    "ASGICall",
    "Outcome",
    "ScriptError",
    "ScriptedASGIApp",
    "ScriptedWSGIApp",
    "WSGIBehaviour",
    "WSGICall",
    "asgi_apps",
    "asgi_behaviours",
    "bodies",
    "header_lists",
    "methods",
    "paths",
    "query_strings",
    "requests",
    "wsgi_apps",
    "wsgi_behaviours",
]

#: The methods wsgiref.validate knows; others are drawn too unless ``custom=False``.
STANDARD_METHODS: Final = ("GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
_TCHAR: Final = "!#$%&'*+-.^`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER_TCHAR: Final = "!#$%&'*+-.^`|~0123456789abcdefghijklmnopqrstuvwxyz"
_REQUEST_NAMES: Final = (
    "Accept",
    "accept",
    "X-Dup",
    "x-dup",
    "X-DUP",
    "User-Agent",
    "Content-Type",
    "Host",
    "X-Forwarded-For",
    "X_Underscore",
)
# RFC 3986 escapes worth a path of their own: an encoded slash (both cases), space,
# percent, an unreserved letter, UTF-8 é, a byte that is not UTF-8, an encoded "?"; and a
# lone "%", which the Request encodes as "%25".
_PATH_ESCAPES: Final = ("%2F", "%2f", "%20", "%25", "%41", "%C3%A9", "%FF", "%3F", "%", ";", ".")
# Raw query bytes: what a server passes on (no "#", no space or controls), obs-text too.
_QUERY_BYTES: Final = tuple(sorted((set(range(0x21, 0x7F)) - {ord("#")}) | set(range(0x80, 0x100))))


def _token(alphabet: str, max_size: int = 10) -> st.SearchStrategy[str]:
    # Framing is the request's and the server's business; hop-by-hop fields are forbidden
    # to WSGI apps (PEP 3333) and dropped by servers.
    return st.text(alphabet, min_size=1, max_size=max_size).filter(
        lambda name: name.lower() != "content-length" and not is_hop_by_hop(name)
    )


def methods(*, custom: bool = True) -> st.SearchStrategy[str]:
    """HTTP methods: the standard ones, and (``custom``) other tokens, lower-case letters
    included (RFC 9110 9.1: "The method token is case-sensitive")."""
    standard = st.sampled_from(STANDARD_METHODS)
    if not custom:
        return standard
    return st.one_of(standard, st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-get", min_size=1, max_size=8))


_METHODS: Final = methods()


def paths() -> st.SearchStrategy[str]:
    """Request paths as written in a URL: unicode segments mixed with percent-escapes
    (``%2F`` among them), empty segments too; no query."""
    text = st.text(
        st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/?#%"), max_size=6
    )
    segment = st.lists(st.one_of(text, st.sampled_from(_PATH_ESCAPES)), max_size=3).map("".join)
    return st.lists(segment, max_size=4).map(lambda segments: "/" + "/".join(segments))


def query_strings() -> st.SearchStrategy[bytes]:
    """Raw query strings: empty, ``key=value&...`` pairs, or any bytes a server passes on."""
    word = st.text("abcxyz019%+-._~", max_size=5)
    pairs = st.lists(st.tuples(word, word), min_size=1, max_size=4).map(
        lambda items: "&".join(f"{k}={v}" for k, v in items).encode("ascii")
    )
    raw = st.lists(st.sampled_from(_QUERY_BYTES), min_size=1, max_size=16).map(bytes)
    return st.one_of(st.just(b""), pairs, raw)


def _field_values() -> st.SearchStrategy[str]:
    # Latin-1 text without controls; servers strip the whitespace around a field value.
    return st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=12).map(
        str.strip
    )


def _cookies() -> st.SearchStrategy[tuple[str, str]]:
    crumb = st.tuples(st.text("abcdefXYZ_", min_size=1, max_size=4), st.text("0123456789abc"))
    return st.tuples(
        st.sampled_from(("Cookie", "cookie")),
        st.lists(crumb, min_size=1, max_size=3).map(
            lambda crumbs: "; ".join(f"{k}={v}" for k, v in crumbs)
        ),
    )


def header_lists() -> st.SearchStrategy[list[tuple[str, str]]]:
    """Request header lists: repeated names in mixed case, a name with ``_``, cookies
    (one or more Cookie lines); never Content-Length or Transfer-Encoding."""
    name = st.one_of(st.sampled_from(_REQUEST_NAMES), _token(_TCHAR))
    field = st.one_of(st.tuples(name, _field_values()), _cookies())
    return st.lists(field, max_size=6)


def bodies(max_chunk: int = 64, max_chunks: int = 5) -> st.SearchStrategy[tuple[bytes, ...]]:
    """A body as the chunks it arrives in, empty chunks included."""
    return st.lists(st.binary(max_size=max_chunk), max_size=max_chunks).map(tuple)


@st.composite
def requests(
    draw: st.DrawFn, *, methods: st.SearchStrategy[str] | None = None, truncated: bool = False
) -> Request:
    """A :class:`~crossgate.testing.Request`, with a ``root_path`` now and then, framed
    by Content-Length or ``Transfer-Encoding: chunked``; ``truncated`` ones too if asked."""
    method = draw(methods if methods is not None else _METHODS)
    segment = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=5)
    root = draw(st.one_of(st.just(""), st.lists(segment, min_size=1, max_size=2)))
    root_path = "/" + "/".join(root) if root else ""
    path = draw(paths())
    headers = draw(header_lists())
    body = draw(bodies())
    cut = draw(st.booleans()) if truncated else False
    if cut:
        # The client leaves before the end its framing announces: chunked, or short of a
        # Content-Length, or (with neither) before the end of the stream.
        size = sum(map(len, body))
        framing = draw(st.sampled_from(("content-length", "chunked", "none")))
        if framing == "content-length":
            headers.append(("Content-Length", str(size + draw(st.integers(1, 100)))))
        elif framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
    elif any(body) and draw(st.booleans()):
        headers.append(("Transfer-Encoding", "chunked"))
    return Request(
        method,
        root_path + path,
        query=draw(query_strings()),
        headers=headers,
        body=body,
        root_path=root_path,
        scheme=draw(st.sampled_from(("http", "https"))),
        http_version=draw(st.sampled_from(("1.1", "1.0", "2"))),
        client=draw(st.sampled_from((("127.0.0.1", 50000), ("::1", 1), None))),
        server=draw(st.sampled_from((("testserver", 80), ("example.com", 8443)))),
        truncated=cut,
    )


_WSGI_STATUSES: Final = (
    "200 OK",
    "201 Created",
    "404 Not Found",
    "302 Found",
    "500 Internal Server Error",
)
_ASGI_STATUSES: Final = (200, 201, 404, 302, 500)


@st.composite
def wsgi_behaviours(draw: st.DrawFn, *, failures: bool = True) -> WSGIBehaviour:
    """A :class:`WSGIBehaviour`; ``failures=False`` leaves exceptions out."""
    reason = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10)
    status = draw(
        st.one_of(
            st.sampled_from(_WSGI_STATUSES),
            st.builds(lambda code, text: f"{code} {text}", st.integers(200, 599), reason),
        )
    )
    headers = draw(st.lists(st.tuples(_token(_TCHAR), _field_values()), max_size=4))
    body = draw(bodies())
    failure: WSGIFailure | None = draw(st.one_of(st.none(), st.sampled_from(get_args(WSGIFailure))))
    return WSGIBehaviour(
        status=status,
        headers=(("Content-Type", "text/plain"), *headers),
        body=body,
        body_kind=draw(
            st.sampled_from(("list", "tuple", "generator", "closing", "write", "write+list"))
        ),
        content_length=draw(st.sampled_from(("none", "exact", "short"))),
        read=draw(st.sampled_from(("none", "read", "read_sized", "readline", "iterate"))),
        read_size=draw(st.integers(1, 16)),
        failure=failure if failures else None,
        fail_at=draw(st.integers(0, len(body))),
    )


def wsgi_apps(*, failures: bool = True) -> st.SearchStrategy[ScriptedWSGIApp]:
    """A fresh :class:`ScriptedWSGIApp` for a drawn :func:`wsgi_behaviours`."""
    return wsgi_behaviours(failures=failures).map(ScriptedWSGIApp)


@st.composite
def asgi_behaviours(
    draw: st.DrawFn, *, failures: bool = True, hop_by_hop: bool = False
) -> ASGIBehaviour:
    """An :class:`ASGIBehaviour`; ``failures=False`` leaves errors and early returns out,
    ``hop_by_hop=True`` lets a Connection header into the response."""
    status = draw(st.one_of(st.sampled_from(_ASGI_STATUSES), st.integers(200, 599)))
    value = _field_values().map(lambda text: text.encode("latin-1"))
    headers = draw(st.lists(st.tuples(_token(_LOWER_TCHAR).map(str.encode), value), max_size=4))
    if hop_by_hop and draw(st.booleans()):
        headers.append((b"connection", b"keep-alive"))
    body = draw(bodies())
    failure: ASGIFailure | None = draw(st.one_of(st.none(), st.sampled_from(get_args(ASGIFailure))))
    return ASGIBehaviour(
        status=status,
        headers=((b"content-type", b"text/plain"), *headers),
        body=body,
        omit_more_body=draw(st.booleans()),
        content_length=draw(st.sampled_from(("none", "exact"))),
        read=draw(st.sampled_from(("none", "all", "first"))),
        await_disconnect=draw(st.booleans()),
        failure=failure if failures else None,
        fail_at=draw(st.integers(0, max(len(body), 1) - 1)),
    )


def asgi_apps(
    *, failures: bool = True, hop_by_hop: bool = False
) -> st.SearchStrategy[ScriptedASGIApp]:
    """A fresh :class:`ScriptedASGIApp` for a drawn :func:`asgi_behaviours`."""
    return asgi_behaviours(failures=failures, hop_by_hop=hop_by_hop).map(ScriptedASGIApp)


#: Names before the WSGI/ASGI capitalisation of 0.1, kept for one release.
_RENAMED: Final = {
    "AsgiBehaviour": "ASGIBehaviour",
    "AsgiCall": "ASGICall",
    "ScriptedAsgiApp": "ScriptedASGIApp",
    "ScriptedWsgiApp": "ScriptedWSGIApp",
    "WsgiBehaviour": "WSGIBehaviour",
    "WsgiCall": "WSGICall",
}


def __getattr__(name: str) -> Any:
    return renamed(__name__, _RENAMED, globals())(name)
