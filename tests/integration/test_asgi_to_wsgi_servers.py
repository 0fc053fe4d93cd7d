"""FastAPI, Quart and Quart-Trio apps through crossgate on real WSGI servers (gunicorn
sync and gthread, waitress, granian's WSGI interface, uWSGI prefork and with lazy apps,
mod_wsgi), driven by httpx over 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.apps_asgi import BLOCK
from tests.integration.support import free_port, gunicorn_argv, serve

pytestmark = pytest.mark.integration

APPS = {
    "fastapi": "tests.integration.apps_asgi.fastapi_app:application",
    "quart": "tests.integration.apps_asgi.quart_app:application",
    # asgi_to_wsgi(backend="trio"): the app runs on the per-process trio portal.
    "quart-trio": "tests.integration.apps_trio.quart_trio_app:application",
}
HOST = "127.0.0.1"
#: The venv's own commands (uwsgi, mod_wsgi-express), which are not ``python -m`` modules.
BIN = Path(sys.executable).parent


@dataclass
class Server:
    name: str
    url: str
    markers: Path
    workers: int
    #: Where the app reports events (see apps_asgi.notify).
    events: socket.socket
    kind: Kind

    def next_event(self, timeout: float = 20.0) -> str:
        """Block until the app reports an event (no polling, no sleeping)."""
        self.events.settimeout(timeout)
        conn, _ = self.events.accept()
        with conn, conn.makefile("rb") as stream:
            conn.settimeout(timeout)
            return stream.readline().decode().strip()


@dataclass(frozen=True)
class Kind:
    """How to run one WSGI server with two workers (processes or threads)."""

    #: The command line for (app "module:name", port, a scratch directory of its own).
    argv: Callable[[str, int, Path], list[str]]
    workers: int
    #: False: ``argv`` is a command of its own, not a ``python -m`` module.
    module: bool = True
    #: Why the server never runs crossgate's lifespan shutdown (at interpreter exit) when
    #: it stops; None: every worker that started the app's lifespan shuts it down.
    no_shutdown: str | None = None
    #: Why the app cannot read a chunked request body there; None: it can.
    no_chunked_upload: str | None = None
    #: Stop by SIGTERM to the whole process group (True) or to the main process alone.
    stop_group: bool = True
    #: Waits, given the scratch directory, until no worker is in a request: where a
    #: worker stopped mid-request skips the shutdown, the test stops an idle server.
    settle: Callable[[Path], None] | None = None


def _gunicorn(worker: str) -> Callable[[str, int, Path], list[str]]:
    def argv(app: str, port: int, scratch: Path) -> list[str]:
        # --preload: the app is imported before the fork, where nothing may start yet. A
        # sync worker gets one thread: with more, gunicorn runs gthread in its place.
        threads = 1 if worker == "sync" else 2
        return gunicorn_argv(
            app, port, workers=2, worker_class=worker, threads=threads, extra=["--preload"]
        )

    return argv


def _waitress(app: str, port: int, scratch: Path) -> list[str]:
    return ["waitress", f"--listen={HOST}:{port}", "--threads=4", app]


def _granian(app: str, port: int, scratch: Path) -> list[str]:
    # Each worker process imports the app itself; a worker calls it from its blocking
    # threads.
    return [
        "granian",
        "--interface=wsgi",
        f"--host={HOST}",
        f"--port={port}",
        "--workers=2",
        "--blocking-threads=2",
        "--no-ws",
        "--log-level=warning",
        app,
    ]


def _uwsgi(*, lazy: bool) -> Callable[[str, int, Path], list[str]]:
    def argv(app: str, port: int, scratch: Path) -> list[str]:
        # Without --lazy-apps the master imports the app and forks its workers, where
        # nothing may have started yet; with it, each worker imports the app itself.
        return [
            str(BIN / "uwsgi"),
            "--strict",
            f"--http-socket={HOST}:{port}",
            f"--virtualenv={sys.prefix}",
            f"--module={app}",
            "--need-app",
            "--master",
            "--processes=2",
            "--threads=2",
            "--enable-threads",
            # uWSGI 2.0 reloads on SIGTERM unless told to stop.
            "--die-on-term",
            # A worker stuck at exit gets SIGKILL after 8 s, within serve()'s stop timeout.
            "--worker-reload-mercy=8",
            "--disable-logging",
            f"--stats={scratch / 'stats.sock'}",
            # --http-socket answers HTTP/1.1 without keep-alive, yet says nothing: a client
            # reusing the connection would meet a reset.
            "--add-header=Connection: close",
            *(["--lazy-apps"] if lazy else []),
        ]

    return argv


def _uwsgi_settle(scratch: Path) -> None:
    """Wait until uWSGI's stats server shows every core of every worker out of a request.

    A uWSGI worker skips Python's atexit when stopped while busy (uwsgi_python_atexit:
    "if busy do not run atexit hooks"); the client has its answer a moment before the
    worker's thread leaves the request, so the test waits for that moment."""
    deadline = time.monotonic() + 10
    while True:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(scratch / "stats.sock"))
            stats = json.loads(b"".join(iter(lambda: sock.recv(65536), b"")))
        busy = [
            worker["pid"]
            for worker in stats["workers"]
            if any(core["in_request"] for core in worker["cores"])
        ]
        if not busy:
            return
        assert time.monotonic() < deadline, f"uWSGI workers {busy} stayed in a request"
        time.sleep(0.05)


def _mod_wsgi(app: str, port: int, scratch: Path) -> list[str]:
    module, _, name = app.partition(":")
    # Apache refuses to run as root and mod_wsgi refuses root daemons, yet the daemons
    # must read this Python (under /root with pyenv). As root, run them in a user namespace
    # where they are uid 1000, mapped to root outside: no setuid, and files stay readable.
    userns = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    return [
        *(userns if os.geteuid() == 0 else []),
        str(BIN / "mod_wsgi-express"),
        "start-server",
        "--application-type=module",
        f"--entry-point={module}",
        f"--callable-object={name}",
        f"--host={HOST}",
        f"--port={port}",
        f"--server-root={scratch}",
        "--processes=2",
        "--threads=2",
        "--chunked-request",
        "--locale=C.UTF-8",
        "--log-to-terminal",
    ]


UWSGI_CHUNKED = (
    "uWSGI's wsgi.input is empty for a chunked request body: only its own API "
    "(uwsgi.chunked_read) reads one"
)
SERVERS = {
    "gunicorn-sync": Kind(_gunicorn("sync"), 2),
    "gunicorn-gthread": Kind(_gunicorn("gthread"), 2),
    "waitress": Kind(
        _waitress,
        1,
        no_shutdown="waitress-serve does not handle SIGTERM: the process dies without running "
        "atexit (docs/deployment-waitress.md has the recipe, test_waitress_sigterm_recipe "
        "its test)",
    ),
    "granian": Kind(
        _granian,
        2,
        no_shutdown="granian's workers are multiprocessing processes forked by the main one: "
        "when one stops, multiprocessing ends it with os._exit(), which runs no atexit "
        "(test_granian_finalize_recipe runs the shutdown from a multiprocessing finalizer)",
    ),
    # A uWSGI worker runs Python's atexit (so crossgate's lifespan shutdown) from the C
    # exit() of its signal handler, unless it is busy with a request then (or --skip-atexit).
    # Signalled twice, by SIGTERM to the group and then by the master's SIGINT, it calls
    # exit() again in the middle of the first and is gone before the shutdown ran. So the
    # master alone gets SIGTERM, as from Docker or systemd's KillMode=mixed.
    "uwsgi-prefork": Kind(
        _uwsgi(lazy=False),
        2,
        module=False,
        no_chunked_upload=UWSGI_CHUNKED,
        stop_group=False,
        settle=_uwsgi_settle,
    ),
    "uwsgi-lazy-apps": Kind(
        _uwsgi(lazy=True),
        2,
        module=False,
        no_chunked_upload=UWSGI_CHUNKED,
        stop_group=False,
        settle=_uwsgi_settle,
    ),
    "mod_wsgi": Kind(_mod_wsgi, 2, module=False),
}


@pytest.fixture(
    scope="module",
    params=[(app, server) for app in APPS for server in SERVERS],
    ids=lambda pair: f"{pair[0]}-on-{pair[1]}",
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    app, name = request.param
    kind = SERVERS[name]
    markers = tmp_path_factory.mktemp(f"{app}-{name}")
    scratch = tmp_path_factory.mktemp(f"{app}-{name}-server")
    port = free_port()
    with socket.create_server(("127.0.0.1", 0)) as events:
        env = {
            "CROSSGATE_TEST_DIR": str(markers),
            "CROSSGATE_TEST_NOTIFY": f"127.0.0.1:{events.getsockname()[1]}",
        }
        argv = kind.argv(APPS[app], port, scratch)

        def check_shutdown() -> None:
            started = {p.name.split("-", 1)[1] for p in markers.glob("startup-*")}
            stopped = {p.name.split("-", 1)[1] for p in markers.glob("shutdown-*")}
            assert started
            if kind.no_shutdown is None:
                # Each worker that started its lifespan ran its shutdown at exit.
                assert started == stopped
            else:
                # Checked, so that this list learns when a server starts running it.
                assert not stopped, (
                    f"{name} ran the lifespan shutdown after all: {kind.no_shutdown}"
                )

        with serve(
            argv,
            port,
            env=env,
            module=kind.module,
            stop_group=kind.stop_group,
            after_stop=check_shutdown,
        ):
            assert not list(markers.glob("startup-*")), "lifespan ran before any request"
            yield Server(name, f"http://127.0.0.1:{port}", markers, kind.workers, events, kind)
            if kind.settle is not None:
                kind.settle(scratch)


def expected_download(size: int) -> bytes:
    return (BLOCK * (size // len(BLOCK) + 1))[:size]


def test_lifespan_state_is_visible_in_requests(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        pids = set()
        for _ in range(6):
            answer = client.get("/state").json()
            assert answer["open"] is True
            assert answer["same_loop"] is True  # startup and requests share the loop
            pids.add(answer["pid"])
    # Every worker that answered ran its own startup (a fork does not inherit it).
    started = {int(p.read_text()) for p in server.markers.glob("startup-*")}
    assert pids <= started


def test_streamed_download(server: Server) -> None:
    size = 8 * 1024 * 1024 + 123
    digest = hashlib.sha256()
    received = 0
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("GET", f"/download/{size}") as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(expected_download(size)).hexdigest()


def test_streamed_upload_with_content_length(server: Server) -> None:
    body = os.urandom(3 * 1024 * 1024 + 7)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/upload", content=body).json()
    assert answer == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_chunked_upload(server: Server) -> None:
    if server.kind.no_chunked_upload:
        pytest.skip(server.kind.no_chunked_upload)
    parts = [os.urandom(size) for size in (1, 70_000, 0, 5, 200_000, 65_536)]

    def chunks() -> Iterator[bytes]:
        yield from parts

    body = b"".join(parts)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/upload", content=chunks())
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_client_disconnecting_mid_stream_reaches_the_app(server: Server) -> None:
    token = f"{server.name}-{os.getpid()}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("GET", f"/endless/?{token}") as response:
            assert response.status_code == 200
            received = 0
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > 256 * 1024:
                    break
        # The connection was closed mid-body. The server notices on a write, closes the
        # iterable; the app's send() raises OSError and its receive() says disconnect.
        assert server.next_event() == f"disconnect-{token}-http.disconnect"
        # The worker is free again.
        assert client.get("/state").json()["open"] is True


def test_waitress_sigterm_recipe(tmp_path: Path) -> None:
    """docs/deployment-waitress.md: with the recipe's SIGTERM handler in the module it serves,
    waitress-serve leaves through a normal interpreter exit on SIGTERM, which runs the app's
    lifespan shutdown (without it, none runs: see the "waitress" server above)."""
    port = free_port()
    app = "tests.integration.apps_asgi.waitress_sigterm:application"
    argv = ["waitress", f"--listen={HOST}:{port}", "--threads=2", app]
    # stop_group=False: SIGTERM to waitress-serve's process, as a supervisor sends it; a
    # process still running after the stop timeout is killed, and leaves no marker.
    with serve(argv, port, env={"CROSSGATE_TEST_DIR": str(tmp_path)}, stop_group=False):
        with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30) as client:
            answer = client.get("/state").json()
        assert answer["open"] is True
        pid = answer["pid"]
        assert (tmp_path / f"startup-{pid}").exists()
        assert not (tmp_path / f"shutdown-{pid}").exists()
    assert (tmp_path / f"shutdown-{pid}").exists(), "SIGTERM skipped the lifespan shutdown"


def test_granian_finalize_recipe(tmp_path: Path) -> None:
    """granian runs no atexit in its workers (see the "granian" server above), but it runs
    ``multiprocessing``'s finalizers: one registered by the app module runs the shutdown."""
    port = free_port()
    app = "tests.integration.apps_asgi.granian_finalize:application"
    env = {"CROSSGATE_TEST_DIR": str(tmp_path)}
    with (
        serve(_granian(app, port, tmp_path), port, env=env),
        httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30) as client,
    ):
        assert client.get("/state").json()["open"] is True
    started = {p.name.split("-", 1)[1] for p in tmp_path.glob("startup-*")}
    stopped = {p.name.split("-", 1)[1] for p in tmp_path.glob("shutdown-*")}
    assert started
    assert started == stopped
