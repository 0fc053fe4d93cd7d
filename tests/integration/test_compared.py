"""Real frameworks answer the same through crossgate as they do natively.

The same site (tests/integration/apps_compared) in Flask and Django is served natively by
gunicorn and through ``crossgate.wsgi_to_asgi`` on uvicorn; in FastAPI natively by uvicorn
and through ``crossgate.asgi_to_wsgi`` on gunicorn (gthread). Every case below is sent to
both servers of a pair and the answers must be equal: status, headers in order with their
multiplicity (names compared case-insensitively) and body, after the normalisations in
:func:`answer`, each of which says why the difference is not crossgate's. Each pair runs
with uvicorn on both its HTTP/1.1 parsers: h11 (what a bare ``pip install uvicorn`` runs)
and httptools.

The mount prefix is set up as each server is deployed behind a proxy at ``/site``:
gunicorn reads ``SCRIPT_NAME`` from its environment and expects the proxy to forward the
path whole (it strips the prefix from PATH_INFO itself); uvicorn's ``--root-path`` expects
the proxy to strip the prefix (it puts it back into the scope's ``path``), which
:class:`PrefixStrippingProxy` does. The client always speaks the public URLs.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.apps_compared import (
    ASSET,
    FILES_ENV,
    PREFIX,
    STREAM_CHUNK,
    STREAM_CHUNKS,
    asset_bytes,
)
from tests.integration.support import free_port, gunicorn_argv, serve, uvicorn_argv

pytestmark = pytest.mark.integration

APPS = "tests.integration.apps_compared"
TIMEOUT = httpx.Timeout(30.0)
# An idle connection is dropped well before the server would close it (gunicorn after 10 s
# as run here, uvicorn after 5 s), so no request goes out on a connection the server is
# closing.
LIMITS = httpx.Limits(keepalive_expiry=1.0)


# --------------------------------------------------------------------------------------------
# Servers and the proxy in front of them
# --------------------------------------------------------------------------------------------


def gunicorn(target: str, port: int) -> list[str]:
    return gunicorn_argv(target, port, threads=4, extra=("--keep-alive", "10"))


def uvicorn(target: str, port: int, parser: str) -> list[str]:
    return uvicorn_argv(
        target, port, "--http", parser, "--root-path", PREFIX, "--log-level", "warning"
    )


#: uvicorn's HTTP/1.1 parsers (``--http``); gunicorn has one of its own.
PARSERS = ("h11", "httptools")


def command(server: str, target: str, port: int, parser: str) -> list[str]:
    return uvicorn(target, port, parser) if server == "uvicorn" else gunicorn(target, port)


@dataclass(frozen=True)
class Setup:
    """How one framework's site is served natively and through crossgate."""

    native: tuple[str, str]  # (server, module:attribute)
    crossgate: tuple[str, str]


SETUPS = {
    "flask": Setup(("gunicorn", f"{APPS}.flask_app:app"), ("uvicorn", f"{APPS}.flask_app:asgi")),
    "django": Setup(
        ("gunicorn", f"{APPS}.django_app:application"), ("uvicorn", f"{APPS}.django_app:asgi")
    ),
    "fastapi": Setup(
        ("uvicorn", f"{APPS}.fastapi_app:app"), ("gunicorn", f"{APPS}.fastapi_app:wsgi")
    ),
}


class PrefixStrippingProxy(httpx.BaseTransport):
    """What a reverse proxy mounted at PREFIX does in front of ``uvicorn --root-path``:
    it forwards ``/site/x`` as ``/x`` (nginx ``location /site/ { proxy_pass .../; }``)."""

    def __init__(self) -> None:
        self._upstream = httpx.HTTPTransport(limits=LIMITS)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw = request.url.raw_path
        prefix = PREFIX.encode("ascii")
        assert raw.startswith(prefix + b"/"), raw
        request.url = request.url.copy_with(raw_path=raw[len(prefix) :])
        return self._upstream.handle_request(request)

    def close(self) -> None:
        self._upstream.close()


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    #: One client per server for the module: building one costs an SSL context (about
    #: 0.1 s on a loaded machine), and the cases clear its cookies before they run.
    client: httpx.Client


def client_for(name: str, port: int) -> httpx.Client:
    transport = PrefixStrippingProxy() if name == "uvicorn" else httpx.HTTPTransport(limits=LIMITS)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}{PREFIX}", timeout=TIMEOUT, transport=transport
    )


@dataclass(frozen=True)
class Pair:
    framework: str
    native: Server
    crossgate: Server


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory every server serves /files from: one file, written once."""
    directory = tmp_path_factory.mktemp("compared-files")
    (directory / ASSET).write_bytes(asset_bytes())
    return directory


@pytest.fixture(
    scope="module",
    params=[(framework, parser) for framework in SETUPS for parser in PARSERS],
    ids="-".join,
)
def pair(request: pytest.FixtureRequest, files: Path) -> Iterator[Pair]:
    framework: str
    parser: str
    framework, parser = request.param
    setup = SETUPS[framework]
    # gunicorn honours SCRIPT_NAME from its environment; uvicorn ignores it.
    env = {FILES_ENV: str(files), "SCRIPT_NAME": PREFIX}
    with contextlib.ExitStack() as stack:
        servers = []
        for server, target in (setup.native, setup.crossgate):
            port = free_port()
            stack.enter_context(serve(command(server, target, port, parser), port, env=env))
            client = stack.enter_context(client_for(server, port))
            servers.append(Server(server, port, client))
        yield Pair(framework, *servers)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------

Headers = Callable[[httpx.Response], dict[str, str]]


@dataclass(frozen=True)
class Step:
    """One request below PREFIX; ``derive`` adds headers taken from the previous answer."""

    method: str
    path: str
    #: The status the native server must answer (per framework where they differ), so
    #: that a case proves the feature it names and not just two equal errors.
    expect: int | Mapping[str, int]
    headers: Mapping[str, str | bytes] = field(default_factory=dict)
    derive: Headers | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    data: Mapping[str, Any] | None = None
    #: Send the body with Transfer-Encoding: chunked (no Content-Length).
    chunked: bool = False

    def expected(self, framework: str) -> int:
        return self.expect if isinstance(self.expect, int) else self.expect[framework]


def get(path: str, expect: int | Mapping[str, int] = 200, **options: Any) -> Step:
    return Step("GET", path, expect, **options)


def head(path: str, expect: int | Mapping[str, int] = 200) -> Step:
    return Step("HEAD", path, expect)


def from_previous(request_header: str, response_header: str) -> Headers:
    def derive(previous: httpx.Response) -> dict[str, str]:
        return {request_header: previous.headers[response_header]}

    return derive


UPLOAD_FILES = [
    ("doc", ("naïve notes.txt", "Grüße aus Köln\n".encode() * 10, "text/plain")),
    ("blob", ("data.bin", hashlib.sha256(b"seed").digest() * 10_000, "application/octet-stream")),
    ("blob", ("empty.bin", b"", "application/octet-stream")),
]
UPLOAD_DATA = {"title": "Grüße", "tag": ["a", "b"]}
# werkzeug answers 308 and Django 301 for a missing slash; Starlette 307.
SLASH = {"flask": 308, "django": 301, "fastapi": 307}
# Django's FileResponse does not serve ranges: the whole file, 200.
RANGED = {"flask": 206, "django": 200, "fastapi": 206}
# werkzeug serves one range only and refuses several; Starlette sends multipart/byteranges.
MULTI_RANGED = {"flask": 416, "django": 200, "fastapi": 206}
UNSATISFIABLE = {"flask": 416, "django": 200, "fastapi": 416}
# FastAPI routes answer only the methods they list (no HEAD or OPTIONS added); Django views
# answer any method unless decorated.
HEAD_REDIRECT = {"flask": 302, "django": 302, "fastapi": 405}
OPTIONS = {"flask": 200, "django": 200, "fastapi": 405}
POST_TO_GET = {"flask": 405, "django": 200, "fastapi": 405}
# What a TLS-terminating proxy adds; both servers trust it from 127.0.0.1 by default.
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", "Host": "localhost"}
FILE = f"/files/{ASSET}"
LATIN_1 = "Grüße, café".encode("latin-1")

CASES: dict[str, list[Step]] = {
    "get": [get("/hello")],
    "head": [head("/hello")],
    "options": [Step("OPTIONS", "/hello", OPTIONS)],
    "method-not-allowed": [Step("POST", "/hello", POST_TO_GET)],
    "redirect": [get("/redirect", 302)],
    "redirect-absolute": [get("/redirect-absolute", 302)],
    "head-redirect": [head("/redirect", HEAD_REDIRECT)],
    "slash-redirect": [get("/dir", SLASH), get("/dir/")],
    "forwarded-https": [
        get("/redirect-absolute", 302, headers=FORWARDED),
        get("/echo/x", headers=FORWARDED),
    ],
    "cookies": [get("/cookies/set"), get("/cookies"), get("/cookies/set"), get("/hello")],
    "session": [get("/session/add?item=a"), get("/session/add?item=b"), get("/session")],
    "multipart-upload": [
        Step("POST", "/upload", 200, files=UPLOAD_FILES, data=UPLOAD_DATA),
    ],
    # Django reads a body only up to its Content-Length (it ignores wsgi.input_terminated):
    # a chunked upload reaches it empty, natively as through crossgate. The connection is
    # closed after it: gunicorn answers "keep-alive" but then drops a connection whose
    # chunked body the app left unread, which failed the next case about half the time.
    "multipart-upload-chunked": [
        Step(
            "POST",
            "/upload",
            200,
            headers={"Connection": "close"},
            files=UPLOAD_FILES,
            data=UPLOAD_DATA,
            chunked=True,
        ),
    ],
    "file": [get(FILE)],
    "file-head": [head(FILE)],
    "file-if-none-match": [
        get(FILE),
        get(FILE, 304, derive=from_previous("If-None-Match", "ETag")),
    ],
    "file-if-modified-since": [
        get(FILE),
        get(FILE, 304, derive=from_previous("If-Modified-Since", "Last-Modified")),
    ],
    "file-range": [get(FILE, RANGED, headers={"Range": "bytes=1000-4999"})],
    "file-multi-range": [get(FILE, MULTI_RANGED, headers={"Range": "bytes=0-99,5000-5099"})],
    "file-unsatisfiable-range": [get(FILE, UNSATISFIABLE, headers={"Range": "bytes=999999-"})],
    "download": [get("/download")],
    "download-head": [head("/download")],
    "download-suffix-range": [get("/download", RANGED, headers={"Range": "bytes=-500"})],
    "stream": [get("/stream")],
    "stream-head": [head("/stream")],
    # With a header value in latin-1, the one charset HTTP/1.1 headers have had in Python
    # (PEP 3333: "header values [...] must be [...] ISO-8859-1"), echoed in both directions.
    "non-ascii-path": [
        get("/echo/café/über uns?q=é&q=ß&r=%E2%82%AC&bad=%FF", headers={"X-Echo": LATIN_1})
    ],
    # An encoded slash: WSGI servers decode it in PATH_INFO (RFC 3875 4.1.5: "Unlike a URI
    # path, the PATH_INFO is not URL-encoded"), and so must crossgate (fixed in 0a2aff8).
    "encoded-slash-path": [get("/echo/caf%C3%A9/a%2Fb")],
    # A percent sign: PATH_INFO is decoded once, never twice ("/a%2Fb", not "/a/b").
    "percent-literal-path": [get("/echo/a%252Fb%25")],
    "non-ascii-404": [get("/nowhere/ü", 404)],
}


# --------------------------------------------------------------------------------------------
# Comparing answers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    # Case-folded: werkzeug writes its reason phrases in capitals ("404 NOT FOUND"), and an
    # ASGI server writes its own from the code ("Not Found"): ASGI's http.response.start has
    # a status and no phrase. RFC 9112 4: "A client SHOULD ignore the reason-phrase content".
    reason: str
    headers: tuple[tuple[str, str], ...]
    framing: str  # "chunked", "content-length" or "none": how the body was delimited
    body: str  # the text when short, else its size and digest: readable in a diff


# Date and Server: added by each server on its own and differ between any two of them.
# Connection: gunicorn says "keep-alive" on HTTP/1.1 where uvicorn says nothing, the
# default (RFC 9112 9.3); a hop-by-hop header of the server's, which an app may not send
# (PEP 3333: "Applications [...] are forbidden from using HTTP/1.1 'hop-by-hop' features").
# Transfer-Encoding: also the server's own, but where it goes differs (gunicorn writes it
# before the app's headers, uvicorn after), so it is compared as Answer.framing instead.
DROPPED = frozenset({"date", "server", "connection", "transfer-encoding"})
# The session cookies of the three frameworks. Their values are signed with a timestamp in
# seconds (itsdangerous's TimestampSigner, django.core.signing), and Django's carries an
# Expires of now + SESSION_COOKIE_AGE: two answers a second apart differ on one server.
SESSION_COOKIE = re.compile(r"^(session|sessionid)=[^;]*")
EXPIRES = re.compile(r"(?i)(expires=)[^;]*")
# Starlette draws a random boundary for each multipart/byteranges answer (secrets.token_hex).
BOUNDARY = re.compile(r"multipart/byteranges; boundary=(\w+)")
# werkzeug and Starlette build Allow from a set, whose order follows each process's string
# hash seed (PYTHONHASHSEED): two processes of one server disagree.
UNORDERED = frozenset({"allow"})


def answer(response: httpx.Response, server: Server) -> Answer:
    # The two servers listen on different ports, which absolute URLs carry.
    replace = {f"127.0.0.1:{server.port}": "127.0.0.1:PORT"}
    boundary = BOUNDARY.match(response.headers.get("content-type", ""))
    if boundary is not None:
        replace[boundary.group(1)] = "<boundary>"

    def normal(value: str) -> str:
        for old, new in replace.items():
            value = value.replace(old, new)
        return value

    headers = []
    framing = "content-length" if "content-length" in response.headers else "none"
    # A HEAD answer has no body to delimit: naming the framing a GET would get is the
    # server's choice (RFC 9112 6.1: "A server MAY send a Transfer-Encoding header field in
    # a response to a HEAD request"). uvicorn on h11 does; on httptools, and gunicorn, not.
    if response.headers.get("transfer-encoding") == "chunked" and response.request.method != "HEAD":
        framing = "chunked"
    for name, value in response.headers.multi_items():
        if name in DROPPED:
            continue
        text = value
        if name == "set-cookie" and SESSION_COOKIE.match(text):
            text = EXPIRES.sub(r"\1<now + age>", SESSION_COOKIE.sub(r"\1=<signed>", text))
        if name in UNORDERED:
            text = ", ".join(sorted(text.split(", ")))
        headers.append((name, normal(text)))
    body = response.content
    if len(body) <= 4096:
        text = normal(body.decode("utf-8", "backslashreplace"))
    else:
        text = f"<{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}>"
    return Answer(
        response.status_code, response.reason_phrase.casefold(), tuple(headers), framing, text
    )


def _raw(fields: Mapping[str, str | bytes]) -> list[tuple[bytes, bytes]]:
    """Header fields as bytes, so a value can be sent in latin-1 as it is."""
    return [
        (name.encode("ascii"), value if isinstance(value, bytes) else value.encode("latin-1"))
        for name, value in fields.items()
    ]


def run(steps: list[Step], server: Server) -> list[tuple[httpx.Response, Answer]]:
    results = []
    client = server.client
    client.cookies.clear()
    previous: httpx.Response | None = None
    for step in steps:
        fields: dict[str, str | bytes] = dict(step.headers)
        if step.derive is not None:
            assert previous is not None
            fields.update(step.derive(previous))
        request = client.build_request(
            step.method, step.path, headers=_raw(fields), files=step.files, data=step.data
        )
        if step.chunked:
            body = request.read()
            pieces = [body[i : i + 50_000] for i in range(0, len(body), 50_000)]
            fields["Content-Type"] = request.headers["Content-Type"]
            request = client.build_request(
                step.method, step.path, headers=_raw(fields), content=iter(pieces)
            )
            assert request.headers["Transfer-Encoding"] == "chunked"
        response = client.send(request)
        results.append((response, answer(response, server)))
        previous = response
    return results


Check = Callable[[list[httpx.Response]], None]


def _location_ends(suffix: str) -> Check:
    def check(responses: list[httpx.Response]) -> None:
        assert responses[0].headers["location"].endswith(suffix)

    return check


def _json(index: int, expected: object) -> Check:
    def check(responses: list[httpx.Response]) -> None:
        assert responses[index].json() == expected

    return check


def _echoed(rest: str, x_echo: bytes = b"") -> Check:
    def check(responses: list[httpx.Response]) -> None:
        assert responses[0].json()["rest"] == rest
        assert responses[0].headers.get_list("x-echo") == [x_echo.decode("latin-1")]

    return check


def _upload(responses: list[httpx.Response]) -> None:
    uploaded = responses[0].json()
    assert [(f["field"], f["filename"], f["size"]) for f in uploaded["files"]] == [
        (name, filename, len(data)) for name, (filename, data, _) in UPLOAD_FILES
    ]
    assert uploaded["fields"] == [["tag", "a"], ["tag", "b"], ["title", "Grüße"]]


def _whole_file(responses: list[httpx.Response]) -> None:
    assert responses[0].content == asset_bytes()
    assert "etag" in responses[0].headers
    assert "last-modified" in responses[0].headers


def _range(responses: list[httpx.Response]) -> None:
    data = asset_bytes()
    ranged = responses[0]
    assert ranged.content == (data[1000:5000] if ranged.status_code == 206 else data)


def _stream(responses: list[httpx.Response]) -> None:
    expected = b"".join(str(i % 10).encode() * STREAM_CHUNK for i in range(STREAM_CHUNKS))
    assert responses[0].content == expected


# What the native answers must show besides their status, so that equal answers prove
# something: a case is about its feature only if the native server's answer has it.
CHECKS: dict[str, Check] = {
    "redirect": _location_ends(f"{PREFIX}/hello"),
    "slash-redirect": _location_ends(f"{PREFIX}/dir/"),
    "forwarded-https": _location_ends(f"https://localhost{PREFIX}/hello"),
    "cookies": _json(1, [["flavour", "oatmeal raisin"], ["scoped", "yes"]]),
    "session": _json(2, ["a", "b"]),
    "multipart-upload": _upload,
    "file": _whole_file,
    "file-range": _range,
    "stream": _stream,
    "non-ascii-path": _echoed("café/über uns", LATIN_1),
    "encoded-slash-path": _echoed("café/a/b"),
    "percent-literal-path": _echoed("a%2Fb%"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_answer_natively_and_through_crossgate(pair: Pair, case: str) -> None:
    """The case's requests get the same answers through crossgate as natively."""
    steps = CASES[case]
    native = run(steps, pair.native)
    for step, (response, _) in zip(steps, native, strict=True):
        assert response.status_code == step.expected(pair.framework), (step, response.text)
    if case in CHECKS:
        CHECKS[case]([response for response, _ in native])
    through_crossgate = run(steps, pair.crossgate)
    assert [a for _, a in through_crossgate] == [a for _, a in native]
