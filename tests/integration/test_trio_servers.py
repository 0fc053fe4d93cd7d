"""trio on real servers, driven by httpx over 127.0.0.1.

* A Quart-Trio app through ``asgi_to_wsgi(app, backend="trio")`` runs on every WSGI
  server of ``test_asgi_to_wsgi_servers.py`` (its ``quart-trio`` app).
* Flask and Django through ``wsgi_to_asgi`` on hypercorn's trio worker
  (``--worker-class trio``): plain requests, a streamed download, an upload, a client
  leaving mid-stream reaching the generator's ``close()``, startup and shutdown hooks; and
  ``dispatch`` mixing the Flask app with a trio ASGI app there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.support import REPO, free_port, serve

pytestmark = pytest.mark.integration

# --------------------------------------------------------------------------------------------
# WSGI apps through wsgi_to_asgi, and dispatch mixing WSGI and trio, on hypercorn -k trio
# --------------------------------------------------------------------------------------------

HYPERCORN_TRIO_APPS = {
    "flask": "tests.integration.apps_trio.flask_on_trio:application",
    "django": "tests.integration.apps_trio.django_on_trio:application",
    "mixed": "tests.integration.apps_trio.mixed_on_trio:application",
}


@dataclass
class TrioServer:
    name: str
    url: str
    markers: Path


def hypercorn_trio(target: str, port: int) -> list[str]:
    """hypercorn's trio worker (``--worker-class trio``) serving ``target``."""
    return ["hypercorn", target, "--bind", f"127.0.0.1:{port}", "--worker-class", "trio"]


@contextlib.contextmanager
def on_hypercorn_trio(name: str, markers: Path) -> Iterator[TrioServer]:
    port = free_port()
    env = {
        "CROSSGATE_TEST_DIR": str(markers),
        "PYTHONPATH": os.pathsep.join((str(REPO / "src"), str(REPO))),
    }
    prefix = "wsgi" if name != "mixed" else "trio"

    def check_shutdown() -> None:
        # hypercorn's SIGTERM ends with the lifespan shutdown: the hooks (or the trio app's
        # lifespan) ran in the process that ran the startup.
        started = sorted(p.name.split("-", 1)[1] for p in markers.glob(f"startup-{prefix}-*"))
        stopped = sorted(p.name.split("-", 1)[1] for p in markers.glob(f"shutdown-{prefix}-*"))
        assert started
        assert started == stopped

    argv = hypercorn_trio(HYPERCORN_TRIO_APPS[name], port)
    # SIGTERM to hypercorn's master alone: it tells its worker to shut down (lifespan
    # included); a worker signalled itself would die at once, its trio run having no handler.
    with serve(argv, port, env=env, stop_group=False, after_stop=check_shutdown):
        yield TrioServer(name, f"http://127.0.0.1:{port}", markers)


@pytest.fixture(scope="module", params=["flask", "django"])
def wsgi_on_trio(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrioServer]:
    name: str = request.param
    with on_hypercorn_trio(name, tmp_path_factory.mktemp(f"hypercorn-trio-{name}")) as server:
        yield server


@pytest.fixture(scope="module")
def mixed_on_trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrioServer]:
    with on_hypercorn_trio("mixed", tmp_path_factory.mktemp("hypercorn-trio-mixed")) as server:
        yield server


def test_wsgi_app_answers_on_hypercorn_trio(wsgi_on_trio: TrioServer) -> None:
    with httpx.Client(base_url=wsgi_on_trio.url, timeout=30) as client:
        for _ in range(3):
            response = client.get("/hello")
            assert response.status_code == 200
            assert response.text == f"Hello, {wsgi_on_trio.name.capitalize()}!"


def test_wsgi_startup_hooks_ran_before_the_first_request_on_trio(wsgi_on_trio: TrioServer) -> None:
    with httpx.Client(base_url=wsgi_on_trio.url, timeout=30) as client:
        assert client.get("/startup").text == "yes"
    assert list(wsgi_on_trio.markers.glob("startup-wsgi-*"))


def test_wsgi_streamed_download_on_trio(wsgi_on_trio: TrioServer) -> None:
    chunks, size = 64, 65_536
    received = bytearray()
    with (
        httpx.Client(base_url=wsgi_on_trio.url, timeout=30) as client,
        client.stream("GET", f"/stream?chunks={chunks}&size={size}") as response,
    ):
        assert response.status_code == 200
        for part in response.iter_raw():
            received += part
    expected = b"".join(str(i % 10).encode() * size for i in range(chunks))
    assert len(received) == len(expected)
    assert bytes(received) == expected


def test_wsgi_upload_on_trio(wsgi_on_trio: TrioServer) -> None:
    body = os.urandom(3 * 1024 * 1024 + 7)
    with httpx.Client(base_url=wsgi_on_trio.url, timeout=30) as client:
        response = client.post("/upload", content=body)
    assert response.status_code == 200
    assert response.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_wsgi_client_leaving_mid_stream_closes_the_generator_on_trio(
    wsgi_on_trio: TrioServer,
) -> None:
    token = f"{wsgi_on_trio.name}-trio-{os.getpid()}"
    with httpx.Client(base_url=wsgi_on_trio.url, timeout=30) as client:
        with client.stream("GET", f"/endless?token={token}") as response:
            assert response.status_code == 200
            received = 0
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > 256 * 1024:
                    break
        # The connection closed mid-body: the generator's close() ran (PEP 3333), which the
        # app reports from another request.
        assert client.get(f"/closed?token={token}").text == "closed"


def test_dispatch_mixes_a_wsgi_app_and_a_trio_app_on_hypercorn_trio(
    mixed_on_trio: TrioServer,
) -> None:
    with httpx.Client(base_url=mixed_on_trio.url, timeout=30) as client:
        assert client.get("/hello").text == "Hello, Flask!"
        answer = client.get("/trio/x").json()
        assert answer == {"same_run": True, "path": "/trio/x", "root_path": "/trio"}
        assert client.get("/hello").text == "Hello, Flask!"
    # The trio app's lifespan ran through dispatch's fan-out, on the server's trio run.
    assert list(mixed_on_trio.markers.glob("startup-trio-*"))
