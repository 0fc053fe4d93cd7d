"""A real Django project (tests/integration/apps_django) served through
crossgate.wsgi_to_asgi on uvicorn with each of its HTTP/1.1 parsers, h11 and httptools,
driven by httpx over 127.0.0.1 as a browser would: the admin login, a CSRF-protected form,
a session kept in the database across requests, and a multipart upload checked by SHA-256.

Django writes each Set-Cookie value with a leading space (``SimpleCookie.output(header="")``)
and h11 refuses such a value ("Illegal header value"), closing the connection without an
answer: on h11, every page that sets the CSRF or session cookie depends on crossgate
stripping surrounding whitespace from header values (RFC 9110 5.5).

The database is an SQLite file in a temporary directory, migrated and given a superuser
with Django's own commands before the first server starts. Each test also requires that
the server logged no traceback, and a failing one shows what the server logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.apps_django import DB_ENV, SETTINGS
from tests.integration.support import REPO, free_port, serve, uvicorn_argv

pytestmark = pytest.mark.integration

USER, PASSWORD = "admin", "crossgate-admin-password"
PARSERS = ("h11", "httptools")
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _django_env(database: Path) -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": SETTINGS, DB_ENV: str(database)}


def _manage(database: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """Run ``python -m django <args>`` on the project, as its deployment would."""
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        **_django_env(database),
        **(env or {}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, f"django {' '.join(args)}:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database, migrated, with a superuser."""
    path = tmp_path_factory.mktemp("django-deployed") / "db.sqlite3"
    _manage(path, "migrate", "--noinput")
    _manage(
        path,
        "createsuperuser",
        "--noinput",
        "--username",
        USER,
        "--email",
        "admin@example.com",
        env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    return path


@dataclass
class Site:
    parser: str
    url: str
    log: Path
    #: How much of the log the tests have seen.
    seen: int = 0

    def client(self) -> httpx.Client:
        """A browser of its own: its own cookies and connections."""
        return httpx.Client(base_url=self.url, timeout=20)

    def new_log(self) -> str:
        text = self.log.read_text(errors="replace")
        new, self.seen = text[self.seen :], len(text)
        return new

    @contextlib.contextmanager
    def watched(self) -> Iterator[None]:
        """Show what the server logged when the block fails; fail on a logged traceback."""
        try:
            yield
        except BaseException as exc:
            exc.add_note(f"uvicorn --http {self.parser} logged:\n{self.new_log()}")
            raise
        log = self.new_log()
        assert "Traceback" not in log, log


@pytest.fixture(scope="module", params=PARSERS)
def site(request: pytest.FixtureRequest, database: Path) -> Iterator[Site]:
    parser: str = request.param
    port = free_port()
    argv = uvicorn_argv(
        "tests.integration.apps_django.asgi:application",
        port,
        "--http",
        parser,
        "--lifespan",
        "on",
        "--log-level",
        "warning",
    )
    with serve(argv, port, env=_django_env(database)) as log:
        yield Site(parser, f"http://127.0.0.1:{port}", log)


@pytest.fixture
def browser(site: Site) -> Iterator[httpx.Client]:
    with site.client() as client:
        yield client


def csrf_form(browser: httpx.Client, path: str) -> str:
    """GET the form at ``path``; the CSRF token in its hidden field (the cookie is set)."""
    page = browser.get(path)
    assert page.status_code == 200, page.text
    assert "csrftoken" in browser.cookies
    match = CSRF_FIELD.search(page.text)
    assert match is not None, page.text
    return match.group(1)


def test_admin_login_and_logout(site: Site, browser: httpx.Client) -> None:
    with site.watched():
        to_login = browser.get("/admin/")
        assert to_login.status_code == 302
        assert to_login.headers["location"] == "/admin/login/?next=/admin/"

        token = csrf_form(browser, "/admin/login/?next=/admin/")
        wrong = browser.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": USER, "password": "wrong"},
        )
        assert wrong.status_code == 200
        assert "Please enter the correct username and password" in wrong.text

        signed_in = browser.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token,
                "username": USER,
                "password": PASSWORD,
                "next": "/admin/",
            },
        )
        assert signed_in.status_code == 302, signed_in.text
        assert signed_in.headers["location"] == "/admin/"
        assert "sessionid" in browser.cookies

        index = browser.get("/admin/")
        assert index.status_code == 200
        assert "Site administration" in index.text
        assert browser.get("/whoami").text == USER
        users = browser.get("/admin/auth/user/")
        assert users.status_code == 200
        assert USER in users.text

        # Logging out is a POST with the token Django rotated at login.
        logout_token = csrf_form(browser, "/admin/password_change/")
        logged_out = browser.post("/admin/logout/", data={"csrfmiddlewaretoken": logout_token})
        assert logged_out.status_code == 200
        assert browser.get("/whoami").text == "anonymous"
        assert browser.get("/admin/").status_code == 302


def test_csrf_protected_form(site: Site, browser: httpx.Client) -> None:
    with site.watched():
        token = csrf_form(browser, "/note")
        noted = browser.post("/note", data={"csrfmiddlewaretoken": token, "text": "Grüße"})
        assert noted.status_code == 200
        assert noted.text == "noted: Grüße"

        # The cookie alone does not do: Django wants the token in the form (or a header).
        refused = browser.post("/note", data={"text": "forged"})
        assert refused.status_code == 403
        with site.client() as stranger:  # neither cookie nor field
            assert stranger.post("/note", data={"text": "forged"}).status_code == 403


def test_session_persists_across_requests(site: Site, browser: httpx.Client) -> None:
    with site.watched():
        assert [browser.get("/visits").text for _ in range(3)] == ["1", "2", "3"]
        assert "sessionid" in browser.cookies
        with site.client() as other:  # another browser has a session of its own
            assert other.get("/visits").text == "1"
        assert browser.get("/visits").text == "4"


def test_multipart_upload_content_checked(site: Site, browser: httpx.Client) -> None:
    # Django keeps the files of a request in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB
    # for the whole body), else writes them to temporary files: one upload of each kind.
    uploads = [(100_000, "InMemoryUploadedFile"), (3 * 1024 * 1024, "TemporaryUploadedFile")]
    with site.watched():
        token = csrf_form(browser, "/upload")
        for size, kept in uploads:
            # Random bytes: any CR, LF or boundary-like run must reach the view unchanged.
            data = os.urandom(size)
            digest = hashlib.sha256(data).hexdigest()
            response = browser.post(
                "/upload",
                data={"csrfmiddlewaretoken": token, "sha256-file": digest},
                files=[("file", ("naïve.bin", data, "application/octet-stream"))],
            )
            assert response.status_code == 200, response.text
            assert response.json()["files"] == [
                {
                    "field": "file",
                    "name": "naïve.bin",
                    "size": size,
                    "sha256": digest,
                    "match": True,
                    "kept": kept,
                }
            ]
