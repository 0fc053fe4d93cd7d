"""Table tests for the sans-IO scope <-> environ translation and the response checks."""

from __future__ import annotations

import io
import wsgiref.validate
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crossgate._errors import InvalidHeader, InvalidResponse, InvalidStatus
from crossgate._types import Environ, StartResponse
from crossgate.adapters import environ as environ_module
from crossgate.adapters.environ import (
    ENVIRON_SCOPE_KEY,
    build_environ,
    build_scope,
    check_status,
    decode_response_headers,
    encode_response_headers,
    status_line,
)

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

MISSING: Any = object()
"""An override that removes the key instead of setting it."""


def make_scope(**overrides: Any) -> dict[str, Any]:
    """A complete HTTP scope as uvicorn would send it, with ``overrides`` applied."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    for key, value in overrides.items():
        if value is MISSING:
            scope.pop(key, None)
        else:
            scope[key] = value
    return scope


def complete_environ(environ: Environ) -> Environ:
    """``environ`` plus the wsgi.* keys the adapter (not build_environ) is responsible for."""
    environ.update(
        {
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
    )
    return environ


def make_environ(**overrides: Any) -> Environ:
    """A minimal PEP 3333 environ as gunicorn would build it, with ``overrides`` applied."""
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
    }
    for key, value in overrides.items():
        if value is MISSING:
            environ.pop(key, None)
        else:
            environ[key] = value
    return complete_environ(environ)


def assert_native(environ: Environ) -> None:
    """PEP 3333: "It is a violation of this specification for *any* CGI variable's value to
    be of any type other than str", and strings hold only code points up to U+00FF."""
    for key, value in environ.items():
        if key == "wsgi.version":
            assert value == (1, 0)
            continue
        assert type(value) is str, (key, value)
        assert all(ord(char) <= 0xFF for char in value), (key, value)


def run_validator(environ: Environ) -> None:
    """Hand ``environ`` to an app wrapped in wsgiref.validate, which asserts PEP 3333."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return lambda data: None

    result = wsgiref.validate.validator(app)(environ, start_response)
    try:
        assert list(result) == [b"ok"]
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


# --------------------------------------------------------------------------------------------
# build_environ: SCRIPT_NAME, PATH_INFO
# --------------------------------------------------------------------------------------------

PATH_CASES = [
    # (id, root_path, path, raw_path, SCRIPT_NAME, PATH_INFO)
    ("no-root", "", "/a/b", b"/a/b", "", "/a/b"),
    ("root-exact-path-is-empty-info", "/app", "/app", b"/app", "/app", ""),
    ("root-with-trailing-slash-request", "/app", "/app/", b"/app/", "/app", "/"),
    ("root-child", "/app", "/app/x/y", b"/app/x/y", "/app", "/x/y"),
    (
        "root-is-not-a-string-prefix",
        "/app",
        "/application",
        b"/application",
        "/app",
        "/application",
    ),
    ("root-path-trailing-slash-removed", "/app/", "/app/x", b"/app/x", "/app", "/x"),
    ("root-path-slash-only", "/", "/x", b"/x", "", "/x"),
    ("root-nested", "/a/b", "/a/b/c", b"/a/b/c", "/a/b", "/c"),
    ("path-relative-to-root-left-whole", "/app", "/x", b"/x", "/app", "/x"),
    ("path-relative-raw-full", "/app", "/x", b"/app/x", "/app", "/x"),
    ("raw-path-absent", "", "/a/b", None, "", "/a/b"),
    ("raw-path-key-missing", "", "/a/b", MISSING, "", "/a/b"),
    # Decoded as gunicorn, waitress and uWSGI decode it (RAW_URI keeps "%2F").
    ("encoded-slash-decoded", "", "/a/b", b"/a%2Fb", "", "/a/b"),
    ("encoded-slash-lower-case-decoded", "", "/a/b", b"/a%2fb", "", "/a/b"),
    ("encoded-slash-under-root", "/app", "/app/a/b", b"/app/a%2Fb", "/app", "/a/b"),
    ("encoded-slash-in-root-falls-back-to-path", "/a/b", "/a/b/c", b"/a%2Fb/c", "/a/b", "/c"),
    ("raw-not-under-root-falls-back-to-path", "/app", "/a/b", b"/a%2Fb", "/app", "/a/b"),
    ("stale-raw-path-ignored", "", "/new", b"/old%2Fx", "", "/new"),
    ("raw-path-with-query-cut", "", "/a", b"/a?x=1", "", "/a"),
    ("percent-space-decoded", "", "/a b", b"/a%20b", "", "/a b"),
    ("literal-percent-2F-from-%252F", "", "/a%2Fb", b"/a%252Fb", "", "/a%2Fb"),
    ("bad-escape-left-alone", "", "/a%zz", b"/a%zz", "", "/a%zz"),
    ("unicode-path", "", "/caf\u00e9", b"/caf%C3%A9", "", "/caf\xc3\xa9"),
    ("unicode-path-no-raw", "", "/caf\u00e9", None, "", "/caf\xc3\xa9"),
    ("unicode-raw-unencoded", "", "/caf\u00e9", b"/caf\xc3\xa9", "", "/caf\xc3\xa9"),
    ("unicode-root", "/d\u00e9j\u00e0", "/d\u00e9j\u00e0/x", None, "/d\xc3\xa9j\xc3\xa0", "/x"),
    ("astral-plane", "", "/\U0001f600", b"/%F0%9F%98%80", "", "/\xf0\x9f\x98\x80"),
    ("invalid-utf8-raw-bytes-kept", "", "/\ufffd", b"/%FF", "", "/\xff"),
    ("surrogate-escaped-path", "", "/\udcff", None, "", "/\xff"),
    ("lone-surrogate-path-carried", "", "/\ud800", None, "", "/\xed\xa0\x80"),
    ("empty-path", "", "", None, "", ""),
    ("bytearray-raw-path", "", "/a/b", bytearray(b"/a%2Fb"), "", "/a/b"),
]


@pytest.mark.parametrize(
    ("root_path", "path", "raw_path", "script_name", "path_info"),
    [pytest.param(*case[1:], id=case[0]) for case in PATH_CASES],
)
def test_build_environ_script_name_and_path_info(
    root_path: str, path: str, raw_path: bytes | None, script_name: str, path_info: str
) -> None:
    """SCRIPT_NAME is root_path; PATH_INFO is the rest of the path, encoded slashes kept."""
    environ = build_environ(make_scope(root_path=root_path, path=path, raw_path=raw_path))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)
    assert not environ["SCRIPT_NAME"].endswith("/")


def test_build_environ_starts_from_extra_without_changing_it() -> None:
    """``extra`` (an adapter's wsgi.* keys) is copied in; the scope's variables win."""
    extra = {"wsgi.multithread": True, "PATH_INFO": "/stale"}
    environ = build_environ(make_scope(path="/x", raw_path=b"/x"), extra)
    assert environ["wsgi.multithread"] is True
    assert environ["PATH_INFO"] == "/x"
    assert extra == {"wsgi.multithread": True, "PATH_INFO": "/stale"}
    assert environ is not extra


def test_build_environ_without_root_path_key() -> None:
    """A scope with no root_path key is mounted at the server root."""
    environ = build_environ(make_scope(root_path=MISSING, path="/x", raw_path=b"/x"))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("", "/x")


# --------------------------------------------------------------------------------------------
# build_environ: QUERY_STRING, RAW_URI, REQUEST_URI
# --------------------------------------------------------------------------------------------

QUERY_CASES = [
    # (id, path, raw_path, query_string, QUERY_STRING, RAW_URI)
    ("no-query", "/a", b"/a", b"", "", "/a"),
    ("query", "/a", b"/a", b"x=1&y=2", "x=1&y=2", "/a?x=1&y=2"),
    ("query-key-missing", "/a", b"/a", MISSING, "", "/a"),
    ("non-ascii-query-bytes", "/a", b"/a", b"q=\xff\xe9", "q=\xff\xe9", "/a?q=\xff\xe9"),
    ("percent-encoded-query-untouched", "/a", b"/a", b"q=%20%2F", "q=%20%2F", "/a?q=%20%2F"),
    ("raw-target-kept-as-sent", "/a b", b"/a%20b", b"", "", "/a%20b"),
    ("no-raw-path-target-quoted", "/caf\u00e9 x", None, b"k=v", "k=v", "/caf%C3%A9%20x?k=v"),
    ("no-raw-path-reserved-kept", "/a:b@c;d=e", None, b"", "", "/a:b@c;d=e"),
    ("no-raw-path-question-mark-quoted", "/a?b", None, b"", "", "/a%3Fb"),
    ("stale-raw-path-target-quoted", "/new", b"/old", b"", "", "/new"),
    ("encoded-slash-target", "/a/b", b"/a%2Fb", b"", "", "/a%2Fb"),
    ("raw-with-query-cut-then-query-added", "/a", b"/a?old", b"new", "new", "/a?new"),
]


@pytest.mark.parametrize(
    ("path", "raw_path", "query_string", "query", "raw_uri"),
    [pytest.param(*case[1:], id=case[0]) for case in QUERY_CASES],
)
def test_build_environ_query_and_request_uri(
    path: str, raw_path: bytes | None, query_string: bytes, query: str, raw_uri: str
) -> None:
    """QUERY_STRING is the query bytes as latin-1; RAW_URI/REQUEST_URI the request target."""
    environ = build_environ(make_scope(path=path, raw_path=raw_path, query_string=query_string))
    assert environ["QUERY_STRING"] == query
    assert environ["RAW_URI"] == raw_uri
    assert environ["REQUEST_URI"] == raw_uri


# --------------------------------------------------------------------------------------------
# build_environ: headers
# --------------------------------------------------------------------------------------------

HEADER_CASES: list[tuple[str, list[Any], dict[str, str], set[str]]] = [
    # (id, scope headers, expected environ items, environ keys that must be absent)
    ("no-headers", [], {}, {"CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_HOST"}),
    (
        "content-type-and-length-unprefixed",
        [(b"content-type", b"application/json"), (b"content-length", b"12")],
        {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "12"},
        {"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"},
    ),
    (
        "plain-header-prefixed",
        [(b"user-agent", b"curl/8"), (b"x-request-id", b"abc")],
        {"HTTP_USER_AGENT": "curl/8", "HTTP_X_REQUEST_ID": "abc"},
        set(),
    ),
    (
        "duplicates-joined-with-comma",
        [(b"accept", b"text/html"), (b"x-other", b"1"), (b"accept", b"application/json")],
        {"HTTP_ACCEPT": "text/html,application/json", "HTTP_X_OTHER": "1"},
        set(),
    ),
    (
        "three-duplicates-in-order",
        [(b"x-a", b"1"), (b"x-a", b"2"), (b"x-a", b"3")],
        {"HTTP_X_A": "1,2,3"},
        set(),
    ),
    (
        "one-char-duplicates-joined",
        [(b"x-a", b"a"), (b"x-a", b"a")],
        {"HTTP_X_A": "a,a"},
        set(),
    ),
    (
        "cookie-joined-with-semicolon-space",
        [(b"cookie", b"a=1"), (b"cookie", b"b=2; c=3")],
        {"HTTP_COOKIE": "a=1; b=2; c=3"},
        set(),
    ),
    (
        "underscore-header-dropped",
        [(b"x-forwarded-for", b"10.0.0.1"), (b"x_forwarded_for", b"6.6.6.6")],
        {"HTTP_X_FORWARDED_FOR": "10.0.0.1"},
        set(),
    ),
    (
        "underscore-header-alone-dropped",
        [(b"x_user", b"admin")],
        {},
        {"HTTP_X_USER"},
    ),
    (
        "underscore-content-type-dropped",
        [(b"content_type", b"text/evil")],
        {},
        {"CONTENT_TYPE", "HTTP_CONTENT_TYPE"},
    ),
    (
        "upper-case-names-lowered",
        [(b"X-Custom-Thing", b"v"), (b"Content-Type", b"text/plain")],
        {"HTTP_X_CUSTOM_THING": "v", "CONTENT_TYPE": "text/plain"},
        set(),
    ),
    (
        "mixed-case-duplicates-joined",
        [(b"Accept", b"a"), (b"accept", b"b")],
        {"HTTP_ACCEPT": "a,b"},
        set(),
    ),
    (
        "latin-1-value-bytes-kept",
        [(b"x-name", b"caf\xc3\xa9 \xff")],
        {"HTTP_X_NAME": "caf\xc3\xa9 \xff"},
        set(),
    ),
    ("empty-value-kept", [(b"x-empty", b"")], {"HTTP_X_EMPTY": ""}, set()),
    (
        "pseudo-header-dropped",
        [(b":authority", b"evil.example"), (b"host", b"good.example")],
        {"HTTP_HOST": "good.example"},
        {"HTTP_:AUTHORITY"},
    ),
    ("non-token-name-dropped", [(b"x y", b"1")], {}, {"HTTP_X Y"}),
    (
        "bytearray-name-and-value",
        [(bytearray(b"x-b"), bytearray(b"v"))],
        {"HTTP_X_B": "v"},
        set(),
    ),
    ("list-pairs", [[b"x-l", b"v"]], {"HTTP_X_L": "v"}, set()),
    ("host-header", [(b"host", b"example.com")], {"HTTP_HOST": "example.com"}, set()),
]


@pytest.mark.parametrize(
    ("headers", "expected", "absent"),
    [pytest.param(*case[1:], id=case[0]) for case in HEADER_CASES],
)
def test_build_environ_headers(
    headers: list[Any], expected: dict[str, str], absent: set[str]
) -> None:
    """Request headers become CONTENT_* and HTTP_* variables."""
    # Twice: the second call goes through the memoised header-name translation.
    for _ in range(2):
        environ = build_environ(make_scope(headers=headers))
        assert {key: environ[key] for key in expected if key in environ} == expected
        assert not absent & environ.keys()
        header_keys = {key for key in environ if key.startswith(("HTTP_", "CONTENT_"))}
        assert header_keys == expected.keys()


@pytest.mark.timeout(10)
def test_build_environ_is_linear_in_repeated_headers() -> None:
    """100,000 copies of one header and of one cookie (a 2 MB request uvicorn accepts)
    are joined once: joined as they came, they cost n^2 bytes of copying, over 10 s in
    build_environ alone before the fix, while the loop waited. Linear, this takes well
    under a second; the timeout is a complexity check with a 50x margin, and the cost per
    size is measured in benchmarks/bench_translation.py."""
    count = 100_000
    headers = [(b"x-flood", b"0123456789abcdefghij")] * count
    headers += [(b"cookie", b"a=1")] * count
    environ = build_environ(make_scope(headers=headers))
    assert environ["HTTP_X_FLOOD"] == ",".join(["0123456789abcdefghij"] * count)
    assert environ["HTTP_COOKIE"] == "; ".join(["a=1"] * count)


def test_repeated_headers_are_joined_in_order_between_others() -> None:
    headers = [(b"x-a", b"1"), (b"x-b", b"b"), (b"x-a", b"2"), (b"cookie", b"c=1")]
    headers += [(b"x-a", b"3"), (b"cookie", b"d=2"), (b"x-c", b"c")]
    environ = build_environ(make_scope(headers=headers))
    assert environ["HTTP_X_A"] == "1,2,3"
    assert environ["HTTP_COOKIE"] == "c=1; d=2"
    assert (environ["HTTP_X_B"], environ["HTTP_X_C"]) == ("b", "c")


def test_build_environ_headers_key_missing() -> None:
    """A scope without a headers key yields no header variables."""
    environ = build_environ(make_scope(headers=MISSING))
    assert not [key for key in environ if key.startswith(("HTTP_", "CONTENT_"))]


# --------------------------------------------------------------------------------------------
# build_environ: SERVER_NAME, SERVER_PORT, REMOTE_ADDR, REMOTE_PORT
# --------------------------------------------------------------------------------------------

SERVER_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, scope overrides, SERVER_NAME, SERVER_PORT)
    ("server-tuple", {"server": ("10.0.0.1", 8000)}, "10.0.0.1", "8000"),
    ("server-list", {"server": ["10.0.0.1", 8080]}, "10.0.0.1", "8080"),
    ("server-port-none-http", {"server": ("10.0.0.1", None)}, "10.0.0.1", "80"),
    (
        "server-port-none-https",
        {"server": ("10.0.0.1", None), "scheme": "https"},
        "10.0.0.1",
        "443",
    ),
    ("unix-socket", {"server": ("/run/app.sock", None)}, "/run/app.sock", "80"),
    (
        "unix-socket-non-ascii-path",
        {"server": ("/run/caf\u00e9.sock", None)},
        "/run/caf\xc3\xa9.sock",
        "80",
    ),
    (
        "server-wins-over-host",
        {"server": ("10.0.0.1", 8000), "headers": [(b"host", b"example.com:9")]},
        "10.0.0.1",
        "8000",
    ),
    (
        "server-none-host-with-port",
        {"server": None, "headers": [(b"host", b"example.com:8080")]},
        "example.com",
        "8080",
    ),
    (
        "server-missing-host-without-port",
        {"server": MISSING, "headers": [(b"host", b"example.com")]},
        "example.com",
        "80",
    ),
    (
        "server-none-host-https-default-port",
        {"server": None, "scheme": "https", "headers": [(b"host", b"example.com")]},
        "example.com",
        "443",
    ),
    (
        "server-none-host-ipv6-with-port",
        {"server": None, "headers": [(b"host", b"[::1]:8443")]},
        "[::1]",
        "8443",
    ),
    (
        "server-none-host-ipv6-without-port",
        {"server": None, "headers": [(b"host", b"[2001:db8::1]")]},
        "[2001:db8::1]",
        "80",
    ),
    (
        "server-none-host-ipv6-unclosed",
        {"server": None, "headers": [(b"host", b"[::1")]},
        "[::1",
        "80",
    ),
    (
        "server-none-host-bad-port",
        {"server": None, "headers": [(b"host", b"example.com:abc")]},
        "example.com",
        "80",
    ),
    (
        "server-none-host-empty-name",
        {"server": None, "headers": [(b"host", b":8080")]},
        "localhost",
        "8080",
    ),
    ("server-none-no-host", {"server": None}, "localhost", "80"),
    ("server-none-no-host-wss", {"server": None, "scheme": "wss"}, "localhost", "443"),
    ("server-empty-host", {"server": ("", 8000)}, "localhost", "80"),
]


@pytest.mark.parametrize(
    ("overrides", "server_name", "server_port"),
    [pytest.param(*case[1:], id=case[0]) for case in SERVER_CASES],
)
def test_build_environ_server(
    overrides: dict[str, Any], server_name: str, server_port: str
) -> None:
    """SERVER_NAME/SERVER_PORT come from server, else the Host header, else a default."""
    environ = build_environ(make_scope(**overrides))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == (server_name, server_port)


CLIENT_CASES: list[tuple[str, Any, dict[str, str]]] = [
    # (id, scope client, expected REMOTE_* items)
    ("client-tuple", ("1.2.3.4", 5678), {"REMOTE_ADDR": "1.2.3.4", "REMOTE_PORT": "5678"}),
    ("client-list", ["::1", 1], {"REMOTE_ADDR": "::1", "REMOTE_PORT": "1"}),
    ("client-port-none", ("1.2.3.4", None), {"REMOTE_ADDR": "1.2.3.4"}),
    ("client-none", None, {}),
    ("client-missing", MISSING, {}),
]


@pytest.mark.parametrize(
    ("client", "expected"), [pytest.param(*case[1:], id=case[0]) for case in CLIENT_CASES]
)
def test_build_environ_client(client: Any, expected: dict[str, str]) -> None:
    """REMOTE_ADDR/REMOTE_PORT come from client and are left out when unknown."""
    environ = build_environ(make_scope(client=client))
    assert {key: value for key, value in environ.items() if key.startswith("REMOTE_")} == expected


# --------------------------------------------------------------------------------------------
# build_environ: protocol, method, scheme, and the environ as a whole
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_version", "protocol"),
    [
        pytest.param("1.0", "HTTP/1.0", id="http-1.0"),
        pytest.param("1.1", "HTTP/1.1", id="http-1.1"),
        pytest.param("2", "HTTP/2", id="http-2"),
        pytest.param("3", "HTTP/3", id="http-3-passed-through"),
        pytest.param(MISSING, "HTTP/1.1", id="missing-defaults-to-1.1"),
    ],
)
def test_build_environ_server_protocol(http_version: str, protocol: str) -> None:
    """SERVER_PROTOCOL is "HTTP/" + http_version."""
    assert build_environ(make_scope(http_version=http_version))["SERVER_PROTOCOL"] == protocol


@pytest.mark.parametrize(
    ("scheme", "url_scheme"),
    [
        pytest.param("http", "http", id="http"),
        pytest.param("https", "https", id="https"),
        pytest.param(MISSING, "http", id="missing-defaults-to-http"),
        pytest.param("", "http", id="empty-defaults-to-http"),
    ],
)
def test_build_environ_url_scheme(scheme: str, url_scheme: str) -> None:
    """wsgi.url_scheme is the scope's scheme, "http" by default."""
    assert build_environ(make_scope(scheme=scheme))["wsgi.url_scheme"] == url_scheme


def test_build_environ_fixed_keys() -> None:
    """REQUEST_METHOD and wsgi.version are set; the adapter's own keys are not."""
    environ = build_environ(make_scope(method="PATCH"))
    assert environ["REQUEST_METHOD"] == "PATCH"
    assert environ["wsgi.version"] == (1, 0)
    for key in ("wsgi.input", "wsgi.errors", "wsgi.multithread", "asgi.scope", "wsgi.run_once"):
        assert key not in environ


def test_build_environ_does_not_mutate_scope() -> None:
    """The scope is read, never written."""
    scope = make_scope(
        root_path="/app",
        path="/app/a/b",
        raw_path=b"/app/a%2Fb?x",
        headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")],
    )
    snapshot = repr(scope)
    build_environ(scope)
    assert repr(scope) == snapshot


def test_build_environ_is_native_and_passes_wsgiref_validate() -> None:
    """Every CGI value is a latin-1 str, and wsgiref.validate accepts the environ."""
    scope = make_scope(
        method="POST",
        root_path="/d\u00e9j\u00e0",
        path="/d\u00e9j\u00e0/caf\u00e9",
        raw_path=b"/d%C3%A9j%C3%A0/caf%C3%A9",
        query_string=b"q=\xff",
        headers=[
            (b"host", b"example.com"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"0"),
            (b"x-bin", b"\x80\xff"),
        ],
    )
    environ = build_environ(scope)
    assert_native(environ)
    run_validator(complete_environ(environ))


# --------------------------------------------------------------------------------------------
# build_scope
# --------------------------------------------------------------------------------------------

SCOPE_PATH_CASES: list[tuple[str, dict[str, Any], str, str, bytes]] = [
    # (id, environ overrides, root_path, path, raw_path)
    (
        "raw-uri-used",
        {"SCRIPT_NAME": "/app", "PATH_INFO": "/x", "RAW_URI": "/app/x?a=1"},
        "/app",
        "/app/x",
        b"/app/x",
    ),
    (
        "request-uri-used",
        {"SCRIPT_NAME": "", "PATH_INFO": "/a b", "REQUEST_URI": "/a%20b"},
        "",
        "/a b",
        b"/a%20b",
    ),
    (
        "raw-uri-preferred-over-request-uri",
        {"PATH_INFO": "/a b", "RAW_URI": "/a%20b", "REQUEST_URI": "/a+b"},
        "",
        "/a b",
        b"/a%20b",
    ),
    (
        "no-raw-uri-quoted",
        {"SCRIPT_NAME": "/app", "PATH_INFO": "/caf\xc3\xa9 x"},
        "/app",
        "/app/caf\u00e9 x",
        b"/app/caf%C3%A9%20x",
    ),
    ("no-raw-uri-reserved-kept", {"PATH_INFO": "/a:b@c"}, "", "/a:b@c", b"/a:b@c"),
    (
        "absolute-form-uri",
        {"PATH_INFO": "/p", "RAW_URI": "http://example.com/p?q"},
        "",
        "/p",
        b"/p",
    ),
    (
        "absolute-form-uri-no-path",
        {"PATH_INFO": "/", "RAW_URI": "http://example.com"},
        "",
        "/",
        b"/",
    ),
    ("asterisk-form-uri", {"PATH_INFO": "", "RAW_URI": "*"}, "", "/", b"/"),
    ("stale-raw-uri-ignored", {"PATH_INFO": "/new", "RAW_URI": "/old"}, "", "/new", b"/new"),
    (
        "gunicorn-decoded-slash",
        {"PATH_INFO": "/a/b", "RAW_URI": "/a%2Fb"},
        "",
        "/a/b",
        b"/a%2Fb",
    ),
    (
        "encoded-slash-kept-in-path-info",
        {"PATH_INFO": "/a%2Fb", "RAW_URI": "/a%2Fb"},
        "",
        "/a/b",
        b"/a%2Fb",
    ),
    (
        "literal-percent-2F",
        {"PATH_INFO": "/a%2Fb", "RAW_URI": "/a%252Fb"},
        "",
        "/a%2Fb",
        b"/a%252Fb",
    ),
    ("literal-percent-2F-no-raw-uri", {"PATH_INFO": "/a%2Fb"}, "", "/a%2Fb", b"/a%252Fb"),
    # As ASGI servers decode it (U+FFFD); raw_path keeps the byte.
    ("non-utf8-path-replaced", {"PATH_INFO": "/\xff"}, "", "/\ufffd", b"/%FF"),
    ("non-native-path-utf8-fallback", {"PATH_INFO": "/\u65e5"}, "", "/\u65e5", b"/%E6%97%A5"),
    ("empty-is-slash", {"SCRIPT_NAME": "", "PATH_INFO": ""}, "", "/", b"/"),
    ("path-info-missing", {"PATH_INFO": MISSING}, "", "/", b"/"),
    ("script-name-only", {"SCRIPT_NAME": "/app", "PATH_INFO": ""}, "/app", "/app", b"/app"),
    (
        "unicode-script-name",
        {"SCRIPT_NAME": "/d\xc3\xa9j\xc3\xa0", "PATH_INFO": "/x"},
        "/d\u00e9j\u00e0",
        "/d\u00e9j\u00e0/x",
        b"/d%C3%A9j%C3%A0/x",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "root_path", "path", "raw_path"),
    [pytest.param(*case[1:], id=case[0]) for case in SCOPE_PATH_CASES],
)
def test_build_scope_paths(
    overrides: dict[str, Any], root_path: str, path: str, raw_path: bytes
) -> None:
    """path includes root_path, decoded as UTF-8; raw_path comes from RAW_URI when it fits."""
    scope = build_scope(make_environ(**overrides))
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (root_path, path, raw_path)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("a=1&b=2", b"a=1&b=2", id="ascii"),
        pytest.param("q=\xff\xe9", b"q=\xff\xe9", id="latin-1-bytes"),
        pytest.param("q=\u65e5", "q=\u65e5".encode(), id="non-native-utf8-fallback"),
        pytest.param("", b"", id="empty"),
        pytest.param(MISSING, b"", id="missing"),
    ],
)
def test_build_scope_query_string(query: str, expected: bytes) -> None:
    """query_string is QUERY_STRING's latin-1 bytes, UTF-8 if it is not native."""
    assert build_scope(make_environ(QUERY_STRING=query))["query_string"] == expected


@pytest.mark.parametrize(
    ("protocol", "http_version"),
    [
        pytest.param("HTTP/1.0", "1.0", id="1.0"),
        pytest.param("HTTP/1.1", "1.1", id="1.1"),
        pytest.param("HTTP/2", "2", id="2"),
        pytest.param("HTTP/2.0", "2", id="2.0"),
        pytest.param("http/1.0", "1.0", id="lower-case"),
        pytest.param("HTTP/9", "1.1", id="unknown-defaults-to-1.1"),
        pytest.param(MISSING, "1.1", id="missing-defaults-to-1.1"),
    ],
)
def test_build_scope_http_version(protocol: str, http_version: str) -> None:
    """http_version is one of "1.0", "1.1", "2", from SERVER_PROTOCOL."""
    assert build_scope(make_environ(SERVER_PROTOCOL=protocol))["http_version"] == http_version


def test_build_scope_fixed_keys() -> None:
    """type, asgi versions, method (upper-cased), scheme, extensions and the environ."""
    environ = make_environ(REQUEST_METHOD="post", **{"wsgi.url_scheme": "https"})
    scope = build_scope(environ)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["method"] == "POST"
    assert scope["scheme"] == "https"
    assert scope["extensions"] == {}
    assert "state" not in scope
    assert dict(scope)[ENVIRON_SCOPE_KEY] is environ
    assert ENVIRON_SCOPE_KEY == "wsgi.environ"


def test_build_scope_scheme_default() -> None:
    """scheme defaults to "http" when wsgi.url_scheme is missing."""
    assert build_scope(make_environ(**{"wsgi.url_scheme": MISSING}))["scheme"] == "http"


def test_build_scope_extensions_passed_through() -> None:
    """The extensions dict given is the one in the scope."""
    extensions: dict[str, dict[object, object]] = {"http.response.trailers": {}}
    assert build_scope(make_environ(), extensions=extensions)["extensions"] is extensions


def test_build_scope_state_is_a_shallow_copy() -> None:
    """Keys added to the scope's state do not reach the lifespan state; values are shared."""
    shared: list[int] = []
    state: dict[str, Any] = {"pool": shared}
    scope = build_scope(make_environ(), state=state)
    scope_state = scope["state"]
    assert scope_state == state
    assert scope_state is not state
    scope_state["request_only"] = 1
    del scope_state["pool"]
    assert state == {"pool": shared}
    assert build_scope(make_environ(), state=state)["state"]["pool"] is shared


SCOPE_HEADER_CASES: list[tuple[str, dict[str, Any], list[tuple[bytes, bytes]]]] = [
    # (id, environ overrides, scope headers)
    ("none", {}, []),
    (
        "http-keys",
        {"HTTP_HOST": "example.com", "HTTP_X_REQUEST_ID": "abc"},
        [(b"host", b"example.com"), (b"x-request-id", b"abc")],
    ),
    (
        "content-type-and-length",
        {"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "3"},
        [(b"content-type", b"text/plain"), (b"content-length", b"3")],
    ),
    ("empty-content-type-and-length-skipped", {"CONTENT_TYPE": "", "CONTENT_LENGTH": ""}, []),
    (
        "http-content-duplicates-skipped",
        {
            "CONTENT_TYPE": "text/plain",
            "HTTP_CONTENT_TYPE": "text/plain",
            "HTTP_CONTENT_LENGTH": "3",
        },
        [(b"content-type", b"text/plain")],
    ),
    ("latin-1-value", {"HTTP_X_NAME": "caf\xc3\xa9"}, [(b"x-name", b"caf\xc3\xa9")]),
    ("non-native-value-utf8", {"HTTP_X_NAME": "\u65e5"}, [(b"x-name", "\u65e5".encode())]),
    ("empty-value-kept", {"HTTP_X_EMPTY": ""}, [(b"x-empty", b"")]),
    ("non-str-value-skipped", {"HTTP_X_WEIRD": 5}, []),
    ("bare-http-prefix-skipped", {"HTTP_": "x"}, []),
    ("non-ascii-key-skipped", {"HTTP_X_\u00e9": "x"}, []),
    ("other-cgi-keys-skipped", {"REMOTE_USER": "bob", "HTTPS": "on", "PATH": "/bin"}, []),
]


@pytest.mark.parametrize(
    ("overrides", "headers"),
    [pytest.param(*case[1:], id=case[0]) for case in SCOPE_HEADER_CASES],
)
def test_build_scope_headers(overrides: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    """HTTP_* and CONTENT_* variables become lower-case byte header pairs."""
    for _ in range(2):  # the second pass uses the memoised key translation
        assert list(build_scope(make_environ(**overrides))["headers"]) == headers


CLIENT_SERVER_CASES: list[tuple[str, dict[str, Any], Any, Any]] = [
    # (id, environ overrides, client, server)
    ("both", {"REMOTE_ADDR": "1.2.3.4", "REMOTE_PORT": "5"}, ("1.2.3.4", 5), ("127.0.0.1", 8000)),
    ("remote-port-missing-is-0", {"REMOTE_ADDR": "1.2.3.4"}, ("1.2.3.4", 0), ("127.0.0.1", 8000)),
    (
        "remote-port-garbage-is-0",
        {"REMOTE_ADDR": "1.2.3.4", "REMOTE_PORT": "8_0"},
        ("1.2.3.4", 0),
        ("127.0.0.1", 8000),
    ),
    ("remote-addr-missing", {"REMOTE_PORT": "5"}, None, ("127.0.0.1", 8000)),
    ("remote-addr-empty", {"REMOTE_ADDR": ""}, None, ("127.0.0.1", 8000)),
    ("server-port-missing", {"SERVER_PORT": MISSING}, None, ("127.0.0.1", None)),
    ("server-port-garbage", {"SERVER_PORT": " 80"}, None, ("127.0.0.1", None)),
    ("server-name-missing", {"SERVER_NAME": MISSING}, None, None),
    ("unix-socket-name", {"SERVER_NAME": "/run/a.sock"}, None, ("/run/a.sock", 8000)),
]


@pytest.mark.parametrize(
    ("overrides", "client", "server"),
    [pytest.param(*case[1:], id=case[0]) for case in CLIENT_SERVER_CASES],
)
def test_build_scope_client_and_server(overrides: dict[str, Any], client: Any, server: Any) -> None:
    """client is (REMOTE_ADDR, port or 0); server is (SERVER_NAME, port or None)."""
    scope = build_scope(make_environ(**overrides))
    assert (scope["client"], scope["server"]) == (client, server)


# --------------------------------------------------------------------------------------------
# Round trip: ASGI scope -> environ -> ASGI scope
# --------------------------------------------------------------------------------------------

_SEGMENT_CHARS = st.sampled_from(
    "abcXYZ019-._~ !$&'()*+,;=:@?#%\"<>[]^`{}|\\\u00e9\u00ff\u0100\u65e5\U0001f600"
)
segment = st.text(_SEGMENT_CHARS, min_size=1, max_size=6).filter(lambda s: s not in {".", ".."})
_TCHAR_NO_UNDERSCORE = "!#$%&'*+-.^`|~0123456789abcdefghijklmnopqrstuvwxyz"
header_name = st.text(st.sampled_from(_TCHAR_NO_UNDERSCORE), min_size=1, max_size=8).filter(
    lambda s: s not in {"content-type", "content-length"}
)
header_value = st.binary(max_size=12).filter(lambda b: not any(c in b for c in b"\r\n\x00"))
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])


@st.composite
def scopes(draw: st.DrawFn) -> dict[str, Any]:
    """HTTP scopes whose root_path is a segment prefix of path, with or without raw_path."""
    root_segments = draw(st.lists(segment, max_size=2))
    tail_segments = draw(st.lists(segment, max_size=4))
    root_path = "".join("/" + s for s in root_segments)
    tail = "".join("/" + s for s in tail_segments)
    if draw(st.booleans()):
        tail += "/"
    path = root_path + tail or "/"
    raw_mode = draw(st.sampled_from(["none", "quoted", "encoded-slashes"]))
    if raw_mode == "none":
        raw_path = None
    elif raw_mode == "quoted":
        raw_path = quote(path, safe="/").encode("ascii")
    else:
        # A segment of path may hold "/" that raw_path carries as %2F: two segments in
        # path, one on the wire. "%" would make "%2F" ambiguous, so it is left out here.
        slashed = draw(st.lists(segment, min_size=2, max_size=3))
        assume("%" not in root_path + tail + "".join(slashed))
        extra = "/".join(slashed)
        path = root_path + tail.rstrip("/") + "/" + extra
        raw_path = (
            quote(root_path, safe="/")
            + quote(tail.rstrip("/"), safe="/")
            + "/"
            + quote(extra, safe="")
        ).encode("ascii")
    headers = draw(st.lists(st.tuples(header_name.map(str.encode), header_value), max_size=6))
    return make_scope(
        method=draw(methods),
        scheme=draw(st.sampled_from(["http", "https"])),
        http_version=draw(st.sampled_from(["1.0", "1.1", "2"])),
        root_path=root_path,
        path=path,
        raw_path=raw_path,
        query_string=draw(st.binary(max_size=16)),
        headers=headers,
    )


def joined_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Headers with duplicates joined the way an environ joins them."""
    joined: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in joined:
            joined[name] += (b"; " if name == b"cookie" else b",") + value
        else:
            joined[name] = value
    return joined


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(scopes())
def test_round_trip_scope_environ_scope(scope: dict[str, Any]) -> None:
    """build_scope(build_environ(scope)) answers with the same request."""
    environ = build_environ(scope)
    assert_native(environ)
    run_validator(complete_environ(dict(environ)))
    back = build_scope(complete_environ(environ))
    assert back["method"] == scope["method"]
    assert back["scheme"] == scope["scheme"]
    assert back["http_version"] == scope["http_version"]
    assert back["root_path"] == scope["root_path"]
    assert back["path"] == scope["path"]
    assert back["query_string"] == scope["query_string"]
    if scope["raw_path"] is not None:
        assert back["raw_path"] == scope["raw_path"]
    assert dict(back["headers"]) == joined_headers(scope["headers"])


@settings(max_examples=200, deadline=None)
@given(scopes())
def test_round_trip_environ_scope_environ(scope: dict[str, Any]) -> None:
    """build_environ(build_scope(environ)) gives back the same CGI variables."""
    environ = complete_environ(build_environ(scope))
    again = build_environ(build_scope(environ))
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "RAW_URI"):
        assert again[key] == environ[key], key
    assert {k: v for k, v in again.items() if k.startswith("HTTP_")} == {
        k: v for k, v in environ.items() if k.startswith("HTTP_")
    }


# --------------------------------------------------------------------------------------------
# check_status, status_line
# --------------------------------------------------------------------------------------------

VALID_STATUSES = [
    ("200 OK", 200),
    ("404 Not Found", 404),
    ("100 Continue", 100),
    ("599 ", 599),
    ("999 Whatever", 999),
    ("200 Froody", 200),
    ("200 tab\there", 200),
    ("200 OK ", 200),
    ("200  OK", 200),
    ("200 caf\xe9 \x80\xff", 200),
    ("418 I'm a teapot!", 418),
]


@pytest.mark.parametrize(
    ("status", "code"), [pytest.param(s, c, id=repr(s)) for s, c in VALID_STATUSES]
)
def test_check_status_valid(status: str, code: int) -> None:
    """Three digits, a space and a (possibly empty) reason phrase give the code."""
    for _ in range(2):  # the second call is answered from the memo
        assert check_status(status) == code


INVALID_STATUSES: list[object] = [
    200,
    b"200 OK",
    None,
    "",
    "200",
    "200OK",
    "2000 OK",
    "20 OK",
    "099 Too Low",
    "000 Zero",
    "abc OK",
    " 200 OK",
    "200\tOK",
    "200 OK\r\n",
    "200 OK\n",
    "200 OK\r\nSet-Cookie: x=1",
    "200 O\x00K",
    "200 \x01",
    "200 \x7f",
    "200 \u0100",
    "\uff12\uff10\uff10 OK",  # full-width digits
    "\u0662\u0660\u0660 OK",  # Arabic-Indic digits
]


@pytest.mark.parametrize("status", [pytest.param(s, id=repr(s)) for s in INVALID_STATUSES])
def test_check_status_invalid(status: Any) -> None:
    """Anything else raises InvalidStatus, a ValueError, naming the value."""
    with pytest.raises(InvalidStatus) as caught:
        check_status(status)
    assert repr(status) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, InvalidResponse)


STATUS_LINES: list[tuple[int, str]] = [
    (200, "200 OK"),
    (404, "404 Not Found"),
    (100, "100 Continue"),
    (HTTPStatus.NO_CONTENT, "204 No Content"),
    (599, "599 "),
    (999, "999 "),
    (299, "299 "),
]


@pytest.mark.parametrize(
    ("code", "line"), [pytest.param(c, s, id=str(int(c))) for c, s in STATUS_LINES]
)
def test_status_line(code: int, line: str) -> None:
    """Known codes get their HTTPStatus phrase, others an empty reason."""
    assert status_line(code) == line


@pytest.mark.parametrize(
    "code",
    [pytest.param(c, id=repr(c)) for c in [99, 0, -200, 1000, True, False, 200.0, "200", None]],
)
def test_status_line_invalid(code: Any) -> None:
    """Codes outside 100-999 and non-integers (bool too) raise InvalidStatus."""
    with pytest.raises(InvalidStatus, match="invalid HTTP status code"):
        status_line(code)


def test_status_line_round_trips_through_check_status() -> None:
    """Every line status_line makes is one check_status accepts, with the same code."""
    for code in range(100, 1000):
        assert check_status(status_line(code)) == code


# --------------------------------------------------------------------------------------------
# encode_response_headers (WSGI -> ASGI)
# --------------------------------------------------------------------------------------------

ENCODE_VALID: list[tuple[str, list[Any], list[tuple[bytes, bytes]]]] = [
    ("empty", [], []),
    (
        "names-lower-cased",
        [("Content-Type", "text/plain"), ("X-Request-ID", "abc")],
        [(b"content-type", b"text/plain"), (b"x-request-id", b"abc")],
    ),
    ("empty-value", [("X-Empty", "")], [(b"x-empty", b"")]),
    ("tab-in-value", [("X-Tab", "a\tb")], [(b"x-tab", b"a\tb")]),
    ("latin-1-value", [("X-Name", "caf\xe9 \xff")], [(b"x-name", b"caf\xe9 \xff")]),
    (
        "repeated-set-cookie-kept-in-order",
        [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
        [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
    ),
    (
        "hop-by-hop-passed-through",
        [("Connection", "close"), ("Keep-Alive", "timeout=5")],
        [(b"connection", b"close"), (b"keep-alive", b"timeout=5")],
    ),
    (
        "every-tchar",
        [("!#$%&'*+-.^_`|~09azAZ", "v")],
        [(b"!#$%&'*+-.^_`|~09azaz", b"v")],
    ),
    ("underscore-name-allowed", [("X_Thing", "1")], [(b"x_thing", b"1")]),
    # RFC 9110 5.5: "a field value does not include leading or trailing whitespace".
    # Django's cookies come as ' csrftoken=...' (SimpleCookie.output(header='')), which
    # h11 refuses as an illegal header value.
    (
        "leading-space-stripped",
        [("Set-Cookie", " csrftoken=abc; Path=/")],
        [(b"set-cookie", b"csrftoken=abc; Path=/")],
    ),
    ("trailing-space-stripped", [("X-A", "1  ")], [(b"x-a", b"1")]),
    ("surrounding-tabs-stripped", [("X-A", "\t 1 \t")], [(b"x-a", b"1")]),
    ("inner-whitespace-kept", [("X-A", " a \t b ")], [(b"x-a", b"a \t b")]),
    ("only-whitespace-is-empty", [("X-A", " \t ")], [(b"x-a", b"")]),
    ("latin-1-stripped", [("X-A", " caf\xe9 ")], [(b"x-a", b"caf\xe9")]),
    # gunicorn, waitress and every peer take 2-item lists as well as tuples.
    ("list-pair", [["X-A", "1"]], [(b"x-a", b"1")]),
    ("list-pair-twice-not-cached-as-list", [["X-A", "1"], ["X-A", "1"]], [(b"x-a", b"1")] * 2),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [pytest.param(*case[1:], id=case[0]) for case in ENCODE_VALID]
)
def test_encode_response_headers_valid(
    headers: list[tuple[str, str]], expected: list[tuple[bytes, bytes]]
) -> None:
    """Valid WSGI headers become lower-cased latin-1 byte pairs, order kept."""
    for _ in range(2):
        assert encode_response_headers(headers) == expected


def test_encode_response_headers_accepts_any_iterable() -> None:
    """A generator of tuples is accepted as well as a list."""
    assert encode_response_headers(h for h in [("A", "b")]) == [(b"a", b"b")]


def test_encode_response_headers_remembers_only_valid_pairs_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pairs seen before come back from a bounded cache; a lookalike of one is still checked."""
    monkeypatch.setattr(environ_module, "_ENCODED_PAIRS", {})
    monkeypatch.setattr(environ_module, "_CACHE_MAX", 4)
    assert encode_response_headers([("X-Seen", "v")]) == [(b"x-seen", b"v")]
    assert ("X-Seen", "v") in environ_module._ENCODED_PAIRS
    # bytes hash like the equal ASCII str: the cached pair must not answer for them.
    with pytest.raises(InvalidHeader, match="str"):
        encode_response_headers([(b"X-Seen", "v")])  # type: ignore[list-item]
    with pytest.raises(InvalidHeader, match="control character"):
        encode_response_headers([("X-Seen", "v\n")])
    pairs = [(f"X-{n}", str(n)) for n in range(10)]
    assert encode_response_headers(pairs) == [
        (f"x-{n}".encode(), str(n).encode()) for n in range(10)
    ]
    assert len(environ_module._ENCODED_PAIRS) <= 4
    long_value = "v" * 200  # values that vary (cookies, ETags) are not kept
    assert encode_response_headers([("X-Long", long_value)]) == [(b"x-long", long_value.encode())]
    assert ("X-Long", long_value) not in environ_module._ENCODED_PAIRS


ENCODE_INVALID: list[tuple[str, object, str]] = [
    # (id, item, what the message must mention)
    ("empty-name", ("", "v"), "''"),
    ("space-in-name", ("X Y", "v"), "'X Y'"),
    ("colon-in-name", ("X:Y", "v"), "'X:Y'"),
    ("trailing-colon", ("X-Y:", "v"), "'X-Y:'"),
    ("crlf-in-name", ("X\r\nY", "v"), "'X\\r\\nY'"),
    ("non-ascii-name", ("Caf\xe9", "v"), "'Caf\xe9'"),
    ("slash-in-name", ("X/Y", "v"), "'X/Y'"),
    ("cr-in-value", ("X", "a\rb"), "'a\\rb'"),
    ("lf-in-value", ("X", "a\nb"), "'a\\nb'"),
    ("crlf-injection", ("X", "a\r\nSet-Cookie: x=1"), "Set-Cookie"),
    ("nul-in-value", ("X", "a\x00b"), "'a\\x00b'"),
    ("other-control-in-value", ("X", "\x01"), "'\\x01'"),
    ("del-in-value", ("X", "\x7f"), "'\\x7f'"),
    ("non-latin-1-value", ("X", "\u20ac"), "latin-1"),
    ("bytes-name", (b"X", "v"), "str"),
    ("bytes-value", ("X", b"v"), "str"),
    ("none-value", ("X", None), "None"),
    ("int-value", ("X", 5), "int"),
    ("unhashable-value", ("X", ["v"]), "list"),
    ("three-tuple", ("X", "v", "w"), "3 items"),
    ("one-tuple", ("X",), "1 items"),
    ("three-list", ["X", "v", "w"], "3 items"),
    ("str-item", "Xv", "str"),
    ("bytes-item", b"Xv", "bytes"),
    ("set-item", {"X"}, "set"),
    ("dict-item", {"X": "v"}, "dict"),
    ("iterator-item", iter(("X", "v")), "iterator"),
    ("none-item", None, "None"),
    ("cr-after-stripping", ("X", " a\r "), "control character"),
    ("nul-at-the-end", ("X", "a\x00"), "control character"),
]


@pytest.mark.parametrize(
    ("item", "mention"), [pytest.param(*case[1:], id=case[0]) for case in ENCODE_INVALID]
)
def test_encode_response_headers_invalid(item: Any, mention: str) -> None:
    """Malformed or unsafe WSGI headers raise InvalidHeader with a message saying why."""
    with pytest.raises(InvalidHeader) as caught:
        encode_response_headers([("Content-Type", "text/plain"), item])
    assert mention in str(caught.value)
    assert isinstance(caught.value, ValueError)


# --------------------------------------------------------------------------------------------
# decode_response_headers (ASGI -> WSGI)
# --------------------------------------------------------------------------------------------

DECODE_VALID: list[tuple[str, list[Any], list[tuple[str, str]]]] = [
    ("empty", [], []),
    (
        "tuples-case-kept",
        [(b"Content-Type", b"text/plain"), (b"x-id", b"1")],
        [("Content-Type", "text/plain"), ("x-id", "1")],
    ),
    ("list-pairs", [[b"a", b"b"]], [("a", "b")]),
    ("bytearray", [(bytearray(b"a"), bytearray(b"b"))], [("a", "b")]),
    ("iterator-pair", [iter([b"a", b"b"])], [("a", "b")]),
    ("latin-1-value", [(b"x", b"caf\xe9 \xff")], [("x", "caf\xe9 \xff")]),
    ("tab-in-value", [(b"x", b"a\tb")], [("x", "a\tb")]),
    ("empty-value", [(b"x", b"")], [("x", "")]),
    # RFC 9110 5.5: "a field value does not include leading or trailing whitespace".
    ("surrounding-whitespace-stripped", [(b"x", b" \ta b\t ")], [("x", "a b")]),
    ("only-whitespace-is-empty", [(b"x", b"  ")], [("x", "")]),
    (
        "repeated-set-cookie",
        [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
        [("set-cookie", "a=1"), ("set-cookie", "b=2")],
    ),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [pytest.param(*case[1:], id=case[0]) for case in DECODE_VALID]
)
def test_decode_response_headers_valid(headers: list[Any], expected: list[tuple[str, str]]) -> None:
    """Valid ASGI headers become latin-1 str tuples with the name's case kept."""
    assert decode_response_headers(headers) == expected


DECODE_INVALID: list[tuple[str, object, str]] = [
    ("str-pair", ("x", "y"), "must be bytes"),
    ("str-value", (b"x", "y"), "must be bytes"),
    ("none-name", (None, b"y"), "must be bytes"),
    ("space-in-name", (b"a b", b"v"), "b'a b'"),
    ("empty-name", (b"", b"v"), "b''"),
    ("colon-in-name", (b"a:b", b"v"), "b'a:b'"),
    ("pseudo-header", (b":status", b"200"), "b':status'"),
    ("non-ascii-name", (b"caf\xe9", b"v"), "b'caf\\xe9'"),
    ("crlf-in-value", (b"x", b"a\r\nb"), "b'a\\r\\nb'"),
    ("lf-in-value", (b"x", b"a\nb"), "b'a\\nb'"),
    ("nul-in-value", (b"x", b"\x00"), "b'\\x00'"),
    ("del-in-value", (b"x", b"\x7f"), "b'\\x7f'"),
    ("bytes-item", b"ab", "pair"),
    ("three-items", (b"a", b"b", b"c"), "3 items"),
    ("one-item-list", [b"a"], "1 items"),
    ("not-iterable", 5, "pair"),
]


@pytest.mark.parametrize(
    ("item", "mention"), [pytest.param(*case[1:], id=case[0]) for case in DECODE_INVALID]
)
def test_decode_response_headers_invalid(item: Any, mention: str) -> None:
    """Malformed or unsafe ASGI headers raise InvalidHeader with a message saying why."""
    with pytest.raises(InvalidHeader) as caught:
        decode_response_headers([(b"content-type", b"text/plain"), item])
    assert mention in str(caught.value)


@given(
    st.lists(
        st.tuples(
            st.text(st.sampled_from(_TCHAR_NO_UNDERSCORE + "_ABCXYZ"), min_size=1, max_size=10),
            st.text(
                st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                max_size=12,
            ),
        ),
        max_size=6,
    )
)
def test_response_headers_round_trip(headers: list[tuple[str, str]]) -> None:
    """decode(encode(headers)) gives the headers back with lower-cased names and the
    surrounding whitespace of each value stripped."""
    back = decode_response_headers(encode_response_headers(headers))
    assert back == [(name.lower(), value.strip(" \t")) for name, value in headers]


def _iterate(items: Iterable[Any]) -> Iterator[Any]:
    yield from items


def test_decode_response_headers_accepts_any_iterable() -> None:
    """The headers themselves may be any iterable, a generator included."""
    assert decode_response_headers(_iterate([(b"a", b"b")])) == [("a", "b")]


# ------------------------------------------------------------------------------ public API


@pytest.mark.parametrize(
    "name", [name for name in environ_module.__all__ if callable(getattr(environ_module, name))]
)
def test_each_public_function_documents_its_contract(name: str) -> None:
    """The module is public API (documented as h11 documents its events): each function
    in ``__all__`` states its arguments, its result and, where it checks, what it raises."""
    doc = getattr(environ_module, name).__doc__ or ""
    assert "Args:" in doc
    assert "Returns:" in doc
    if name in (
        "check_status",
        "status_line",
        "encode_response_headers",
        "decode_response_headers",
    ):
        assert "Raises:" in doc
