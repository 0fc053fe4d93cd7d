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
