"""`crossgate serve`: finding the app, detecting its interface, refusing what a server
cannot do (one line, exit 2), and serving on every server for real.

The apps served by the subprocess tests live in this module (``tests.test_cli:...``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossgate import ASGIToWSGI, LifespanShim, WSGIToASGI, asgi_to_wsgi, cli, wsgi_to_asgi
from crossgate._types import Environ, Message, Receive, Send, StartResponse
from crossgate.cli import (
    LISTEN_FAILED,
    UsageError,
    _app,
    _gunicorn,
    detect_interface,
    import_app,
    main,
)
from crossgate.cli._parser import default_server
from tests.integration.support import REPO, free_port, serve

# --------------------------------------------------------------------------------------------
# Apps served by the subprocess tests
# --------------------------------------------------------------------------------------------

EVENTS_ENV = "CROSSGATE_TEST_EVENTS"
SERVERS = ["uvicorn", "hypercorn", "gunicorn", "waitress", "wsgiref"]


def _record(event: str) -> None:
    path = os.environ.get(EVENTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"{event} {os.getpid()}\n")


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answers with what it was given: SCRIPT_NAME, PATH_INFO and the request body."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    answer = {
        "interface": "wsgi",
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "body": body.decode(),
        "pid": os.getpid(),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


async def asgi_app(scope: Message, receive: Receive, send: Send) -> None:
    """An ASGI app with a lifespan that records its startup and shutdown."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started_pid"] = os.getpid()
                _record("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                _record("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = {
        "interface": "asgi",
        "root_path": scope.get("root_path", ""),
        "path": scope["path"],
        "body": body.decode(),
        "pid": os.getpid(),
        "started": scope.get("state", {}).get("started_pid") == os.getpid(),
    }
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


async def asgi_without_lifespan(scope: Message, receive: Receive, send: Send) -> None:
    """Raises on the lifespan scope, as Django's ASGIHandler does."""
    if scope["type"] != "http":
        raise ValueError(f"cannot handle {scope['type']!r}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no lifespan here"})


class ASGIInstance:
    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        await asgi_app(scope, receive, send)


class WSGIInstance:
    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return wsgi_app(environ, start_response)


class WSGIClass:
    """PEP 3333 allows a class as the application: calling it makes the iterable."""

    def __init__(self, environ: Environ, start_response: StartResponse) -> None:
        self.chunks = wsgi_app(environ, start_response)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)


class ASGI2Class:
    """An ASGI 2 "double callable": made with the scope, then called with receive, send."""

    def __init__(self, scope: Message) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await asgi_app(self.scope, receive, send)


def make_wsgi_app() -> WSGIInstance:
    """A factory, for --factory."""
    return WSGIInstance()


class Holder:
    inner = ASGIInstance()


holder = Holder()
application = wsgi_app  # what `tests.test_cli` (no attribute) would find, were there no `app`
not_an_app = 42


# --------------------------------------------------------------------------------------------
# Finding the app
# --------------------------------------------------------------------------------------------


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory for throwaway modules; sys.path and sys.modules are restored after."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def _module(directory: Path, name: str, source: str) -> str:
    (directory / f"{name}.py").write_text(source, encoding="utf-8")
    return name


def test_import_app_finds_a_dotted_attribute_path() -> None:
    assert import_app("tests.test_cli:holder.inner") is holder.inner


def test_import_app_defaults_to_app_then_application(app_dir: Path) -> None:
    both = _module(app_dir, "cg_both", "def app(e, s): pass\ndef application(e, s): pass\n")
    only = _module(app_dir, "cg_only", "def application(e, s): pass\n")
    assert import_app(both, app_dir=str(app_dir)).__name__ == "app"  # type: ignore[attr-defined]
    found = import_app(only, app_dir=str(app_dir))
    assert found.__name__ == "application"  # type: ignore[attr-defined]


def test_import_app_puts_app_dir_first_on_sys_path(app_dir: Path) -> None:
    name = _module(app_dir, "cg_here", "def app(e, s): pass\n")
    import_app(f"{name}:app", app_dir=str(app_dir))
    assert sys.path[0] == str(app_dir)


def test_import_app_calls_a_factory() -> None:
    assert isinstance(import_app("tests.test_cli:make_wsgi_app", factory=True), WSGIInstance)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("crossgate_no_such_module:app", "cannot import 'crossgate_no_such_module'"),
        ("tests.no_such_module:app", "cannot import 'tests.no_such_module'"),
        ("tests.test_cli:no_such_app", "module 'tests.test_cli' has no attribute 'no_such_app'"),
        ("tests.test_cli:holder.nope", "tests.test_cli:holder (a Holder) has no attribute 'nope'"),
        ("tests.test_cli:not_an_app", "is a int, not an ASGI or WSGI application"),
        ("tests.test_cli:holder..inner", "is not a dotted attribute path"),
        ("tests.test_cli:a:b", "is not of the form module:app"),
        (":app", "is not of the form module:app"),
        ("tests/test_cli.py:app", "is a file path; give a module name"),
        ("tests.test_cli:holder.1x", "is not a dotted attribute path"),
    ],
)
def test_import_app_explains_a_bad_spec(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        import_app(spec)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_import_app_reports_an_error_inside_the_module_with_its_place(app_dir: Path) -> None:
    name = _module(app_dir, "cg_broken", "x = 1\nraise RuntimeError('boom')\n")
    with pytest.raises(UsageError) as caught:
        import_app(f"{name}:app", app_dir=str(app_dir))
    text = str(caught.value)
    assert "importing 'cg_broken' failed: RuntimeError: boom" in text
    assert "cg_broken.py, line 2" in text


def test_import_app_tells_a_missing_dependency_from_a_missing_module(app_dir: Path) -> None:
    name = _module(app_dir, "cg_needs", "import crossgate_missing_dependency\n")
    with pytest.raises(UsageError, match="importing 'cg_needs' failed: ModuleNotFoundError"):
        import_app(f"{name}:app", app_dir=str(app_dir))


def test_import_app_reports_a_syntax_error_in_one_line(app_dir: Path) -> None:
    name = _module(app_dir, "cg_syntax", "def app(:\n")
    with pytest.raises(UsageError, match="importing 'cg_syntax' failed: SyntaxError") as caught:
        import_app(f"{name}:app", app_dir=str(app_dir))
    assert "\n" not in str(caught.value)


def test_import_app_reports_a_failing_factory(app_dir: Path) -> None:
    name = _module(app_dir, "cg_factory", "def make():\n    raise KeyError('config')\n")
    with pytest.raises(UsageError, match=r"the factory cg_factory:make\(\) failed: KeyError"):
        import_app(f"{name}:make", app_dir=str(app_dir), factory=True)


# --------------------------------------------------------------------------------------------
# Detecting the interface
# --------------------------------------------------------------------------------------------


def _django_asgi_handler() -> object:
    from django.core.handlers.asgi import ASGIHandler  # noqa: PLC0415

    return ASGIHandler.__new__(ASGIHandler)  # no settings needed to inspect the class


def _flask_app() -> object:
    from flask import Flask  # noqa: PLC0415

    return Flask("cli_detect")


def _fastapi_app() -> object:
    from fastapi import FastAPI  # noqa: PLC0415

    return FastAPI()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda: wsgi_app, "wsgi", id="function"),
        pytest.param(lambda: asgi_app, "asgi", id="async-function"),
        pytest.param(lambda: functools.partial(asgi_app), "asgi", id="partial-of-async"),
        pytest.param(ASGIInstance, "asgi", id="async-call-instance"),
        pytest.param(WSGIInstance, "wsgi", id="sync-call-instance"),
        pytest.param(lambda: WSGIClass, "wsgi", id="pep3333-class"),
        pytest.param(lambda: ASGI2Class, "asgi", id="asgi2-double-callable-class"),
        pytest.param(lambda: wsgi_to_asgi(wsgi_app), "asgi", id="WSGIToASGI"),
        pytest.param(lambda: asgi_to_wsgi(asgi_app), "wsgi", id="ASGIToWSGI"),
        pytest.param(_flask_app, "wsgi", id="flask"),
        pytest.param(_fastapi_app, "asgi", id="fastapi"),
        pytest.param(_django_asgi_handler, "asgi", id="django-asgi-handler"),
    ],
)
def test_detect_interface(make: Any, expected: str) -> None:
    assert detect_interface(make()) == expected


def test_detect_interface_does_not_guess() -> None:
    def takes_four(a: object, b: object, c: object, d: object) -> None: ...

    with pytest.raises(UsageError, match="say which with --interface asgi or --interface wsgi"):
        detect_interface(takes_four, "mod:takes_four")


# --------------------------------------------------------------------------------------------
# The command line, in process: every refusal is one line and exit status 2
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crossgate_no_such_module:app"], "cannot import 'crossgate_no_such_module'"),
        (
            ["tests.test_cli:wsgi_app", "--server", "waitress", "--workers", "2"],
            "--workers 2: waitress has no process manager",
        ),
        (
            ["tests.test_cli:wsgi_app", "--server", "wsgiref", "--workers", "3"],
            "--workers 3: wsgiref serves from one process",
        ),
        (["tests.test_cli:wsgi_app", "--server", "waitress", "--reload"], "waitress cannot reload"),
        (["tests.test_cli:wsgi_app", "--server", "wsgiref", "--reload"], "wsgiref cannot reload"),
        (
            ["tests.test_cli:wsgi_app", "--server", "uvicorn", "--reload", "--workers", "2"],
            "--reload runs one uvicorn worker",
        ),
        (
            ["tests.test_cli:wsgi_app", "--server", "wsgiref", "--threads", "8"],
            "wsgiref starts one thread per request",
        ),
        (
            ["tests.test_cli:asgi_app", "--server", "uvicorn", "--threads", "8"],
            "an ASGI app on uvicorn runs on the event loop",
        ),
        (["tests.test_cli:wsgi_app", "--root-path", "api"], "must start with '/'"),
    ],
)
def test_serve_refuses_in_one_line_with_status_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crossgate serve: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_serve_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "tests.test_cli:wsgi_app", "--workers", "0"])
    assert caught.value.code == 2
    assert "--workers: 0 is not at least 1" in capsys.readouterr().err


def test_without_uvicorn_the_default_server_is_the_standard_librarys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    assert default_server() == "uvicorn"

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "uvicorn" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert default_server() == "wsgiref"


def run_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m crossgate serve *args`` in a subprocess that must end by itself."""
    return subprocess.run(
        [sys.executable, "-m", "crossgate", "serve", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_console_script_is_crossgate_cli_main() -> None:
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name="crossgate")
    assert entry.load() is main


def test_python_m_crossgate_reports_a_bad_module_in_one_line() -> None:
    result = run_serve("crossgate_no_such_module:app")
    assert result.returncode == 2
    assert result.stderr == (
        "crossgate serve: error: cannot import 'crossgate_no_such_module': "
        "no module named 'crossgate_no_such_module'\n"
    )
    assert result.stdout == ""


# --------------------------------------------------------------------------------------------
# The command line, in process, with each server's entry point replaced by a recorder
# --------------------------------------------------------------------------------------------


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what a successful `main()` leaves behind: the env var, logger set-up, caches."""
    monkeypatch.delenv(_app.ENV, raising=False)
    monkeypatch.setattr(_app, "loaded", None)
    monkeypatch.setattr(_app, "adapter", None)
    saved = {}
    for name in ("crossgate", "waitress"):
        log = logging.getLogger(name)
        saved[name] = (list(log.handlers), log.propagate, log.level)
    yield
    for name, (handlers, propagate, level) in saved.items():
        log = logging.getLogger(name)
        log.handlers[:] = handlers
        log.propagate = propagate
        log.setLevel(level)


@pytest.mark.usefixtures("in_process")
def test_uvicorn_gets_a_factory_import_string_and_its_own_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn  # noqa: PLC0415

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    args = ["tests.test_cli:wsgi_app", "--server", "uvicorn", "--workers", "3"]
    assert main(["serve", *args, "--threads", "7", "--root-path", "/r/", "--port", "9"]) == 0
    ((target, options),) = calls
    assert target == "crossgate.cli:_served_app"
    assert options["factory"] is True
    assert options["workers"] == 3
    assert (options["host"], options["port"], options["root_path"]) == ("127.0.0.1", 9, "/r")
    assert options["lifespan"] == "auto"
    # What each worker process serves: the WSGI app wrapped, with --threads as its pool.
    served = cli._served_app()
    assert isinstance(served, WSGIToASGI)
    assert served.app is wsgi_app
    assert served.workers == 7


@pytest.mark.usefixtures("in_process")
def test_an_asgi_app_on_an_asgi_server_runs_inside_with_lifespan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn  # noqa: PLC0415

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    assert main(["serve", "tests.test_cli:asgi_without_lifespan", "--server", "uvicorn"]) == 0
    served = cli._served_app()
    assert isinstance(served, LifespanShim)
    assert served.app is asgi_without_lifespan
    # crossgate's own wrappers answer the lifespan already: served as they are.
    wrapped = wsgi_to_asgi(wsgi_app)
    monkeypatch.setattr(_app, "loaded", (os.getpid(), _app.Target.from_env(), wrapped, "asgi"))
    assert cli._served_app() is wrapped


@pytest.mark.usefixtures("in_process")
def test_hypercorn_serves_in_process_for_one_worker_and_spawns_for_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hypercorn.run  # noqa: PLC0415

    configs: list[Any] = []

    def run(config: Any) -> int:
        configs.append(config)
        return 0

    monkeypatch.setattr(hypercorn.run, "run", run)
    for workers in ("1", "2"):
        args = ["tests.test_cli:asgi_app", "--server", "hypercorn", "--workers", workers]
        assert main(["serve", *args, "--host", "::1", "--port", "9"]) == 0
    one, two = configs
    assert one.application_path == "asgi:crossgate.cli:_served_app()"
    assert one.bind == ["[::1]:9"]
    assert (one.workers, two.workers) == (0, 2)


@pytest.mark.usefixtures("in_process")
def test_gunicorn_gets_gthread_workers_and_serves_asgi_through_asgi_to_wsgi(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gunicorn.app.base import BaseApplication  # noqa: PLC0415

    apps: list[Any] = []

    def run(self: Any) -> None:
        apps.append(self)

    monkeypatch.setattr(BaseApplication, "run", run)
    args = ["tests.test_cli:asgi_app", "--server", "gunicorn", "--workers", "2", "--port", "9"]
    assert main(["serve", *args, "--root-path", "/api"]) == 0
    (application,) = apps
    cfg = application.cfg
    assert (cfg.workers, cfg.worker_class_str, cfg.threads) == (2, "gthread", 4)
    assert cfg.bind == ["127.0.0.1:9"]
    assert cfg.post_worker_init is _gunicorn.post_worker_init
    wsgi = application.load()  # what each worker serves, after fork
    assert isinstance(wsgi, _app.ScriptName)
    assert isinstance(wsgi.app, ASGIToWSGI)
    assert wsgi.app.app is asgi_app
    assert _app.adapter is wsgi.app


@pytest.mark.parametrize("server", SERVERS)
def test_a_port_in_use_is_one_line_and_status_3_before_the_app_starts(
    server: str, tmp_path: Path
) -> None:
    # Before: uvicorn ran the app's lifespan startup first, hypercorn printed a 23-line
    # traceback, gunicorn retried for five seconds; each its own message and status.
    events = tmp_path / "events"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(
            "tests.test_cli:asgi_app",
            "--server",
            server,
            "--port",
            str(port),
            env={EVENTS_ENV: str(events)},
        )
    assert result.returncode == LISTEN_FAILED == 3
    assert result.stderr == (
        f"crossgate serve: error: {server} cannot listen on 127.0.0.1:{port}: "
        "Address already in use\n"
    )
    assert not events.exists(), "the app's lifespan startup ran"


def test_script_name_prefixes_the_root_path_in_pep3333_native_strings() -> None:
    seen: dict[str, str] = {}

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.update(script=environ["SCRIPT_NAME"], path=environ["PATH_INFO"])
        return []

    environ = {"SCRIPT_NAME": "/mount", "PATH_INFO": "/x"}
    _app.ScriptName(app, "/café")(environ, lambda *args: lambda data: None)
    assert seen == {"script": "/café".encode().decode("latin-1") + "/mount", "path": "/x"}


# --------------------------------------------------------------------------------------------
# Serving for real: `python -m crossgate serve ...` on 127.0.0.1
# --------------------------------------------------------------------------------------------


def _serve(args: list[str], port: int, **kwargs: Any) -> Any:
    return serve(["crossgate", "serve", *args, "--port", str(port)], port, **kwargs)


def _wait_for_log(log: Path, text: str, count: int, timeout: float = 20.0) -> None:
    """Poll the server's log until ``text`` appears ``count`` times (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not {count} times in the log:\n{log.read_text()}")


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", SERVERS)
def test_serve_runs_a_wsgi_app_on(server: str) -> None:
    port = free_port()
    args = ["tests.test_cli:wsgi_app", "--server", server, "--root-path", "/api/"]
    with _serve(args, port) as log, httpx.Client(timeout=10) as client:
        response = client.post(f"http://127.0.0.1:{port}/hello", content=b"ping")
        assert response.status_code == 200
        answer = response.json()
        assert answer["interface"] == "wsgi"
        # --root-path is the prefix a proxy stripped: SCRIPT_NAME gains it, PATH_INFO stays.
        assert (answer["script_name"], answer["path_info"]) == ("/api", "/hello")
        assert answer["body"] == "ping"
        text = log.read_text()
        assert "serving tests.test_cli:wsgi_app (WSGI app, " in text
        assert f"on {server} at http://127.0.0.1:{port}/api/" in text


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", SERVERS)
def test_serve_runs_an_asgi_app_and_its_lifespan_on(server: str, tmp_path: Path) -> None:
    port = free_port()
    events = tmp_path / "events"
    args = ["tests.test_cli:asgi_app", "--server", server, "--root-path", "/api"]
    with _serve(args, port, env={EVENTS_ENV: str(events)}), httpx.Client(timeout=10) as client:
        response = client.post(f"http://127.0.0.1:{port}/hello", content=b"ping")
        assert response.status_code == 200
        answer = response.json()
        assert answer["interface"] == "asgi"
        assert answer["root_path"] == "/api"
        # uvicorn and asgi_to_wsgi put root_path in front of path (ASGI spec); hypercorn
        # passes the path as received.
        assert answer["path"] in ("/api/hello", "/hello")
        assert answer["body"] == "ping"
        assert answer["started"], "the lifespan startup ran in the serving process"
        pid = answer["pid"]
    # The startup ran before, and the shutdown after, serving, in the serving process.
    assert events.read_text().splitlines() == [f"startup {pid}", f"shutdown {pid}"]


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_serve_logs_nothing_about_lifespan_for_an_asgi_app_without_one(server: str) -> None:
    port = free_port()
    with _serve(["tests.test_cli:asgi_without_lifespan", "--server", server], port) as log:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert response.text == "no lifespan here"
        text = log.read_text()
    # with_lifespan answers the lifespan scope for the app, which raises on it.
    assert "unsupported" not in text
    assert "Lifespan error" not in text
    for level in ("WARNING", "ERROR", "Traceback"):
        assert level not in text


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_serve_defaults_to_uvicorn() -> None:
    port = free_port()
    with _serve(["tests.test_cli:wsgi_app"], port) as log:
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).json()["interface"] == "wsgi"
        assert "on uvicorn at" in log.read_text()


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("server", "booted"),
    [("gunicorn", "Booting worker with pid"), ("uvicorn", "Started server process")],
)
def test_serve_scales_out_with_the_servers_own_workers(server: str, booted: str) -> None:
    port = free_port()
    args = ["tests.test_cli:asgi_app", "--server", server, "--workers", "2"]
    with _serve(args, port) as log, httpx.Client(timeout=10) as client:
        for _ in range(4):
            answer = client.get(f"http://127.0.0.1:{port}/").json()
            assert answer["started"]
        _wait_for_log(log, booted, 2)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_serve_with_a_factory_and_reload_on_uvicorn() -> None:
    port = free_port()
    args = ["tests.test_cli:make_wsgi_app", "--factory", "--reload", "--server", "uvicorn"]
    with _serve(args, port) as log:
        answer = httpx.get(f"http://127.0.0.1:{port}/x", timeout=10).json()
        assert answer["interface"] == "wsgi"
        assert answer["pid"] != os.getpid()
        assert "Started reloader process" in log.read_text()


_VERSIONED = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{version}"]
"""


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_serve_reload_serves_the_changed_code(server: str, tmp_path: Path) -> None:
    module = tmp_path / f"cg_reloadable_{server}.py"
    module.write_text(_VERSIONED.format(version="v1"), encoding="utf-8")
    port = free_port()
    args = [f"{module.stem}:app", "--app-dir", str(tmp_path), "--server", server, "--reload"]
    with _serve(args, port), httpx.Client(timeout=10) as client:
        url = f"http://127.0.0.1:{port}/"
        assert client.get(url).text == "v1"
        deadline = time.monotonic() + 30
        seen = "v1"
        while seen != "v2" and time.monotonic() < deadline:
            # Written again on every round: a reloader that polls takes the mtimes it
            # first sees as its baseline, and its first scan may come after one write.
            module.write_text(_VERSIONED.format(version="v2"), encoding="utf-8")
            time.sleep(0.2)
            with contextlib.suppress(httpx.TransportError):  # the server swaps its worker
                seen = client.get(url).text
        assert seen == "v2"


def test_gunicorn_reload_reports_a_bad_module_in_one_line() -> None:
    # With --reload the app is imported in a forked child, not in gunicorn's master.
    result = run_serve("tests.test_cli:nope", "--server", "gunicorn", "--reload")
    assert result.returncode == 2
    assert result.stderr == (
        "crossgate serve: error: module 'tests.test_cli' has no attribute 'nope'\n"
    )


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", ["uvicorn", "waitress"])
def test_serve_runs_an_asgi2_double_callable_on(server: str) -> None:
    port = free_port()
    with _serve(["tests.test_cli:ASGI2Class", "--server", server], port):
        answer = httpx.get(f"http://127.0.0.1:{port}/two", timeout=10).json()
        assert answer["interface"] == "asgi"
        assert answer["path"] == "/two"
        assert answer["started"]
