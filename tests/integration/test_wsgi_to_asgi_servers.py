"""Flask, Django and Falcon apps through crossgate.wsgi_to_asgi on uvicorn, hypercorn and
daphne, over TCP.

Each (framework, server) pair is started once per module as a subprocess on 127.0.0.1 and
driven with httpx: a small response, a streamed download, a streamed upload, a client that
leaves mid-stream (the app's generator must be closed) and the lifespan startup hook.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.integration.support import free_port, serve, uvicorn_argv

pytestmark = pytest.mark.integration

APPS = {
    "flask": "tests.integration.apps_wsgi.flask_app:application",
    "django": "tests.integration.apps_wsgi.django_app:application",
    "falcon": "tests.integration.apps_wsgi.falcon_app:application",
}
SERVERS: dict[str, Callable[[str, int], list[str]]] = {
    "uvicorn": lambda target, port: uvicorn_argv(
        target, port, "--lifespan", "on", "--log-level", "warning"
    ),
    "hypercorn": lambda target, port: ["hypercorn", target, "--bind", f"127.0.0.1:{port}"],
    # Daphne (Channels' server, on Twisted) does not speak the lifespan protocol.
    "daphne": lambda target, port: ["daphne", "-b", "127.0.0.1", "-p", str(port), target],
}
NO_LIFESPAN = {"daphne"}


@pytest.fixture(
    scope="module",
    params=[(app, server) for app in APPS for server in SERVERS],
    ids=lambda pair: f"{pair[0]}-on-{pair[1]}",
)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(the server's name, its base URL)."""
    app, name = request.param
    port = free_port()
    with serve(SERVERS[name](APPS[app], port), port):
        yield name, f"http://127.0.0.1:{port}"


@pytest.fixture
def client(server: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[1], timeout=20) as http:
        yield http


def test_small_response(client: httpx.Client) -> None:
    response = client.get("/hello")
    assert response.status_code == 200
    assert response.text in {"Hello, Flask!", "Hello, Django!", "Hello, Falcon!"}


def test_lifespan_startup_hook_runs_where_the_server_runs_lifespan(
    server: tuple[str, str], client: httpx.Client
) -> None:
    # Where the server sends no lifespan events, the hook cannot run: the README says so.
    expected = "no" if server[0] in NO_LIFESPAN else "yes"
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


def test_client_leaving_mid_stream_closes_the_generator(client: httpx.Client) -> None:
    token = uuid.uuid4().hex
    leaver = httpx.Client(base_url=str(client.base_url), timeout=20)  # its own connection
    with leaver, leaver.stream("GET", "/endless", params={"token": token}) as response:
        assert response.status_code == 200
        received = 0
        for block in response.iter_raw():
            received += len(block)
            if received > 512 * 1024:
                break
    # The app answers once the generator's close() ran (it waits for it, up to 10 s).
    assert client.get("/closed", params={"token": token}).text == "closed"
