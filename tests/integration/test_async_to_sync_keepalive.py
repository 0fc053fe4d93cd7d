"""async_to_sync runs every call from plain sync code on one loop per process (the portal),
so an ``httpx.AsyncClient`` made once at module level and used from sync code keeps its
keep-alive connection across calls. asgiref's ``async_to_sync`` runs each such call on a
new loop: the pooled connection belongs to the closed loop of the call before, and the
next call fails with "Event loop is closed" (asgiref 3.13, httpx 0.28).

The server is uvicorn on 127.0.0.1 with an app that answers each request with the client's
port, so a reused connection shows as the same port.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from crossgate import async_to_sync
from tests.integration.support import free_port, serve, uvicorn_argv

pytestmark = pytest.mark.integration


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the port of the client's end of the connection."""
    if scope["type"] != "http":  # uvicorn's lifespan: nothing to start
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    port = str(scope["client"][1]).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(port)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": port})


@pytest.mark.timeout(60)
def test_a_module_level_async_client_keeps_its_connection_across_calls() -> None:
    port = free_port()
    target = "tests.integration.test_async_to_sync_keepalive:app"
    with serve(uvicorn_argv(target, port, "--log-level", "warning"), port):
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
        get = async_to_sync(client.get)
        try:
            ports = {get("/").text for _ in range(5)}
            # From other threads too: the same loop, so the same pooled connection.
            seen: list[str] = []
            threads = [
                threading.Thread(target=lambda: seen.append(get("/").text)) for _ in range(3)
            ]
            for thread in threads:
                thread.start()
                thread.join(10)
            ports.update(seen)
        finally:
            async_to_sync(client.aclose)()
    assert len(seen) == 3
    assert len(ports) == 1, f"the connection was not kept: client ports {sorted(ports)}"
