"""One async view: N queries of one kind, each through one bridge (package docstring)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async as asgiref_sync_to_async
from django.db import connection
from django.http import Http404, HttpRequest, JsonResponse

from benchmarks.django_orm import ROWS
from benchmarks.django_orm.models import Item
from crossgate import sync_to_async

#: (found a row, the id of the database connection the query used)
Answer = tuple[bool, int]


def _filter(pk: int) -> Answer:
    return Item.objects.filter(pk=pk).first() is not None, id(connection.connection)


def _get(pk: int) -> Answer:
    return Item.objects.get(pk=pk).pk == pk, id(connection.connection)


def _raw(pk: int) -> Answer:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name FROM {Item._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone() is not None, id(connection.connection)


WORK: dict[str, Callable[[int], Answer]] = {"filter": _filter, "get": _get, "raw": _raw}


async def _inline(fn: Callable[[int], Answer], pk: int) -> Answer:
    return fn(pk)


def _bridged(
    bridge: Callable[[Callable[[int], Answer]], Callable[[int], Awaitable[Answer]]],
) -> Callable[[Callable[[int], Answer], int], Awaitable[Answer]]:
    wrapped = {fn: bridge(fn) for fn in WORK.values()}

    def call(fn: Callable[[int], Answer], pk: int) -> Awaitable[Answer]:
        return wrapped[fn](pk)

    return call


BRIDGES = {
    "crossgate": _bridged(sync_to_async),
    "asgiref": _bridged(asgiref_sync_to_async),
    "inline": _inline,
}


async def queries(request: HttpRequest, bridge: str, work: str) -> JsonResponse:
    if bridge not in BRIDGES or work not in WORK:
        raise Http404(f"no bridge {bridge!r} or work {work!r}")
    call, fn = BRIDGES[bridge], WORK[work]
    answers = [await call(fn, i % ROWS + 1) for i in range(int(request.GET.get("calls", "4")))]
    return JsonResponse(
        {
            "found": sum(found for found, _ in answers),
            "connections": len({conn for _, conn in answers}),
        }
    )
