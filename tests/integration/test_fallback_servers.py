"""fallback on real servers over 127.0.0.1: FastAPI in front of Flask and in front of Django
on uvicorn, Starlette in front of Flask on gunicorn (fallback_wsgi); moved and kept routes,
URLs built on both sides, request bodies replayed (with and without Content-Length),
streaming from either side, and a client that leaves while the primary app decides."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.support import free_port, gunicorn_argv, serve, uvicorn_argv

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

APPS = "tests.integration.apps_fallback"
BODY = bytes(range(256)) * 400  # 100 KiB, every byte value
TIMEOUT = 10.0


def chunked(data: bytes, size: int = 7000) -> Iterator[bytes]:
    """The body as a generator: httpx sends it without Content-Length, chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def check_echo(client: httpx.Client, path: str, app: str, *, chunks: bool = True) -> None:
    """``path`` gets the whole body, with and without Content-Length, answered by ``app``."""
    want = {"app": app, "length": len(BODY), "sha256": hashlib.sha256(BODY).hexdigest()}
    assert client.post(path, content=BODY).json() == want
    if chunks:
        assert client.post(path, content=chunked(BODY)).json() == want


def check_stream(client: httpx.Client, path: str, name: str) -> None:
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers  # streamed, not buffered
        text = b"".join(response.iter_bytes()).decode()
    assert text == "".join(f"{name} {index}\n" for index in range(5))


def check_log(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert "ERROR" not in text, text


def test_fastapi_in_front_of_flask_on_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    argv = uvicorn_argv(f"{APPS}.fastapi_flask:app", port, "--lifespan", "on")
    with serve(argv, port, env={"CROSSGATE_TEST_DIR": str(tmp_path)}) as log:
        base = f"http://127.0.0.1:{port}"
        assert (tmp_path / "flask-startup").exists()  # the one lifespan reached Flask too
        with httpx.Client(base_url=base, timeout=TIMEOUT, follow_redirects=False) as client:
            # Moved: FastAPI, with its lifespan state; kept: Flask. Same URLs as before.
            assert client.get("/users/7").json() == {
                "app": "fastapi",
                "url": f"{base}/users/7",
                "db": "db-of-the-api",
            }
            assert client.get("/users/7/avatar").text == "flask avatar of 7 at /users/7/avatar"
            moved = client.get("/old")
            assert (moved.status_code, moved.headers["location"]) == (302, "/users/1/avatar")
            # FastAPI read no body before its 404 (its router decides first): Flask gets it
            # all; FastAPI's own endpoint reads it too.
            check_echo(client, "/echo", "flask")
            check_echo(client, "/echo-new", "fastapi")
            check_stream(client, "/stream", "flask")
            check_stream(client, "/stream-new", "fastapi")
            missing = client.get("/nowhere")
            assert missing.status_code == 404
            assert "<title>404 Not Found</title>" in missing.text  # Flask's page, not FastAPI's
        check_log(log)
    assert (tmp_path / "flask-shutdown").exists()


def test_a_client_that_leaves_while_fastapi_decides_reaches_no_view(tmp_path: Path) -> None:
    port = free_port()
    argv = uvicorn_argv(f"{APPS}.fastapi_flask:app", port, "--lifespan", "on")
    with serve(argv, port, env={"CROSSGATE_TEST_DIR": str(tmp_path)}) as log:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /deciding HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            time.sleep(0.2)  # FastAPI takes 1 s to decide the path is not its own
        time.sleep(1.5)  # it refused; the client was gone: Flask's view must not run
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as client:
            assert client.get("/calls").json() == {"deciding": 0}
            # The server is not stuck: the same path, with a client that waits.
            assert client.get("/deciding").text == "flask deciding"
            assert client.get("/calls").json() == {"deciding": 1}
        check_log(log)


@pytest.mark.parametrize("target", ["app", "app_asgi"], ids=["django-wsgi", "django-asgi"])
def test_fastapi_in_front_of_django_on_uvicorn(target: str) -> None:
    port = free_port()
    with serve(
        uvicorn_argv(f"{APPS}.fastapi_django:{target}", port, "--lifespan", "on"), port
    ) as log:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            assert client.get("/users/7").json() == {"app": "fastapi", "url": f"{base}/users/7"}
            avatar = client.get("/users/7/avatar")
            assert avatar.text == "django avatar of 7 at /users/7/avatar"
            # Django's WSGI request reads CONTENT_LENGTH bytes, none without it (alone too).
            check_echo(client, "/echo", "django", chunks=target == "app_asgi")
            check_stream(client, "/stream", "django")
            assert client.get("/nowhere").status_code == 404
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text
        assert "lifespan' protocol appears unsupported" not in text


def test_starlette_in_front_of_flask_on_gunicorn() -> None:
    port = free_port()
    with serve(gunicorn_argv(f"{APPS}.starlette_flask:wsgi", port, threads=4), port) as log:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=TIMEOUT, follow_redirects=False) as client:
            assert client.get("/users/7").json() == {
                "app": "starlette",
                "url": f"{base}/users/7",
                "db": "db-of-the-site",  # its lifespan ran once in the worker
            }
            assert client.get("/users/7/avatar").text == "flask avatar of 7 at /users/7/avatar"
            moved = client.get("/old")
            assert (moved.status_code, moved.headers["location"]) == (302, "/users/1/avatar")
            check_echo(client, "/echo", "flask")
            check_echo(client, "/echo-new", "starlette")
            check_stream(client, "/stream", "flask")
            check_stream(client, "/stream-new", "starlette")
            assert "<title>404 Not Found</title>" in client.get("/nowhere").text
        check_log(log)
