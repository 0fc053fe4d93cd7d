"""What the real-server benchmark measures: workloads, contenders, panels and the plan.

A *workload* is one request shape (its app's route, a check of the answer); a *contender*
one app on one server; a *panel* one comparison (crossgate, its peers, and the native app
or an alternative they are held against); a *cell* one (contender, workload, workers).
The apps themselves are in ``benchmarks/server_apps.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.integration.support import HOST

__all__ = [
    "ALTERNATIVE",
    "APP_WORKLOADS",
    "CEILING",
    "CONTENDERS",
    "KIB",
    "MIB",
    "OURS",
    "PANELS",
    "PEER",
    "QUICK",
    "SCALING_WORKLOADS",
    "THREADS",
    "WORKLOADS",
    "Cell",
    "Contender",
    "Member",
    "Panel",
    "Settings",
    "Workload",
    "plan",
    "server_argv",
]

APPS = "benchmarks.server_apps"
KIB = 1024
MIB = 1024 * KIB
#: Server threads per worker (gunicorn gthread, waitress): one per wrk connection.
THREADS = 16


# --- workloads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One request shape, and how to recognise its correct answer."""

    name: str
    path: str
    label: str
    check: Callable[[bytes], bool] = field(compare=False)
    upload: int = 0  # request body bytes: a POST when > 0
    streamed: bool = False  # RSS must stay flat: bounded by the budget, not the body


HELLO = b"Hello, world!"
PAGE_SIZE = 20 * KIB
DOWNLOAD_SIZE = 4 * MIB
UPLOAD_SIZE = 1 * MIB
#: A cell of the last row of the template every real app renders (server_apps.TEMPLATE).
TEMPLATE_MARKER = b"<td>item-19</td>"

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("hello", "/hello", "hello-world", lambda b: b == HELLO),
        Workload(
            "page",
            "/page",
            "20 KiB page",
            lambda b: len(b) == PAGE_SIZE and b.startswith(b"<!doctype html>"),
        ),
        Workload("flask", "/flask", "Flask + Jinja", lambda b: TEMPLATE_MARKER in b),
        Workload("fastapi", "/fastapi", "FastAPI + Jinja", lambda b: TEMPLATE_MARKER in b),
        Workload("django", "/django", "Django view", lambda b: TEMPLATE_MARKER in b),
        Workload(
            "download",
            "/download",
            "4 MiB download",
            lambda b: len(b) == DOWNLOAD_SIZE and b.count(b"d") == DOWNLOAD_SIZE,
            streamed=True,
        ),
        Workload(
            "upload",
            "/upload",
            "1 MiB upload",
            lambda b: b == str(UPLOAD_SIZE).encode(),
            upload=UPLOAD_SIZE,
            streamed=True,
        ),
    )
}
#: What each native app answers (the wrapped apps answer what the app they wrap does).
APP_WORKLOADS = {
    "wsgi": ("hello", "page", "flask", "django", "download", "upload"),
    "asgi": ("hello", "page", "fastapi", "django", "download", "upload"),
}
QUICK_WORKLOADS = ("hello", "download")
#: Run with 2 workers too by default: the cheapest request and a real app.
SCALING_WORKLOADS = ("hello", "django")


# --- contenders and panels ---------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One app on one server: ``server`` runs ``benchmarks.server_apps:<attr>``."""

    server: str  # uvicorn | gunicorn | waitress | granian-asgi | granian-wsgi
    attr: str
    app: str  # "wsgi" or "asgi": the native app behind it, which sets its workloads
    max_workers: int = 8

    @property
    def key(self) -> str:
        return f"{self.server}/{self.attr}"


CONTENDERS: dict[str, Contender] = {
    c.key: c
    for c in (
        Contender("uvicorn", "crossgate_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "a2wsgi_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "asgiref_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "uvicorn_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "hypercorn_wsgi_to_asgi", "wsgi"),
        Contender("uvicorn", "asgi_app", "asgi"),
        Contender("gunicorn", "wsgi_app", "wsgi"),
        Contender("granian-asgi", "crossgate_wsgi_to_asgi", "wsgi"),
        Contender("granian-asgi", "a2wsgi_wsgi_to_asgi", "wsgi"),
        Contender("granian-wsgi", "wsgi_app", "wsgi"),
        Contender("gunicorn", "crossgate_asgi_to_wsgi", "asgi"),
        Contender("gunicorn", "a2wsgi_asgi_to_wsgi", "asgi"),
        # waitress has no process manager of its own: one process, threads only.
        Contender("waitress", "crossgate_asgi_to_wsgi", "asgi", max_workers=1),
        Contender("waitress", "a2wsgi_asgi_to_wsgi", "asgi", max_workers=1),
        Contender("waitress", "wsgi_app", "wsgi", max_workers=1),
    )
}

OURS, PEER, CEILING, ALTERNATIVE = "ours", "peer", "ceiling", "alternative"


@dataclass(frozen=True)
class Member:
    contender: str  # a CONTENDERS key
    label: str
    role: str


@dataclass(frozen=True)
class Panel:
    """One comparison: crossgate, its peers, and what they are measured against."""

    key: str
    title: str
    app: str  # the app the adapters wrap: its workloads are the panel's rows
    members: tuple[Member, ...]

    @property
    def ours(self) -> Member:
        return next(m for m in self.members if m.role == OURS)


PANELS: tuple[Panel, ...] = (
    Panel(
        "wsgi-uvicorn",
        "WSGI app on uvicorn (uvloop, httptools)",
        "wsgi",
        (
            Member("uvicorn/crossgate_wsgi_to_asgi", "crossgate", OURS),
            Member("uvicorn/a2wsgi_wsgi_to_asgi", "a2wsgi", PEER),
            Member("uvicorn/asgiref_wsgi_to_asgi", "asgiref", PEER),
            Member("uvicorn/uvicorn_wsgi_to_asgi", "uvicorn's", PEER),
            Member("uvicorn/hypercorn_wsgi_to_asgi", "hypercorn's", PEER),
            Member("uvicorn/asgi_app", "native ASGI app", CEILING),
            Member("gunicorn/wsgi_app", "native on gunicorn gthread", ALTERNATIVE),
        ),
    ),
    Panel(
        "wsgi-granian",
        "WSGI app on granian (ASGI interface)",
        "wsgi",
        (
            Member("granian-asgi/crossgate_wsgi_to_asgi", "crossgate", OURS),
            Member("granian-asgi/a2wsgi_wsgi_to_asgi", "a2wsgi", PEER),
            Member("granian-wsgi/wsgi_app", "granian's WSGI interface", ALTERNATIVE),
        ),
    ),
    Panel(
        "asgi-gunicorn",
        "ASGI app on gunicorn gthread",
        "asgi",
        (
            Member("gunicorn/crossgate_asgi_to_wsgi", "crossgate", OURS),
            Member("gunicorn/a2wsgi_asgi_to_wsgi", "a2wsgi", PEER),
            Member("gunicorn/wsgi_app", "native WSGI app", CEILING),
        ),
    ),
    Panel(
        "asgi-waitress",
        "ASGI app on waitress",
        "asgi",
        (
            Member("waitress/crossgate_asgi_to_wsgi", "crossgate", OURS),
            Member("waitress/a2wsgi_asgi_to_wsgi", "a2wsgi", PEER),
            Member("waitress/wsgi_app", "native WSGI app", CEILING),
        ),
    ),
)


def server_argv(server: str, attr: str, port: int, workers: int) -> list[str]:
    """The ``python -m ...`` command line that serves ``attr`` on ``port``."""
    target = f"{APPS}:{attr}"
    if server == "uvicorn":
        return [
            "uvicorn",
            target,
            f"--host={HOST}",
            f"--port={port}",
            "--loop=uvloop",
            "--http=httptools",
            "--no-access-log",
            "--log-level=warning",
            f"--workers={workers}",
        ]
    if server == "gunicorn":
        return [
            "gunicorn",
            "-k",
            "gthread",
            f"--threads={THREADS}",
            f"--workers={workers}",
            f"--bind={HOST}:{port}",
            "--log-level=warning",
            target,
        ]
    if server == "waitress":
        return ["waitress", f"--listen={HOST}:{port}", f"--threads={THREADS}", target]
    if server in ("granian-asgi", "granian-wsgi"):
        interface = server.removeprefix("granian-")
        argv = ["granian", f"--interface={interface}", f"--host={HOST}", f"--port={port}"]
        argv += [f"--workers={workers}", "--no-access-log", "--log-level=warning"]
        if interface == "asgi":
            argv.append("--loop=uvloop")
        return [*argv, target]
    raise ValueError(f"unknown server {server!r}")


# --- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    rounds: int = 3
    duration: int = 2  # seconds of wrk per cell (wrk takes whole seconds)
    warmup: float = 0.5
    workers: tuple[int, ...] = (1, 2)
    workloads: tuple[str, ...] | None = None  # None: every workload of each app
    scaling_workloads: tuple[str, ...] = SCALING_WORKLOADS
    connections: int = 16  # per server worker
    only: str | None = None
    quick: bool = False
    note: str = ""


QUICK = Settings(
    rounds=1, duration=1, workers=(1,), workloads=QUICK_WORKLOADS, scaling_workloads=(), quick=True
)


@dataclass(frozen=True)
class Cell:
    contender: Contender
    workload: Workload
    workers: int
    connections: int

    @property
    def id(self) -> str:
        return f"{self.contender.key}/{self.workload.name}/w{self.workers}"


def plan(settings: Settings) -> list[Cell]:
    """Every cell the settings select, grouped by (contender, workers) in a stable order."""
    only = re.compile(settings.only) if settings.only else None
    cells = []
    for contender in CONTENDERS.values():
        for workers in settings.workers:
            if workers > contender.max_workers:
                continue
            for name in APP_WORKLOADS[contender.app]:
                if settings.workloads is not None and name not in settings.workloads:
                    continue
                if workers > 1 and name not in settings.scaling_workloads:
                    continue
                cell = Cell(contender, WORKLOADS[name], workers, settings.connections * workers)
                if only is None or only.search(cell.id):
                    cells.append(cell)
    return cells
