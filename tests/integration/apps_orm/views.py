"""Async views that call the ORM through crossgate.sync_to_async (thread-sensitive)."""

from __future__ import annotations

import os
import threading
from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse

from crossgate import sync_to_async
from tests.integration.apps_orm.apps import django_threads
from tests.integration.apps_orm.models import Item


def _query(i: int) -> dict[str, Any]:
    """One ORM query, and which thread and database connection served it."""
    found = Item.objects.filter(pk=i % 3 + 1).first()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            session = cursor.fetchone()[0]
    else:
        session = id(connection.connection)
    return {"thread": threading.get_ident(), "session": session, "found": found is not None}


async def orm(request: HttpRequest) -> JsonResponse:
    calls = int(request.GET.get("calls", "4"))
    results = [await sync_to_async(_query)(i) for i in range(calls)]
    return _answer(results, django_threads.pop(id(request.scope), None))


def _answer(results: list[dict[str, Any]], django_thread: int | None) -> JsonResponse:
    return JsonResponse(
        {
            "threads": sorted({r["thread"] for r in results}),
            "sessions": sorted({r["session"] for r in results}),
            "found": all(r["found"] for r in results),
            "django_thread": django_thread,
        }
    )


async def fds(request: HttpRequest) -> JsonResponse:
    """File descriptors of this process open on the SQLite database (its -wal and -shm
    files included): one per open connection and more, none once all are closed."""
    name = str(connection.settings_dict["NAME"])
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (listdir's own fd)
            continue
        if target.startswith(name):
            count += 1
    return JsonResponse({"fds": count})
