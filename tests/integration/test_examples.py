"""Every example in examples/ runs: started on 127.0.0.1 as its docstring says, fetched
with httpx (and the same app through `crossgate serve`)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import httpx
import pytest

from crossgate import lifespan
from tests.integration.support import free_port, serve

TIMEOUT = 10.0


def _base(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _assert_clean(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "ERROR" not in text, text
    assert "Traceback" not in text, text


# --------------------------------------------------------------------------------------------
# flask_in_fastapi
# --------------------------------------------------------------------------------------------


def _check_flask_in_fastapi(port: int) -> None:
    with httpx.Client(base_url=_base(port), timeout=TIMEOUT) as client:
        index = client.get("/").json()
        assert index["framework"] == "fastapi"
        assert index["greeting"] == "hello from FastAPI"  # FastAPI's lifespan state
        # Both lifespans ran: FastAPI's, and through it the mounted Flask app's hooks.
        assert client.get("/status").json() == {"fastapi_started": True, "flask_started": True}

        legacy = client.get("/legacy/").json()
        assert legacy == {
            "framework": "flask",
            "script_root": "/legacy",
            "path": "/",
            "hits_url": "/legacy/hits",
        }
        assert client.post("/legacy/hits").json() == {"hits": 1}
        assert client.post("/legacy/hits").json() == {"hits": 2}
        assert client.get("/legacy/hits").json() == {"hits": 2}
        assert client.get("/legacy/nowhere").status_code == 404


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_flask_in_fastapi_runs_as_a_script() -> None:
    port = free_port()
    with serve(["examples.flask_in_fastapi", "--port", str(port)], port) as log:
        _check_flask_in_fastapi(port)
        _assert_clean(log)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_flask_in_fastapi_runs_under_crossgate_serve() -> None:
    port = free_port()
    argv = ["crossgate", "serve", "examples.flask_in_fastapi:app", "--port", str(port)]
    with serve(argv, port) as log:
        _check_flask_in_fastapi(port)
        _assert_clean(log)


@pytest.mark.anyio
async def test_flask_in_fastapi_lifespan_opens_and_closes_the_mounted_apps_resource() -> None:
    from examples import flask_in_fastapi as example  # noqa: PLC0415 - imports Flask, FastAPI

    async with lifespan(example.app) as state:
        assert state["greeting"] == "hello from FastAPI"
        counter = example.flask_app.extensions["hit_counter"]
        assert not counter.closed
    assert counter.closed
    assert "hit_counter" not in example.flask_app.extensions


# --------------------------------------------------------------------------------------------
# django_on_uvicorn
# --------------------------------------------------------------------------------------------


def _csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None, page
    return match.group(1)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_django_on_uvicorn_form_upload_and_stream(tmp_path: Path) -> None:
    port = free_port()
    env = {"CROSSGATE_EXAMPLE_DB": str(tmp_path / "db.sqlite3")}
    with (
        serve(["examples.django_on_uvicorn", "--port", str(port)], port, env=env) as log,
        httpx.Client(base_url=_base(port), timeout=TIMEOUT) as client,
    ):
        # The form: Django sets the csrftoken cookie and puts a token in a hidden input.
        page = client.get("/")
        assert page.status_code == 200
        assert "(no notes yet)" in page.text
        assert client.cookies.get("csrftoken")
        token = _csrf_token(page.text)

        created = client.post(
            "/", data={"text": "made through crossgate", "csrfmiddlewaretoken": token}
        )
        assert created.status_code == 302
        assert created.headers["location"] == "/"
        listed = client.get("/")
        assert "<li>made through crossgate</li>" in listed.text

        # Without the token (and cookie) the CSRF middleware refuses the POST.
        with httpx.Client(base_url=_base(port), timeout=TIMEOUT) as stranger:
            assert stranger.post("/", data={"text": "forged"}).status_code == 403
        assert "forged" not in client.get("/").text

        # A multipart upload larger than Django's in-memory limit (2.5 MB): streamed in.
        data = os.urandom(3 * 1024 * 1024 + 17)
        uploaded = client.post(
            "/upload/",
            data={"csrfmiddlewaretoken": token},
            files={"file": ("blob.bin", data, "application/octet-stream")},
        )
        assert uploaded.status_code == 200
        assert uploaded.json() == {
            "name": "blob.bin",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

        # The StreamingHttpResponse arrives chunked, every line in order.
        with client.stream("GET", "/stream/", params={"lines": "2000"}) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers.get("transfer-encoding") == "chunked"
            lines = [line for line in streamed.iter_lines() if line]
        assert lines == [f"line {i} of 2000" for i in range(1, 2001)]
        _assert_clean(log)


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "attribute",
    [
        "app",  # the WSGI handler wrapped by the example, migrating at lifespan startup
        "application",  # Django's WSGI handler: crossgate serve wraps it
        "django_asgi",  # Django's ASGI handler, which raises on the lifespan scope
    ],
)
def test_django_under_crossgate_serve_logs_no_lifespan_error(
    attribute: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {"CROSSGATE_EXAMPLE_DB": str(tmp_path / "db.sqlite3")}
    argv = ["crossgate", "serve", f"examples.django_on_uvicorn:{attribute}", "--port", str(port)]
    with serve(argv, port, env=env) as log:
        response = httpx.get(f"{_base(port)}/stream/", params={"lines": "3"}, timeout=TIMEOUT)
        assert response.text == "line 1 of 3\nline 2 of 3\nline 3 of 3\n"
        text = log.read_text()
        assert "on uvicorn at" in text
        assert "Application startup complete." in text
        _assert_clean(log)


# --------------------------------------------------------------------------------------------
# fastapi_on_gunicorn
# --------------------------------------------------------------------------------------------


def _check_fastapi_on_gunicorn(port: int) -> None:
    with httpx.Client(base_url=_base(port), timeout=TIMEOUT) as client:
        first = client.get("/pool").json()
        second = client.get("/pool").json()
        # One pool per worker process, made by the lifespan, reused by every request on
        # the loop it was made on.
        assert first["pool_id"] == second["pool_id"]
        assert (first["uses"], second["uses"]) == (1, 2)
        assert first["same_loop"]
        assert second["same_loop"]
        assert first["pid"] == second["pid"] != os.getpid()

        body = "é" * 100_000
        echoed = client.post("/echo", content=body.encode())
        assert echoed.json() == {"size": len(body.encode()), "text": body}


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_fastapi_on_gunicorn_runs_as_a_script() -> None:
    port = free_port()
    with serve(["examples.fastapi_on_gunicorn", "--port", str(port)], port) as log:
        _check_fastapi_on_gunicorn(port)
        text = log.read_text()
        assert "Using worker: gthread" in text
        assert "fastapi_on_gunicorn: pool " in text  # opened by the post_worker_init hook
        _assert_clean(log)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_fastapi_on_gunicorn_runs_under_crossgate_serve() -> None:
    port = free_port()
    argv = [
        "crossgate",
        "serve",
        "examples.fastapi_on_gunicorn:app",
        "--server",
        "gunicorn",
        "--port",
        str(port),
    ]
    with serve(argv, port) as log:
        _check_fastapi_on_gunicorn(port)
        _assert_clean(log)
