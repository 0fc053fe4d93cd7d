"""examples/django_orm: FastAPI endpoints using the Django ORM through crossgate, run as
its docstring says, on 127.0.0.1: the ORM calls of each request share one thread, and no
connection stays open once the requests are answered (CONN_MAX_AGE=0)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.support import free_port, serve

pytestmark = pytest.mark.integration

REQUESTS = 24


async def _post_many(base: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        responses = await asyncio.gather(
            *(client.post("/notes", params={"text": f"note {i}"}) for i in range(REQUESTS))
        )
    return [response.raise_for_status().json() for response in responses]


def _open(base: str) -> int:
    count: int = httpx.get(f"{base}/connections", timeout=10).json()["open"]
    return count


@pytest.mark.timeout(60)
def test_django_orm_example(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"CROSSGATE_EXAMPLE_DB": str(tmp_path / "notes.sqlite3")}
    with serve(["examples.django_orm", "--port", str(port)], port, env=env) as log:
        created = asyncio.run(_post_many(base))
        assert all(note["same_thread"] for note in created)
        listing = httpx.get(f"{base}/notes", timeout=10).json()
        assert sorted(n["text"] for n in listing["notes"]) == sorted(
            f"note {i}" for i in range(REQUESTS)
        )
        deadline = time.monotonic() + 5
        while _open(base) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _open(base) == 0
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text
