"""Real-server benchmarks: crossgate and its peers behind real servers, loaded by ``wrk``.

On 127.0.0.1, one server at a time, each cell is one (server, app, workload, workers):

* a WSGI app on uvicorn (uvloop, httptools) through crossgate, a2wsgi, asgiref, uvicorn's
  ``_WSGIMiddleware`` and hypercorn's ``AsyncioWSGIMiddleware``; beside it the equivalent
  native ASGI app on uvicorn (the ceiling) and the same WSGI app natively on gunicorn
  gthread; the same WSGI app through crossgate and a2wsgi on granian's ASGI interface,
  beside granian's own WSGI interface;
* an ASGI app on gunicorn gthread and on waitress through crossgate and a2wsgi, beside the
  equivalent native WSGI app on the same server (the ceiling).

Workloads (``benchmarks/server_apps.py``): hello-world, a 20 KiB page, a 4 MiB download,
a 1 MiB upload, a real Flask (WSGI) or FastAPI (ASGI) app and a real Django view, each
rendering a template. Before each cell one response's body is checked and the server is
warmed up; then ``wrk -t1`` loads it for a few seconds while the server's processes' RSS
is sampled from /proc. A cell whose wrk run saw socket errors or non-2xx/3xx responses is
marked invalid: no speed is published from failing responses. Rounds alternate between
the servers so a noisy neighbour slows all of them alike; figures are medians of rounds.

The modules, each importing only those above it:

* ``matrix``: what is measured (workloads, contenders, panels, settings, the plan);
* ``measure``: one round of one cell on a running server, and the medians of rounds;
* ``processes``: one server process per (contender, workers), on the integration tests'
  process helpers (``tests/integration/support.py``);
* ``targets``: reading a results document (medians, a panel's rows) and the targets;
* ``run``: every round of every cell into the results document;
* ``render``: the document into ``docs/benchmarks.md`` and its chart;
* ``cli``: the command line.

``python -m benchmarks.servers [--quick] [--only REGEX] [--workers 1,2] [--write-docs]``;
``--from-json`` re-renders ``docs/benchmarks.md`` and ``docs/benchmarks.png`` from
``benchmarks/results/servers.json`` without running anything.
"""

from benchmarks.servers.cli import OPTION_NAMES, add_options, main, run_from_args
from benchmarks.servers.matrix import (
    CONTENDERS,
    PANELS,
    QUICK,
    WORKLOADS,
    Cell,
    Contender,
    Panel,
    Settings,
    Workload,
    plan,
    server_argv,
)
from benchmarks.servers.measure import measure, run_wrk, summarize
from benchmarks.servers.render import render_chart, render_docs, render_markdown
from benchmarks.servers.run import SCHEMA, cell_record, run, write_results
from benchmarks.servers.targets import compute_targets, noise

__all__ = [
    "CONTENDERS",
    "OPTION_NAMES",
    "PANELS",
    "QUICK",
    "SCHEMA",
    "WORKLOADS",
    "Cell",
    "Contender",
    "Panel",
    "Settings",
    "Workload",
    "add_options",
    "cell_record",
    "compute_targets",
    "main",
    "measure",
    "noise",
    "plan",
    "render_chart",
    "render_docs",
    "render_markdown",
    "run",
    "run_from_args",
    "run_wrk",
    "server_argv",
    "summarize",
    "write_results",
]
