"""crossgate's middleware on real servers over 127.0.0.1: mixed WSGI/ASGI mounts on uvicorn,
a failing mount stopping uvicorn with its message, Django's ASGI handler given a lifespan, and
an ASGI app mounted beside a Flask app on a WSGI server (wsgiref)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import wsgiref.simple_server
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from crossgate.middleware.dispatch import WSGIDispatcher, dispatch_wsgi
from tests.integration.apps_mixed.mounted import legacy
from tests.integration.support import REPO, free_port, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

APPS = "tests.integration.apps_mixed"


def uvicorn(target: str, port: int) -> list[str]:
    return ["uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on"]


def test_flask_under_dispatch_on_uvicorn_redirects_within_its_prefix() -> None:
    port = free_port()
    with serve(uvicorn(f"{APPS}.mounted:app", port), port):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10, follow_redirects=False) as client:
            moved = client.get("/legacy/old")
            assert (moved.status_code, moved.headers["location"]) == (302, "/legacy/new")
            assert client.get("/legacy/new").text == "new at /legacy/new"
            # The prefix itself goes to Flask, which asks for the slash (PATH_INFO "").
            slash = client.get("/legacy")
            assert (slash.status_code, slash.headers["location"]) == (308, f"{base}/legacy/")
            assert client.get("/legacy/").text == "legacy home"

            # FastAPI got its lifespan (Starlette's Mount would not have sent it).
            assert client.get("/api/items").json() == {
                "db": "db-of-the-api",
                "url": f"{base}/api/items",
            }
            # A segment boundary: /application is not /api's, nor /legacy's.
            assert client.get("/application").text == "site /application db=False"
            assert client.get("/legacyx").text == "site /legacyx db=False"


def test_a_failing_mount_stops_uvicorn_with_its_name_and_message(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "CROSSGATE_TEST_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", *uvicorn(f"{APPS}.failing:app", free_port())],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode != 0, log
    assert "mount '/billing' failed to start" in log
    assert "RuntimeError: payment gateway unreachable" in log
    assert "Application startup failed. Exiting." in log
    # The mount started before the failing one was shut down again.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok-shutdown", "ok-startup"]


@pytest.mark.parametrize(
    ("target", "prefix"), [("app", ""), ("mounted", "/django")], ids=["alone", "under-dispatch"]
)
def test_django_with_lifespan_on_uvicorn_logs_no_lifespan_error(
    tmp_path: Path, target: str, prefix: str
) -> None:
    port = free_port()
    env = {"CROSSGATE_TEST_DIR": str(tmp_path)}
    with serve(uvicorn(f"{APPS}.django_app:{target}", port), port, env=env) as log_path:
        assert (tmp_path / "django-startup").exists()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            hello = client.get(f"{prefix}/hello")
            assert hello.status_code == 200, hello.text
            # The hook's state reached the request; reverse() knows the mount's prefix.
            assert hello.text == f"hello from a startup hook at {prefix}/hello"
        log = log_path.read_text()
    assert "Application startup complete." in log
    assert "Exception in 'lifespan' protocol" not in log
    assert "lifespan' protocol appears unsupported" not in log
    assert "ERROR" not in log
    assert (tmp_path / "django-shutdown").exists()


# -- an ASGI app beside a Flask app on a WSGI server ------------------------------------------


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def wsgiref_server(app: WSGIDispatcher) -> Iterator[str]:
    """Serve ``app`` with the stdlib's WSGI server on a thread; yield its base URL."""
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_an_asgi_app_beside_flask_on_a_wsgi_server() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def life(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"cache": "cache-of-the-asgi-app"}
        events.append("shutdown")

    async def where(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.url_for('where')} {request.state.cache}")

    asgi = Starlette(routes=[Route("/where", where, name="where")], lifespan=life)
    app = dispatch_wsgi({"/legacy": legacy, "/asgi": asgi})
    try:
        with (
            wsgiref_server(app) as base,
            httpx.Client(base_url=base, timeout=10, follow_redirects=False) as client,
        ):
            moved = client.get("/legacy/old")
            assert (moved.status_code, moved.headers["location"]) == (302, "/legacy/new")
            assert client.get("/legacy/new").text == "new at /legacy/new"
            where_text = client.get("/asgi/where").text
            assert where_text == f"{base}/asgi/where cache-of-the-asgi-app"
            missing = client.get("/nowhere")
            assert (missing.status_code, missing.text) == (404, "Not Found")
            assert events == ["startup"]
    finally:
        app.close()
    assert events == ["startup", "shutdown"]
