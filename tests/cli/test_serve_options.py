"""Each `crossgate serve` option on every server that has it, served for real on 127.0.0.1.

Which servers have an option is read from the capability table (`crossgate.cli._servers`);
that the others refuse it, in one line, is tested in process (`test_options.py`).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossgate.cli._servers import TABLE
from tests.cli.support import running
from tests.integration.support import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

WSGI = "tests.cli.apps:wsgi_echo"
ASGI = "tests.cli.apps:asgi_echo"


def having(option: str) -> list[str]:
    return [name for name, server in TABLE.items() if option in server.settings]


def get(port: int, path: str = "/", **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("timeout", 10)
    return httpx.get(f"http://127.0.0.1:{port}{path}", **kwargs)


# --------------------------------------------------------------------------------------------
# Behind a proxy
# --------------------------------------------------------------------------------------------

FORWARDED = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize("app", [WSGI, ASGI])
@pytest.mark.parametrize("server", having("--proxy-headers"))
def test_proxy_headers_give_the_client_and_scheme(server: str, app: str) -> None:
    port = free_port()
    with running([app, "--server", server, "--port", str(port), "--proxy-headers"], port=port):
        assert get(port, headers=FORWARDED).json()["client"] == "198.51.100.7"
        assert get(port, headers=FORWARDED).json()["scheme"] == "https"
        plain = get(port).json()
        assert (plain["client"], plain["scheme"]) == ("127.0.0.1", "http")


@pytest.mark.parametrize("trust", [[], ["--forwarded-allow-ips", "10.9.9.9"]])
@pytest.mark.parametrize("server", having("--proxy-headers"))
def test_forwarding_headers_are_ignored_unless_the_peer_is_trusted(
    server: str, trust: list[str]
) -> None:
    # Before, uvicorn believed them from 127.0.0.1 by default, and gunicorn the scheme.
    port = free_port()
    with running([WSGI, "--server", server, "--port", str(port), *trust], port=port):
        answer = get(port, headers=FORWARDED).json()
        assert (answer["client"], answer["scheme"]) == ("127.0.0.1", "http")


# --------------------------------------------------------------------------------------------
# Where to listen
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", list(TABLE))
def test_port_comes_from_the_environment_and_bind_wins(server: str) -> None:
    port, other = free_port(), free_port()
    with running([WSGI, "--server", server], port=port, env={"PORT": str(port)}) as served:
        assert get(port).status_code == 200
        assert f"at http://127.0.0.1:{port}/" in served.text()
    argv = [WSGI, "--server", server, "--bind", f"127.0.0.1:{other}"]
    with running(argv, port=other, env={"PORT": str(port)}):
        assert get(other).status_code == 200


@pytest.mark.parametrize("spelling", ["--uds", "--bind"])
@pytest.mark.parametrize("server", having("--uds"))
def test_a_unix_socket(server: str, spelling: str, tmp_path: Path) -> None:
    path = str(tmp_path / "cg.sock")
    where = ["--uds", path] if spelling == "--uds" else ["--bind", f"unix:{path}"]
    with (
        running([WSGI, "--server", server, *where], uds=path) as served,
        httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=10) as client,
    ):
        assert client.get("http://localhost/").status_code == 200
        assert f"at unix:{path} " in served.text()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("server", having("--ssl-certfile"))
def test_tls(server: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    port = free_port()
    argv = [WSGI, "--server", server, "--port", str(port)]
    argv += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    context = ssl.create_default_context(cafile=str(cert))
    with running(argv, port=port) as served, httpx.Client(verify=context, timeout=10) as client:
        assert client.get(f"https://127.0.0.1:{port}/").json()["scheme"] == "https"
        assert f"at https://127.0.0.1:{port}/" in served.text()


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "booted"),
    [("gunicorn", "Booting worker with pid"), ("uvicorn", "Started server process")],
)
def test_web_concurrency_is_the_default_for_workers(server: str, booted: str) -> None:
    port = free_port()
    argv = [WSGI, "--server", server, "--port", str(port)]
    with running(argv, port=port, env={"WEB_CONCURRENCY": "2"}) as served:
        served.wait_for_log(booted, 2)
        assert "(2 workers, " in served.text()


def test_web_concurrency_on_waitress_is_a_warning() -> None:
    port = free_port()
    argv = [WSGI, "--server", "waitress", "--port", str(port)]
    with running(argv, port=port, env={"WEB_CONCURRENCY": "3"}) as served:
        assert get(port).status_code == 200
        assert "WEB_CONCURRENCY=3 ignored: waitress serves from one process" in served.text()


# --------------------------------------------------------------------------------------------
# Timeouts and limits
# --------------------------------------------------------------------------------------------


def _idle_close_after(port: int, give_up: float) -> float:
    """Seconds an idle kept-alive connection stays open after one answered request."""
    with socket.create_connection(("127.0.0.1", port), timeout=give_up) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += sock.recv(65536)
        start = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(65536):
                pass
        return time.monotonic() - start


@pytest.mark.parametrize(
    ("server", "seconds", "low", "high"),
    [
        # Each server's default is longer than `high` (uvicorn 5, hypercorn 5, waitress 120)
        # or shorter than `low` (gunicorn 2).
        ("uvicorn", 1, 0.5, 3.5),
        ("hypercorn", 1, 0.5, 3.5),
        ("waitress", 1, 0.5, 3.5),
        ("gunicorn", 5, 3.5, 8.0),
    ],
)
def test_timeout_keep_alive(server: str, seconds: int, low: float, high: float) -> None:
    assert sorted(having("--timeout-keep-alive")) == [
        "gunicorn",
        "hypercorn",
        "uvicorn",
        "waitress",
    ]
    port = free_port()
    argv = [WSGI, "--server", server, "--port", str(port), "--timeout-keep-alive", str(seconds)]
    with running(argv, port=port):
        assert low < _idle_close_after(port, give_up=high + 5) < high


@pytest.mark.parametrize(
    ("server", "seconds", "alive_at", "gone_by"),
    [
        # uvicorn waits for the request by default, gunicorn 30 s: 1 s cuts the 10 s request.
        ("uvicorn", 1, None, 6.0),
        ("gunicorn", 1, None, 6.0),
        # hypercorn's default is 3 s: 6 s keeps it longer, and still cuts the request.
        ("hypercorn", 6, 4.5, 9.5),
    ],
)
def test_timeout_graceful_shutdown(
    server: str, seconds: int, alive_at: float | None, gone_by: float
) -> None:
    assert sorted(having("--timeout-graceful-shutdown")) == ["gunicorn", "hypercorn", "uvicorn"]
    port = free_port()
    argv = [WSGI, "--server", server, "--port", str(port)]
    argv += ["--timeout-graceful-shutdown", str(seconds)]
    outcome: list[object] = []

    def slow() -> None:
        try:
            outcome.append(get(port, "/slow", timeout=20).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    with running(argv, port=port) as served:
        client = threading.Thread(target=slow)
        client.start()
        time.sleep(1.0)  # the request is in the app
        start = time.monotonic()
        stopping = threading.Thread(target=served.stop, kwargs={"timeout": 20})
        stopping.start()
        if alive_at is not None:
            time.sleep(alive_at)
            assert served.proc.poll() is None, "stopped before the graceful timeout"
        stopping.join(30)
        took = time.monotonic() - start
        client.join(30)
    assert took < gone_by, f"took {took:.1f} s to stop"
    assert len(outcome) == 1
    assert outcome[0] != 200, "the 10 s request was not cut"


@pytest.mark.parametrize("server", having("--max-header-size"))
def test_max_header_size(server: str) -> None:
    port = free_port()
    argv = [WSGI, "--server", server, "--port", str(port), "--max-header-size", "4096"]
    with running(argv, port=port):
        assert get(port, headers={"X-Small": "s" * 1000}).status_code == 200
        try:
            status = get(port, headers={"X-Big": "b" * 6000}).status_code
        except httpx.HTTPError:  # some servers close the connection without an answer
            status = None
        # Every server's default takes 6000 bytes (8190 a line on gunicorn, more elsewhere).
        assert status in (None, 400, 413, 431)
        assert get(port).status_code == 200


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------

_STAMPED = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[INFO\] "
#: server -> (crossgate's start line, one of the server's own lines), in the server's format.
_FORMATS = {
    "uvicorn": (r"INFO:     serving ", r"INFO:     Uvicorn running on "),
    "hypercorn": (_STAMPED + "serving ", _STAMPED + "Running on "),
    "gunicorn": (_STAMPED + "serving ", _STAMPED + "Starting gunicorn "),
    "waitress": (_STAMPED + "serving ", _STAMPED + "Serving on "),
    "wsgiref": (_STAMPED + "serving ", _STAMPED + r"127\.0\.0\.1 - \"GET /"),
}
_THREADS = {
    "uvicorn": "(1 worker, 4 threads for the WSGI app (default))",
    "hypercorn": "(1 worker, 4 threads for the WSGI app (default))",
    "gunicorn": "(1 worker, 4 threads (default))",
    "waitress": "(1 worker, 4 threads (default))",
    "wsgiref": "(1 worker, a thread per request)",
}


@pytest.mark.parametrize("server", list(TABLE))
def test_crossgate_logs_in_the_servers_format_and_says_its_threads(server: str) -> None:
    port = free_port()
    with running([WSGI, "--server", server, "--port", str(port)], port=port) as served:
        assert get(port).status_code == 200
        ours, theirs = _FORMATS[server]
        served.wait_for_log('"GET /' if server == "wsgiref" else "serving")
        text = served.text()
    assert re.search("^" + ours, text, re.MULTILINE), text
    assert re.search("^" + theirs, text, re.MULTILINE), text
    assert "INFO:crossgate" not in text
    assert _THREADS[server] in text
    dev = "wsgiref is a development server (a thread per request, no limits)"
    assert (dev in text) == (server == "wsgiref")


def test_threads_is_said_at_start() -> None:
    port = free_port()
    argv = [WSGI, "--server", "gunicorn", "--port", str(port), "--threads", "7"]
    with running(argv, port=port) as served:
        assert "(1 worker, 7 threads)" in served.text()


def _doc_block(language: str) -> str:
    """The ```language block of docs/serve.md: the examples there are what is tested."""
    text = (REPO / "docs" / "serve.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    (block,) = blocks
    return block


@pytest.fixture(params=["json", "ini"])
def log_config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"logging.{request.param}"
    path.write_text(_doc_block(request.param), encoding="utf-8")
    return path


@pytest.mark.parametrize("server", having("--log-config"))
def test_log_config(server: str, log_config: Path) -> None:
    port = free_port()
    argv = [WSGI, "--server", server, "--port", str(port), "--log-config", str(log_config)]
    with running(argv, port=port) as served:
        assert get(port).status_code == 200
        line = "INFO crossgate.cli: serving tests.cli.apps:wsgi_echo"
        served.wait_for_log(line)
        # The file's format, not the server's: "2026-01-05 10:00:00,123 INFO crossgate.cli: ..."
        stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
        assert re.search(stamp + re.escape(line), served.text(), re.MULTILINE)


@pytest.mark.parametrize("flag", [None, "--access-log", "--no-access-log"])
@pytest.mark.parametrize("server", having("--access-log"))
def test_access_log(server: str, flag: str | None) -> None:
    port = free_port()
    argv = [WSGI, "--server", server, "--port", str(port), *([flag] if flag else [])]
    with running(argv, port=port) as served:
        assert get(port, "/cg-probe").status_code == 200
        if flag == "--no-access-log":
            time.sleep(1.0)  # long enough for a line that would come
            assert "/cg-probe" not in served.text()
        else:
            served.wait_for_log("/cg-probe")


# --------------------------------------------------------------------------------------------
# --loop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "loop", "library"),
    [
        ("hypercorn", "trio", "trio"),
        ("hypercorn", "asyncio", "asyncio"),
        ("uvicorn", "asyncio", "asyncio"),
        ("gunicorn", "trio", "trio"),
        ("waitress", "trio", "trio"),
    ],
)
def test_loop_runs_an_asgi_app_on_the_loop_asked_for(server: str, loop: str, library: str) -> None:
    port = free_port()
    with running([ASGI, "--server", server, "--port", str(port), "--loop", loop], port=port):
        assert get(port).json()["library"] == library


def test_a_wsgi_app_on_hypercorn_with_loop_trio() -> None:
    """wsgi_to_asgi on hypercorn's trio worker: it answered 500 before issue 26."""
    port = free_port()
    argv = [WSGI, "--server", "hypercorn", "--port", str(port), "--loop", "trio"]
    with running(argv, port=port) as served:
        for _ in range(3):
            response = get(port)
            assert response.status_code == 200
            assert response.json()["scheme"] == "http"
        assert "Traceback" not in served.text()
