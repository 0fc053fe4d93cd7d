"""The FastAPI app, and the middleware that gives each request Django's request scope."""

from __future__ import annotations

import os
import threading
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_orm.settings")
django.setup()

from django.core import signals  # noqa: E402 - after django.setup()
from django.db import connection  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from crossgate import sync_to_async, thread_sensitive  # noqa: E402
from examples.django_orm.models import Note  # noqa: E402


class DjangoRequestScope:
    """ASGI middleware: each HTTP request in a thread-sensitive context, between Django's
    ``request_started`` and ``request_finished`` signals sent on that context's thread,
    as Django's own handler does (its connection is then closed per ``CONN_MAX_AGE``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with thread_sensitive():
            await sync_to_async(_request_started)()
            try:
                await self.app(scope, receive, send)
            finally:
                await sync_to_async(_request_finished)()


def _request_started() -> None:
    signals.request_started.send(sender=DjangoRequestScope)


def _request_finished() -> None:
    signals.request_finished.send(sender=DjangoRequestScope)


app = FastAPI()
app.add_middleware(DjangoRequestScope)


def _create(text: str) -> dict[str, Any]:
    note = Note.objects.create(text=text)
    return {"id": note.id, "text": note.text, "thread": threading.get_ident()}


def _listing() -> dict[str, Any]:
    notes = [{"id": n.id, "text": n.text} for n in Note.objects.order_by("id")]
    return {"notes": notes, "thread": threading.get_ident()}


@app.post("/notes")
async def create(text: str) -> dict[str, Any]:
    note = await sync_to_async(_create)(text)
    listing = await sync_to_async(_listing)()
    # Both ORM calls ran on the request's one thread, over one connection.
    return {**note, "same_thread": note["thread"] == listing["thread"]}


@app.get("/notes")
async def listing() -> dict[str, Any]:
    return await sync_to_async(_listing)()


@app.get("/connections")
async def connections() -> dict[str, int]:
    """Open file descriptors of this process on the SQLite file: 0 once every request's
    connection is closed (with CONN_MAX_AGE=0)."""
    name = str(connection.settings_dict["NAME"])
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(name):
                count += 1
        except OSError:
            continue
    return {"open": count}
