"""Flask, Django and Falcon apps through crossgate.wsgi_to_asgi on every ASGI server users
deploy, over TCP: uvicorn on each of its HTTP/1.1 parsers (h11, what a bare ``pip install
uvicorn`` runs, and httptools) and with two worker processes, gunicorn with the
``uvicorn-worker`` classes, hypercorn over HTTP/1.1 and HTTP/2, daphne and granian.

Each (framework, server) pair is started once per module as a subprocess on 127.0.0.1 and
driven with httpx: a small response, a streamed download, a streamed upload, a client that
leaves mid-stream (the app's generator must be closed), the lifespan startup hook, and
requests over fresh connections at once, which spread over the workers a server forks.

Every server runs at least one framework by default; the other pairs are marked ``slow``
(run with CROSSGATE_SLOW=1). Both uvicorn parsers run all three frameworks by default.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.support import free_port, gunicorn_argv, serve, uvicorn_argv

pytestmark = pytest.mark.integration

APPS = {
    "flask": "tests.integration.apps_wsgi.flask_app:application",
    "django": "tests.integration.apps_wsgi.django_app:application",
    "falcon": "tests.integration.apps_wsgi.falcon_app:application",
}

Argv = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Server:
    """One way users deploy an ASGI app, and what the tests may expect of it."""

    argv: Argv
    #: The frameworks run by default; the others are marked slow.
    default_apps: tuple[str, ...]
    #: Whether the server sends lifespan events (daphne does not).
    lifespan: bool = True
    #: Spoken by the client: HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    http2: bool = False
    #: Processes that accept connections; above one, any of them may answer a request.
    workers: int = 1


def uvicorn(*options: str) -> Argv:
    def argv(target: str, port: int) -> list[str]:
        return uvicorn_argv(target, port, "--lifespan", "on", "--log-level", "warning", *options)

    return argv


def uvicorn_worker(worker_class: str, *extra: str) -> Argv:
    """gunicorn with a worker class of the ``uvicorn-worker`` package (one worker)."""

    def argv(target: str, port: int) -> list[str]:
        # gunicorn's 2 s keep-alive becomes uvicorn's: a little longer, so that httpx does
        # not send a request on a connection the server is closing between two tests.
        return gunicorn_argv(
            target,
            port,
            worker_class=f"uvicorn_worker.{worker_class}",
            extra=("--keep-alive", "10", *extra),
        )

    return argv


def hypercorn(target: str, port: int) -> list[str]:
    # A plain bind speaks HTTP/1.1 and, to a client that opens with the HTTP/2 preface,
    # HTTP/2 (h2c with prior knowledge).
    return ["hypercorn", target, "--bind", f"127.0.0.1:{port}"]


def daphne(target: str, port: int) -> list[str]:
    return ["daphne", "-b", "127.0.0.1", "-p", str(port), target]


def granian(target: str, port: int) -> list[str]:
    # The asgi interface runs the lifespan protocol (asginl would not).
    return [
        "granian",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        target,
    ]


ALL = tuple(APPS)
SERVERS = {
    "uvicorn-h11": Server(uvicorn("--http", "h11"), ALL),
    "uvicorn-httptools": Server(uvicorn("--http", "httptools"), ALL),
    "uvicorn-2-workers": Server(
        uvicorn("--http", "httptools", "--workers", "2"), ("falcon",), workers=2
    ),
    # The app is imported by the worker gunicorn forks, or with --preload by the arbiter
    # before it forks: crossgate starts nothing before its first request.
    "gunicorn-uvicornworker": Server(uvicorn_worker("UvicornWorker"), ("django",)),
    "gunicorn-uvicornh11worker": Server(
        uvicorn_worker("UvicornH11Worker", "--preload"), ("flask",)
    ),
    "hypercorn-h11": Server(hypercorn, ("flask", "falcon")),
    "hypercorn-h2": Server(hypercorn, ("django",), http2=True),
    # Daphne (Channels' server, on Twisted) does not speak the lifespan protocol.
    "daphne": Server(daphne, ("django", "falcon"), lifespan=False),
    "granian": Server(granian, ("flask", "django")),
}


@dataclass(frozen=True)
class Running:
    name: str
    spec: Server
    url: str

    def client(self) -> httpx.Client:
        """A client with connections of its own, speaking what the server is run for."""
        return httpx.Client(
            base_url=self.url,
            timeout=20,
            http1=not self.spec.http2,
            http2=self.spec.http2,
        )


def _pairs() -> list[object]:
    return [
        pytest.param(
            (app, name),
            id=f"{app}-on-{name}",
            marks=() if app in spec.default_apps else pytest.mark.slow,
        )
        for name, spec in SERVERS.items()
        for app in APPS
    ]


@pytest.fixture(scope="module", params=_pairs())
def server(request: pytest.FixtureRequest) -> Iterator[Running]:
    app, name = request.param
    port = free_port()
    with serve(SERVERS[name].argv(APPS[app], port), port):
        yield Running(name, SERVERS[name], f"http://127.0.0.1:{port}")


@pytest.fixture
def client(server: Running) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def test_small_response(server: Running, client: httpx.Client) -> None:
    response = client.get("/hello")
    assert response.status_code == 200
    assert response.text in {"Hello, Flask!", "Hello, Django!", "Hello, Falcon!"}
    assert response.http_version == ("HTTP/2" if server.spec.http2 else "HTTP/1.1")


def test_lifespan_startup_hook_runs_where_the_server_runs_lifespan(
    server: Running, client: httpx.Client
) -> None:
    # Where the server sends no lifespan events, the hook cannot run: docs/deployment.md says so.
    expected = "yes" if server.spec.lifespan else "no"
    assert client.get("/startup").text == expected


def test_streamed_download(client: httpx.Client) -> None:
    chunks, size = 64, 65536
    expected = hashlib.sha256(b"".join(str(i % 10).encode() * size for i in range(chunks)))
    digest = hashlib.sha256()
    total = 0
    with client.stream("GET", "/stream", params={"chunks": chunks, "size": size}) as response:
        assert response.status_code == 200
        for block in response.iter_raw():
            digest.update(block)
            total += len(block)
    assert total == chunks * size
    assert digest.hexdigest() == expected.hexdigest()


def test_streamed_upload(client: httpx.Client) -> None:
    parts = [bytes([i % 256]) * 32768 for i in range(64)]  # 2 MiB, sent as it is generated
    length = sum(map(len, parts))

    def body() -> Iterator[bytes]:
        yield from parts

    response = client.post(
        "/upload",
        content=body(),
        headers={"Content-Length": str(length), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert response.text == f"{length} {hashlib.sha256(b''.join(parts)).hexdigest()}"


def test_client_leaving_mid_stream_closes_the_generator(
    server: Running, client: httpx.Client
) -> None:
    if server.spec.workers > 1:
        # The app keeps the closed tokens in its process: /closed may reach another worker
        # than /endless did, and would wait there for a close that happens elsewhere.
        pytest.skip("which worker answers /closed is the kernel's choice")
    token = uuid.uuid4().hex
    leaver = server.client()  # its own connection
    with leaver, leaver.stream("GET", "/endless", params={"token": token}) as response:
        assert response.status_code == 200
        received = 0
        for block in response.iter_raw():
            received += len(block)
            if received > 512 * 1024:
                break
    # The app answers once the generator's close() ran (it waits for it, up to 10 s).
    assert client.get("/closed", params={"token": token}).text == "closed"


def test_requests_on_fresh_connections_at_once(server: Running) -> None:
    """Connections at once spread over the workers a server forks: every one answers."""

    def fetch(path: str) -> tuple[int, str]:
        with server.client() as fresh:
            response = fresh.get(path)
            return response.status_code, response.text

    expected_startup = "yes" if server.spec.lifespan else "no"
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(fetch, ["/hello", "/startup"] * 4))
    for index, (status, text) in enumerate(answers):
        assert status == 200
        if index % 2:
            assert text == expected_startup
        else:
            assert text.startswith("Hello, ")
