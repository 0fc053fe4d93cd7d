"""FastAPI and Quart apps through crossgate on real WSGI servers (gunicorn sync and gthread,
waitress), driven by httpx over 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.apps_asgi import BLOCK
from tests.integration.support import free_port, gunicorn_argv, serve

pytestmark = pytest.mark.integration

APPS = {
    "fastapi": "tests.integration.apps_asgi.fastapi_app:application",
    "quart": "tests.integration.apps_asgi.quart_app:application",
}


@dataclass
class Server:
    name: str
    url: str
    markers: Path
    workers: int
    #: Where the app reports events (see apps_asgi.notify).
    events: socket.socket

    def next_event(self, timeout: float = 20.0) -> str:
        """Block until the app reports an event (no polling, no sleeping)."""
        self.events.settimeout(timeout)
        conn, _ = self.events.accept()
        with conn, conn.makefile("rb") as stream:
            conn.settimeout(timeout)
            return stream.readline().decode().strip()


def _gunicorn(worker: str) -> Callable[[str, int], list[str]]:
    def argv(app: str, port: int) -> list[str]:
        # --preload: the app is imported before the fork, where nothing may start yet. A
        # sync worker gets one thread: with more, gunicorn runs gthread in its place.
        threads = 1 if worker == "sync" else 2
        return gunicorn_argv(
            app, port, workers=2, worker_class=worker, threads=threads, extra=["--preload"]
        )

    return argv


def _waitress(app: str, port: int) -> list[str]:
    return ["waitress", f"--listen=127.0.0.1:{port}", "--threads=4", app]


SERVERS = {
    "gunicorn-sync": (_gunicorn("sync"), 2),
    "gunicorn-gthread": (_gunicorn("gthread"), 2),
    "waitress": (_waitress, 1),
}


@pytest.fixture(
    scope="module",
    params=[(app, server) for app in APPS for server in SERVERS],
    ids=lambda pair: f"{pair[0]}-on-{pair[1]}",
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    app, name = request.param
    argv, workers = SERVERS[name]
    markers = tmp_path_factory.mktemp(f"{app}-{name}")
    port = free_port()
    with socket.create_server(("127.0.0.1", 0)) as events:
        env = {
            "CROSSGATE_TEST_DIR": str(markers),
            "CROSSGATE_TEST_NOTIFY": f"127.0.0.1:{events.getsockname()[1]}",
        }
        with serve(argv(APPS[app], port), port, env=env):
            assert not list(markers.glob("startup-*")), "lifespan ran before any request"
            yield Server(name, f"http://127.0.0.1:{port}", markers, workers, events)
    if name.startswith("gunicorn"):
        # Each worker that started its lifespan ran its shutdown at exit (SIGTERM).
        started = {p.name.split("-", 1)[1] for p in markers.glob("startup-*")}
        stopped = {p.name.split("-", 1)[1] for p in markers.glob("shutdown-*")}
        assert started
        assert started == stopped


def expected_download(size: int) -> bytes:
    return (BLOCK * (size // len(BLOCK) + 1))[:size]


def test_lifespan_state_is_visible_in_requests(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        pids = set()
        for _ in range(6):
            answer = client.get("/state").json()
            assert answer["open"] is True
            assert answer["same_loop"] is True  # startup and requests share the loop
            pids.add(answer["pid"])
    # Every worker that answered ran its own startup (a fork does not inherit it).
    started = {int(p.read_text()) for p in server.markers.glob("startup-*")}
    assert pids <= started


def test_streamed_download(server: Server) -> None:
    size = 8 * 1024 * 1024 + 123
    digest = hashlib.sha256()
    received = 0
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("GET", f"/download/{size}") as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(expected_download(size)).hexdigest()


def test_streamed_upload_with_content_length(server: Server) -> None:
    body = os.urandom(3 * 1024 * 1024 + 7)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/upload", content=body).json()
    assert answer == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_chunked_upload(server: Server) -> None:
    parts = [os.urandom(size) for size in (1, 70_000, 0, 5, 200_000, 65_536)]

    def chunks() -> Iterator[bytes]:
        yield from parts

    body = b"".join(parts)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/upload", content=chunks())
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_client_disconnecting_mid_stream_reaches_the_app(server: Server) -> None:
    token = f"{server.name}-{os.getpid()}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("GET", f"/endless/?{token}") as response:
            assert response.status_code == 200
            received = 0
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > 256 * 1024:
                    break
        # The connection was closed mid-body. The server notices on a write, closes the
        # iterable; the app's send() raises OSError and its receive() says disconnect.
        assert server.next_event() == f"disconnect-{token}-http.disconnect"
        # The worker is free again.
        assert client.get("/state").json()["open"] is True
