"""docs/deployment-nginx.md, tested: nginx in front of two `crossgate serve` backends.

The nginx site configuration and the systemd unit's ``ExecStart`` and ``Environment`` lines
are read out of the page, so the page cannot drift from what is tested. The only changes
made to them are the ones a machine without root needs, each checked to apply exactly
once: loopback ports instead of 80, 443, 8001 and 8002, a certificate made for the test,
the app's module, and (for the ASGI app) ``--server gunicorn``, so that both adapters run
behind nginx. nginx runs as the current user from a temporary prefix, ``daemon off``, and
is stopped by its PID.

Clients connect from 127.0.0.2, so that the address a backend reports is the client's and
not nginx's (127.0.0.1).
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import re
import shlex
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.cli.support import Running, running, wait_for
from tests.integration.support import REPO, free_port, wait_for_port

NGINX = Path("/usr/sbin/nginx")
DOC = REPO / "docs" / "deployment-nginx.md"
CLIENT_ADDRESS = "127.0.0.2"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed (scripts/test does)"),
]

APPS = {
    "django": ("tests.integration.apps_nginx.django_app:application", "uvicorn"),
    "flask": ("tests.integration.apps_nginx.flask_app:app", "uvicorn"),
    "fastapi": ("tests.integration.apps_nginx.fastapi_app:app", "gunicorn"),
}


def _block(language: str, containing: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    (block,) = [block for block in blocks if containing in block]
    assert isinstance(block, str)
    return block


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not once in docs/deployment-nginx.md"
    return text.replace(old, new)


def _unit() -> tuple[list[str], dict[str, str]]:
    """The unit's ``crossgate serve`` arguments and its environment."""
    unit = _block("ini", "crossgate@.service")
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/crossgate")
    assert argv[1] == "serve"
    environment = dict(
        line.split("=", 1) for line in re.findall(r"^Environment=(.*)$", unit, re.MULTILINE)
    )
    return argv[2:], environment


def _main_conf(prefix: Path, site: str) -> str:
    """The part Debian's /etc/nginx/nginx.conf plays, for a user without root."""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would switch to "nobody", who cannot enter the test's
    # private directories: they stay the current user, as the master is.
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
    return (
        f"{user}"
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        f"{temp}\n"
        f"{site}\n"
        "}\n"
    )


def _parent(pid: int) -> int:
    """The parent of a process: which backend a worker belongs to."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@dataclass
class Deployment:
    """nginx and its two backends, and how to reach them."""

    app: str
    https: int
    http: int
    ports: tuple[int, int]
    argv: list[str]
    env: dict[str, str]
    context: ssl.SSLContext
    stack: contextlib.ExitStack
    backends: dict[int, Running] = field(default_factory=dict)

    def start(self, port: int) -> Running:
        argv = [_replace_once(arg, "%i", str(port)) if "%i" in arg else arg for arg in self.argv]
        backend = self.stack.enter_context(running(argv, port=port, env=self.env, timeout=60))
        self.backends[port] = backend
        return backend

    def client(self) -> httpx.Client:
        transport = httpx.HTTPTransport(verify=self.context, local_address=CLIENT_ADDRESS)
        return httpx.Client(
            transport=transport, base_url=f"https://127.0.0.1:{self.https}", timeout=15
        )

    def backend_of(self, pid: int) -> int | None:
        with contextlib.suppress(OSError):
            parent = _parent(pid)
            for port, backend in self.backends.items():
                if backend.proc.pid in (pid, parent):
                    return port
        return None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "example.com.pem", directory / "example.com.key"
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


@pytest.fixture(scope="module", params=list(APPS))
def deployment(
    request: pytest.FixtureRequest,
    certificate: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    name: str = request.param
    spec, server = APPS[name]
    cert, key = certificate
    prefix = tmp_path_factory.mktemp(f"nginx-{name}")
    https, http, one, two = (free_port() for _ in range(4))

    site = _block("nginx", "upstream mysite")
    for old, new in [
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;"),
        ("server 127.0.0.1:8001;", f"server 127.0.0.1:{one};"),
        ("server 127.0.0.1:8002;", f"server 127.0.0.1:{two};"),
        ("/etc/ssl/certs/example.com.pem", str(cert)),
        ("/etc/ssl/private/example.com.key", str(key)),
    ]:
        site = _replace_once(site, old, new)
    conf = prefix / "nginx.conf"
    conf.write_text(_main_conf(prefix, site), encoding="utf-8")

    args, env = _unit()
    args = [spec if arg == "mysite.wsgi:application" else arg for arg in args]
    assert spec in args
    server_at = args.index("--server") + 1
    assert args[server_at] == "uvicorn"
    args[server_at] = server
    assert env.pop("DJANGO_SETTINGS_MODULE") == "mysite.settings"
    env["DJANGO_SETTINGS_MODULE"] = "tests.integration.apps_nginx.django_settings"

    nginx_argv = [str(NGINX), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    checked = subprocess.run(
        [*nginx_argv, "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stderr

    with contextlib.ExitStack() as stack:
        deployed = Deployment(
            name,
            https,
            http,
            (one, two),
            args,
            env,
            ssl.create_default_context(cafile=str(cert)),
            stack,
        )
        for port in (one, two):
            deployed.start(port)
        with (prefix / "stderr.log").open("wb") as output:
            nginx = subprocess.Popen(
                nginx_argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_port(https, proc=nginx)
            yield deployed
        finally:
            nginx.terminate()  # by its PID: the master stops its worker
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait(10)


def test_the_client_address_and_https_reach_the_app(deployment: Deployment) -> None:
    with deployment.client() as client:
        # A client's own X-Forwarded-For is kept, left of the address nginx saw: it
        # proves nothing and the app does not take it.
        answer = client.get("/whoami", headers={"X-Forwarded-For": "6.6.6.6"}).json()
    assert answer["client"] == CLIENT_ADDRESS
    assert answer["scheme"] == "https"
    # url_for(..., _external=True), build_absolute_uri(), request.url_for(): https, and
    # the host nginx passed on ($host: the name, without the port).
    assert answer["url"] == "https://127.0.0.1/whoami"


def test_plain_http_is_redirected_to_https(deployment: Deployment) -> None:
    response = httpx.get(f"http://127.0.0.1:{deployment.http}/whoami?x=1", timeout=10)
    assert response.status_code == 301
    assert response.headers["location"] == "https://127.0.0.1/whoami?x=1"


def test_both_backends_serve(deployment: Deployment) -> None:
    seen: set[int | None] = set()
    with deployment.client() as client:
        for _ in range(40):
            seen.add(deployment.backend_of(client.get("/whoami").json()["pid"]))
            if seen == set(deployment.ports):
                break
    assert seen == set(deployment.ports)


def test_a_streamed_response_is_not_held_by_nginx(deployment: Deployment) -> None:
    arrivals: list[tuple[float, bytes]] = []
    with deployment.client() as client:
        start = time.monotonic()
        with client.stream("GET", "/stream/numbers") as response:
            assert response.status_code == 200
            arrivals.extend((time.monotonic() - start, chunk) for chunk in response.iter_raw())
    body = b"".join(chunk for _, chunk in arrivals)
    assert body == b"".join(f"line {n}\n".encode() for n in range(5))
    # Produced over 1.6 s: the first line comes long before the last is written.
    first, last = arrivals[0][0], arrivals[-1][0]
    assert first < 0.8, arrivals
    assert last > 1.5, arrivals
    assert len(arrivals) >= 3, arrivals


def test_a_20_mib_upload_goes_through_and_a_30_mib_one_is_refused(
    deployment: Deployment,
) -> None:
    body = os.urandom(20 * 1024 * 1024)
    with deployment.client() as client:
        answer = client.post("/upload", content=body).json()
        assert answer == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        too_big = client.post("/upload", content=b"x" * (30 * 1024 * 1024))
    assert too_big.status_code == 413  # nginx's client_max_body_size 25m


def test_a_backend_restarted_under_load_fails_no_request(deployment: Deployment) -> None:
    stop = threading.Event()
    served: list[int] = []
    failures: list[str] = []

    def load() -> None:
        with deployment.client() as client:
            while not stop.is_set():
                try:
                    response = client.get("/whoami")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                else:
                    served.append(response.json()["pid"])

    def serving_again(port: int) -> None:
        """Until nginx sends requests to the restarted backend (bounded)."""
        count = len(served)
        wait_for(lambda: port in {deployment.backend_of(pid) for pid in served[count:]}, 30)

    clients = [threading.Thread(target=load) for _ in range(2)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(0.5)
        one, two = deployment.ports
        # systemctl restart: SIGTERM, the requests in flight finish, then a new process.
        took = deployment.backends[one].stop()
        assert took < 25
        deployment.start(one)
        serving_again(one)
        # A crash: SIGKILL to the backend and its workers, then a new process.
        killed = deployment.backends[two].proc
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(10)
        time.sleep(0.5)
        deployment.start(two)
        serving_again(two)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in clients:
            thread.join(30)
    assert failures == []
    assert len(served) > 50
