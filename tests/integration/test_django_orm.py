"""Django async views on uvicorn calling the ORM through ``crossgate.sync_to_async``: the
calls of a request share one thread and one connection, and connections are closed by
Django's own rules (``CONN_MAX_AGE=0``: none stays open once the requests are answered) or
reused and never leaked (``CONN_MAX_AGE>0``), on SQLite and on a real PostgreSQL server.

The project is tests/integration/apps_orm, served as Django's own ``ASGIHandler``
(asgiref's ``ThreadSensitiveContext`` per request: crossgate's calls join it) and mounted in
``crossgate.dispatch`` (crossgate's context per request, which Django's joins). Open
connections are counted from the server's side on PostgreSQL (``pg_stat_activity``) and
as the process's file descriptors on the SQLite file. The PostgreSQL server is a cluster
of its own on 127.0.0.1 (scripts/_postgres.sh, which installs Debian's ``postgresql``
when missing), started once for the session and stopped by its PID.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.apps_orm import ENV, SETTINGS
from tests.integration.support import REPO, free_port, serve, uvicorn_argv

pytestmark = pytest.mark.integration

REQUESTS = 36  # concurrent requests per burst
CALLS = 4  # ORM calls per request
DATABASE = "crossgate_orm"


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster of its own on 127.0.0.1, stopped by its PID at the end."""
    script = REPO / "scripts" / "_postgres.sh"
    started = subprocess.run(
        ["bash", str(script), "start", str(free_port())],
        capture_output=True,
        text=True,
        timeout=300,  # the first run may install Debian's postgresql
        check=False,
    )
    assert started.returncode == 0, started.stderr
    fields = dict(item.split("=", 1) for item in started.stdout.split())
    server = Postgres(int(fields["PGPORT"]), fields["PGUSER"])
    try:
        with psycopg.connect(**_admin(server), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        yield server
    finally:
        subprocess.run(
            ["bash", str(script), "stop", fields["PGDIR"], fields["PGPID"]],
            timeout=30,
            check=False,
        )


def _admin(server: Postgres) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port, "user": server.user, "dbname": "postgres"}


def _pg_sessions(server: Postgres) -> int:
    """Sessions open on the test database, as the server counts them."""
    with psycopg.connect(**_admin(server)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (DATABASE,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--run-syncdb", "-v", "0"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": SETTINGS, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def pg_env(postgres: Postgres) -> dict[str, str]:
    env = {
        ENV["engine"]: "postgresql",
        ENV["name"]: DATABASE,
        ENV["port"]: str(postgres.port),
        ENV["user"]: postgres.user,
    }
    _migrate(env)
    return env


@pytest.fixture(scope="session")
def sqlite_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {
        ENV["engine"]: "sqlite",
        ENV["name"]: str(tmp_path_factory.mktemp("orm") / "orm.sqlite3"),
    }
    _migrate(env)
    return env


async def _burst(base: str) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.get("/orm", params={"calls": CALLS}) for _ in range(REQUESTS))
        )
    for response in responses:
        assert response.status_code == 200, response.text
    return [response.json() for response in responses]


def _settle(count: Callable[[], int], want: Callable[[int], bool]) -> int:
    """``count()`` once ``want`` holds of it, or its last value after 5 s."""
    deadline = time.monotonic() + 5
    value = count()
    while not want(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = count()
    return value


TARGETS = {
    "django-asgi": "tests.integration.apps_orm.asgi:application",
    "dispatch": "tests.integration.apps_orm.asgi:dispatched",
}


def _run(
    target: str, env: dict[str, str], max_age: int, open_connections: Callable[[str], int]
) -> tuple[list[dict[str, Any]], int]:
    """Serve ``target``, send two bursts of requests; their answers, and the connections
    still open once the last one is answered."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = uvicorn_argv(TARGETS[target], port, "--lifespan", "off", "--log-level", "warning")
    full_env = {**env, ENV["max_age"]: str(max_age), "DJANGO_SETTINGS_MODULE": SETTINGS}
    with serve(argv, port, env=full_env) as log:
        answers = asyncio.run(_burst(base)) + asyncio.run(_burst(base))
        want: Callable[[int], bool] = (lambda n: n == 0) if max_age == 0 else (lambda n: True)
        left = _settle(lambda: open_connections(base), want)
        assert "Traceback" not in log.read_text(errors="replace")
    return answers, left


def _check_answers(answers: list[dict[str, Any]]) -> set[object]:
    for answer in answers:
        assert len(answer["threads"]) == 1, f"a request's ORM calls ran on {answer['threads']}"
        assert len(answer["sessions"]) == 1, f"a request used {answer['sessions']}"
        # The thread of Django's own thread-sensitive work (its request_started signal).
        assert answer["threads"] == [answer["django_thread"]]
    return {answer["sessions"][0] for answer in answers}


def _sqlite_fds(base: str) -> int:
    fds: int = httpx.get(f"{base}/fds", timeout=10).json()["fds"]
    return fds


@pytest.mark.timeout(90)
@pytest.mark.parametrize("target", list(TARGETS))
def test_sqlite_connections_closed_after_requests(sqlite_env: dict[str, str], target: str) -> None:
    answers, left = _run(target, sqlite_env, 0, _sqlite_fds)
    _check_answers(answers)
    assert left == 0, f"{left} file descriptors still open on the SQLite database"


@pytest.mark.timeout(90)
def test_sqlite_connections_reused_with_max_age(sqlite_env: dict[str, str]) -> None:
    answers, left = _run("dispatch", sqlite_env, 60, _sqlite_fds)
    sessions = _check_answers(answers)
    # Two bursts of REQUESTS requests: connections were reused, not one per request.
    assert len(sessions) <= REQUESTS + 4, f"{len(sessions)} connections for {len(answers)}"
    assert left <= 3 * (REQUESTS + 4)  # the file, -wal and -shm per connection at most


@pytest.mark.timeout(90)
@pytest.mark.parametrize("target", list(TARGETS))
def test_postgres_connections_closed_after_requests(
    postgres: Postgres, pg_env: dict[str, str], target: str
) -> None:
    answers, left = _run(target, pg_env, 0, lambda base: _pg_sessions(postgres))
    sessions = _check_answers(answers)
    assert len(sessions) == len(answers)  # CONN_MAX_AGE=0: a connection per request
    assert left == 0, f"{left} PostgreSQL sessions still open after every request ended"


@pytest.mark.timeout(90)
def test_postgres_connections_reused_never_leaked_with_max_age(
    postgres: Postgres, pg_env: dict[str, str]
) -> None:
    answers, left = _run("dispatch", pg_env, 60, lambda base: _pg_sessions(postgres))
    sessions = _check_answers(answers)
    assert len(sessions) <= REQUESTS + 4, f"{len(sessions)} sessions for {len(answers)}"
    assert 1 <= left <= len(sessions)
