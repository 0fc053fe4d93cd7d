"""`crossgate serve` options, in process: the capability table, the environment, refusals.

Every refusal is one line, ``crossgate serve: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from crossgate.cli import _servers, build_parser, main
from crossgate.cli._parser import options_from
from crossgate.cli._servers import OPTIONS, TABLE, Options, render_table
from tests.integration.support import REPO

DOC = REPO / "docs" / "serve.md"


def _argv_for(option: str, tmp_path: Path) -> list[str]:
    """A command line asking for ``option`` (files it names exist)."""
    log_config = tmp_path / "log.json"
    log_config.write_text(json.dumps({"version": 1}), encoding="utf-8")
    pem = tmp_path / "x.pem"
    pem.write_text("not checked before the server starts", encoding="utf-8")
    return {
        "--workers": ["--workers", "2"],
        "--threads": ["--threads", "2"],
        "--reload": ["--reload"],
        "--uds": ["--uds", str(tmp_path / "s.sock")],
        "--proxy-headers": ["--proxy-headers"],
        "--log-config": ["--log-config", str(log_config)],
        "--access-log": ["--access-log"],
        "--timeout-keep-alive": ["--timeout-keep-alive", "3"],
        "--timeout-graceful-shutdown": ["--timeout-graceful-shutdown", "3"],
        "--ssl-certfile": ["--ssl-certfile", str(pem), "--ssl-keyfile", str(pem)],
        "--max-header-size": ["--max-header-size", "4096"],
    }[option]


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The one error line of ``crossgate serve argv`` (which must exit 2)."""
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crossgate serve: error: ")
    assert err.count("\n") == 1, err
    return err.removeprefix("crossgate serve: error: ").rstrip("\n")


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TABLE))
def test_every_server_maps_or_refuses_every_option(name: str) -> None:
    server = TABLE[name]
    assert set(server.settings) | set(server.refused) == set(OPTIONS)
    assert not set(server.settings) & set(server.refused)
    assert server.runner.startswith("_")


def test_docs_serve_md_holds_the_table_the_code_has() -> None:
    text = DOC.read_text(encoding="utf-8")
    begin, end = "<!-- capability table: begin -->\n", "<!-- capability table: end -->"
    assert text[text.index(begin) + len(begin) : text.index(end)] == render_table()


def test_docs_serve_md_lists_every_option_of_the_parser() -> None:
    text = DOC.read_text(encoding="utf-8")
    (serve,) = [
        action
        for action in build_parser()._subparsers._group_actions  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction)
    ]
    flags = {
        flag
        for action in serve.choices["serve"]._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    }
    missing = sorted(flag for flag in flags if f"`{flag}" not in text)
    assert not missing


@pytest.mark.parametrize(
    ("name", "option"),
    [(name, option) for name, server in TABLE.items() for option in server.refused],
)
def test_an_option_a_server_lacks_is_refused_in_one_line(
    name: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tests.test_cli:wsgi_app", "--server", name, *_argv_for(option, tmp_path)]
    message = _error(capsys, argv)
    assert message.startswith(option if option != "--ssl-certfile" else "--ssl-certfile")
    assert TABLE[name].refused[option] in message


def test_waitress_trusts_one_proxy_address(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tests.test_cli:wsgi_app", "--server", "waitress"]
    message = _error(capsys, [*argv, "--forwarded-allow-ips", "127.0.0.1,10.0.0.1"])
    assert "waitress trusts one proxy address" in message
    assert _error(capsys, [*argv, "--forwarded-allow-ips", "10.0.0.0/8"]).startswith(
        "--forwarded-allow-ips 10.0.0.0/8: waitress"
    )


def test_loop_trio_on_uvicorn_is_refused_naming_hypercorn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["tests.test_cli:wsgi_app", "--server", "uvicorn", "--loop", "trio"]
    message = _error(capsys, argv)
    assert message.startswith("--loop trio: uvicorn runs asyncio or uvloop")
    assert "--server hypercorn --loop trio" in message


@pytest.mark.parametrize("server", ["gunicorn", "waitress", "wsgiref"])
def test_loop_for_a_wsgi_app_on_a_wsgi_server_is_refused(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tests.test_cli:wsgi_app", "--server", server, "--loop", "trio"]
    assert _error(capsys, argv).startswith(f"--loop trio: a WSGI app on {server} runs on no")


def test_loop_is_auto_unless_given() -> None:
    assert _options([])[0].loop == "auto"
    assert _options(["--server", "hypercorn", "--loop", "trio"])[0].loop == "trio"
    assert "--loop" not in _options([])[0].given()


# --------------------------------------------------------------------------------------------
# Options and the environment
# --------------------------------------------------------------------------------------------


def _options(argv: list[str], **environ: str) -> tuple[Options, list[str]]:
    args = build_parser().parse_args(["serve", "tests.test_cli:wsgi_app", *argv])
    return options_from(args, environ)


@pytest.mark.parametrize(
    ("bind", "where"),
    [
        ("0.0.0.0:9000", ("0.0.0.0", 9000, None)),
        ("localhost", ("localhost", 8000, None)),
        ("[::1]:9001", ("::1", 9001, None)),
        ("[::]", ("::", 8000, None)),
        ("unix:/tmp/cg.sock", ("127.0.0.1", 8000, "/tmp/cg.sock")),
    ],
)
def test_bind_is_gunicorns_spelling(bind: str, where: tuple[str, int, str | None]) -> None:
    options, _ = _options(["--bind", bind])
    assert (options.host, options.port, options.uds) == where


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bind", "::1:80"], "an IPv6 address goes in brackets"),
        (["--bind", "[::1]x"], "not HOST:PORT, [IPv6]:PORT or unix:PATH"),
        (["--bind", "unix:"], "unix: needs a path"),
        (["--bind", ":80"], "no host"),
        (["--bind", "h:99999"], "99999 is not a port number"),
        (["--bind", "h:1", "--port", "2"], "--bind says where to listen; drop --port"),
        (["--uds", "/tmp/x", "--host", "h"], "--uds listens on a unix socket; drop --host"),
        (["--ssl-certfile", "/etc/hostname"], "go together: give both"),
        (
            ["--ssl-certfile", "/nope.pem", "--ssl-keyfile", "/nope.key"],
            "--ssl-certfile /nope.pem: no such file",
        ),
        (["--forwarded-allow-ips", "proxy.local"], "'proxy.local' is not an IP address"),
        (["--root-path", "api"], "must start with '/'"),
    ],
)
def test_bad_options_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _error(capsys, ["tests.test_cli:wsgi_app", *argv])


def test_port_and_web_concurrency_are_the_defaults() -> None:
    options, warnings = _options([], PORT="9123", WEB_CONCURRENCY="3")
    assert (options.port, options.workers, options.workers_from) == (9123, 3, "env")
    assert warnings == []
    options, _ = _options(["--port", "9124", "--workers", "2"], PORT="9123", WEB_CONCURRENCY="3")
    assert (options.port, options.workers, options.workers_from) == (9124, 2, "option")
    options, _ = _options([], PORT=" ", WEB_CONCURRENCY="")
    assert (options.port, options.workers, options.workers_from) == (8000, 1, "default")


def test_web_concurrency_on_a_one_process_server_is_a_warning_not_an_error() -> None:
    options, warnings = _options(["--server", "waitress"], WEB_CONCURRENCY="4")
    assert options.workers == 1
    assert warnings == ["WEB_CONCURRENCY=4 ignored: waitress serves from one process"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "$PORT: 'http' is not a port number"),
        ("PORT", "70000", "$PORT: 70000 is not a port number (0-65535)"),
        ("WEB_CONCURRENCY", "0", "$WEB_CONCURRENCY: 0 is not at least 1"),
    ],
)
def test_a_bad_environment_variable_is_one_line(
    name: str,
    value: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    assert _error(capsys, ["tests.test_cli:wsgi_app"]) == message


def test_forwarded_allow_ips_implies_proxy_headers_and_has_an_env_default() -> None:
    options, _ = _options([])
    assert not options.proxy_headers
    options, _ = _options(["--proxy-headers"], FORWARDED_ALLOW_IPS="10.1.1.1")
    assert (options.proxy_headers, options.forwarded_allow_ips) == (True, "10.1.1.1")
    options, _ = _options(["--forwarded-allow-ips", "*"])
    assert (options.proxy_headers, options.forwarded_allow_ips) == (True, "*")


def test_the_thread_default_is_the_same_everywhere() -> None:
    assert _options([])[0].effective_threads == _servers.DEFAULT_THREADS == 4
    assert _options(["--threads", "9"])[0].effective_threads == 9


# --------------------------------------------------------------------------------------------
# Log configuration files, checked before anything starts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "no such file"),
        ("bad.json", "{", "not JSON"),
        ("list.json", "[]", "a dictConfig needs a mapping with 'version': 1"),
        ("bad.ini", "[loggers\nkeys=root", "not an INI file"),
        ("empty.ini", "[handlers]\nkeys=\n", "an INI file needs a [loggers] section"),
    ],
)
def test_a_bad_log_config_is_one_line(
    name: str, content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    error = _error(capsys, ["tests.test_cli:wsgi_app", "--log-config", str(path)])
    assert error.startswith(f"--log-config {path}: {message}")


def test_yaml_without_pyyaml_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log.yaml"
    path.write_text("version: 1\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    error = _error(capsys, ["tests.test_cli:wsgi_app", "--log-config", str(path)])
    assert "reading YAML needs PyYAML (pip install pyyaml)" in error


# --------------------------------------------------------------------------------------------
# Errors in APP
# --------------------------------------------------------------------------------------------


def test_a_dot_where_the_colon_belongs_gets_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert _error(capsys, ["tests.test_cli.wsgi_app"]) == (
        "cannot import 'tests.test_cli.wsgi_app': no module named 'tests.test_cli.wsgi_app' "
        "(did you mean tests.test_cli:wsgi_app? a colon separates the module from the app)"
    )
    # No hint when the module before the dot does not exist either.
    assert _error(capsys, ["crossgate_nope.app"]) == (
        "cannot import 'crossgate_nope.app': no module named 'crossgate_nope'"
    )


_DEEP = """
import cg_helper_{n}
app = cg_helper_{n}.build()
"""
_HELPER = """
def build():
    return _configure({{}})

def _configure(settings):
    return settings["SECRET_KEY"]
"""


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-reload"])
def test_debug_shows_the_traceback_of_an_import_error_deep_in_the_app(
    server: str, tmp_path: Path
) -> None:
    n = server.replace("-", "_")
    (tmp_path / f"cg_deep_{n}.py").write_text(_DEEP.format(n=n), encoding="utf-8")
    (tmp_path / f"cg_helper_{n}.py").write_text(_HELPER.format(), encoding="utf-8")
    argv = [sys.executable, "-m", "crossgate", "serve", f"cg_deep_{n}:app"]
    argv += ["--app-dir", str(tmp_path), "--port", "1"]
    argv += ["--server", "gunicorn", "--reload"] if server == "gunicorn-reload" else []

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run(
            [*argv, *extra], capture_output=True, text=True, timeout=30, check=False, env=env
        )

    quiet, debug = run(), run("--log-level", "debug")
    line = (
        f"crossgate serve: error: importing 'cg_deep_{n}' failed: KeyError: 'SECRET_KEY' "
        f"({tmp_path / f'cg_helper_{n}.py'}, line 6)\n"
    )
    assert (quiet.returncode, quiet.stderr) == (2, line)
    assert debug.returncode == 2
    assert debug.stderr.startswith("Traceback (most recent call last):\n")
    assert debug.stderr.endswith(line)
    # Every frame of the app's code is there, down to the line that raised.
    assert re.search(rf"cg_deep_{n}\.py\", line 3.*\n.*build\(\)", debug.stderr)
    assert 'return settings["SECRET_KEY"]' in debug.stderr


def test_a_unix_socket_a_server_listens_on_is_one_line_and_status_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A short path: AF_UNIX paths are limited to about 100 bytes, pytest's tmp_path is long.
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        path = os.path.join(directory, "taken.sock")
        with socket.socket(socket.AF_UNIX) as taken:
            taken.bind(path)
            taken.listen()
            argv = ["serve", "tests.test_cli:wsgi_app", "--server", "waitress", "--uds", path]
            assert main(argv) == 3
    assert capsys.readouterr().err == (
        f"crossgate serve: error: waitress cannot listen on unix:{path}: "
        "a server is listening there\n"
    )
