"""The demo that `scripts/demo` serves answers over real HTTP on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.support import free_port, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_demo_serves_its_pages_through_uvicorn() -> None:
    port = free_port()
    with serve(["examples.demo", "--port", str(port)], port):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert b"Hello from a WSGI app on an ASGI server" in page.content

            stream = client.get("/stream")
            assert stream.text.splitlines() == [f"line {i} of 10" for i in range(1, 11)]

            body = bytes(range(256)) * 1000
            echo = client.post("/echo", content=body)
            assert echo.status_code == 200
            assert echo.content == body

            assert client.get("/nowhere").status_code == 404


def test_mixed_demo_serves_three_frameworks_under_their_prefixes() -> None:
    """What `scripts/demo` serves: Flask, Django and Starlette under one dispatch."""
    port = free_port()
    with serve(["examples.mixed", "--port", str(port)], port) as log:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            index = client.get("/")
            assert index.status_code == 200
            for prefix in ("/flask/", "/django/", "/starlette/"):
                assert f'href="{prefix}"' in index.text

            assert client.get("/flask/").text == "Hello from Flask, mounted at /flask/\n"
            moved = client.get("/flask/old")
            assert moved.status_code == 302
            assert moved.headers["location"] == "/flask/"

            django = client.get("/django/")
            assert django.status_code == 200
            assert "this view is at /django/ (SCRIPT_NAME='/django')" in django.text

            starlette = client.get("/starlette/")
            assert starlette.json() == {
                "message": "Hello from Starlette, with state from its lifespan",
                "url": f"http://127.0.0.1:{port}/starlette/",
            }
            assert client.get("/elsewhere").status_code == 404
        output = log.read_text()
    assert "http://127.0.0.1:" in output  # the URLs are printed for the user
    assert "ERROR" not in output
