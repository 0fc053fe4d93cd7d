"""examples/migrate on uvicorn: FastAPI answers the moved routes and Flask the rest, under
the URLs Flask's url_for builds; the session cookie is shared both ways; one lifespan
reaches both apps."""

from __future__ import annotations

import httpx
import pytest

from crossgate import lifespan
from tests.integration.support import free_port, serve, uvicorn_argv

TIMEOUT = 10.0


def _check(base: str) -> None:
    with httpx.Client(base_url=base, timeout=TIMEOUT, follow_redirects=False) as client:
        index = client.get("/").json()
        assert index["framework"] == "flask"
        assert (index["user"], index["theme"]) == (None, "light")
        # Flask's url_for still builds the moved route's URL; FastAPI answers it.
        assert (index["profile"], index["avatar"]) == ("/users/7", "/users/7/avatar")
        moved = client.get(index["profile"]).json()
        assert moved == {
            "framework": "fastapi",
            "user_id": 7,
            "viewer": None,
            "greeting": "hello from FastAPI's lifespan",
            "self": f"{base}/users/7",
        }
        assert client.get(index["avatar"]).json()["framework"] == "flask"

        # A login on the Flask side (a form POST: its body replayed past FastAPI's 404)...
        login = client.post("/login", data={"user": "ada"})
        assert (login.status_code, login.headers["location"]) == (302, "/")
        assert "session" in client.cookies
        # ... holds on the FastAPI side, and FastAPI's write holds on the Flask side.
        assert client.get("/users/7").json()["viewer"] == "ada"
        assert client.post("/preferences", params={"theme": "dark"}).json()["theme"] == "dark"
        index = client.get("/").json()
        assert (index["user"], index["theme"]) == ("ada", "dark")
        assert client.get("/users/7/avatar").json()["viewer"] == "ada"
        assert index["visits"] == 2  # the Flask side's startup hook opened its counter

        assert client.get("/nowhere").status_code == 404


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_the_migration_example_on_uvicorn() -> None:
    port = free_port()
    argv = uvicorn_argv("examples.migrate.app:app", port, "--lifespan", "on")
    with serve(argv, port) as log:
        _check(f"http://127.0.0.1:{port}")
        text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert "ERROR" not in text, text
    assert "Application startup complete." in text


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_the_migration_example_runs_as_a_module() -> None:
    port = free_port()
    with serve(["examples.migrate", "--port", str(port)], port) as log:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as client:
            assert client.get("/users/1").json()["framework"] == "fastapi"
            assert client.get("/users/1/avatar").json()["framework"] == "flask"
        assert "Traceback" not in log.read_text(errors="replace")


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_one_lifespan_opens_and_closes_both_apps_resources() -> None:
    from examples.migrate import app as example  # noqa: PLC0415 - imports Flask, FastAPI
    from examples.migrate.legacy import legacy  # noqa: PLC0415

    async with lifespan(example.app):
        assert legacy.extensions["visits"].open
    assert not legacy.extensions["visits"].open
