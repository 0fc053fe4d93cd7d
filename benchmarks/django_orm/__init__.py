"""The Django project of ``benchmarks/bench_sensitive.py``: async views that query the ORM
through a bridge, on SQLite or PostgreSQL, as the environment says:

* ``CROSSGATE_BENCH_ENGINE``: ``sqlite`` (the file named by ``CROSSGATE_BENCH_NAME``) or
  ``postgresql`` (database ``CROSSGATE_BENCH_NAME`` on 127.0.0.1, port
  ``CROSSGATE_BENCH_PORT``, user ``CROSSGATE_BENCH_USER``); ``CONN_MAX_AGE`` is 0, Django's
  default: each request opens its connection and ``request_finished`` closes it.

Routes ``/<bridge>/<work>?calls=N``: N queries of one kind, each through one bridge:

* bridges: ``crossgate`` (``crossgate.sync_to_async``), ``asgiref`` (asgiref's
  ``sync_to_async``, what ``QuerySet.aget`` and friends use), ``inline`` (the query called
  right in the async view: only the ceiling's server, :mod:`.inline`, allows it);
* work: ``filter`` (``Item.objects.filter(pk=...).first()``), ``get``
  (``Item.objects.get(pk=...)``), ``raw`` (one ``SELECT`` through Django's cursor: the
  cheapest database work a hop can carry).

Each answers how many rows it found and how many database connections its queries used
(one, when all ran on one thread), which the benchmark checks before loading a server.

Servers: ``asgi:application`` (Django's ``ASGIHandler``), ``asgi:dispatched`` (the same
mounted in ``crossgate.dispatch``), ``inline:application`` (the zero-hop ceiling).
"""

from __future__ import annotations

__all__ = ["ENV", "ROWS", "SETTINGS"]

SETTINGS = "benchmarks.django_orm.settings"
ENV = {
    "engine": "CROSSGATE_BENCH_ENGINE",
    "name": "CROSSGATE_BENCH_NAME",
    "port": "CROSSGATE_BENCH_PORT",
    "user": "CROSSGATE_BENCH_USER",
}
#: Rows of the table the queries read (``python -m benchmarks.django_orm.seed``).
ROWS = 3
