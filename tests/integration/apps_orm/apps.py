"""The app of the ORM project, labelled ``apps_orm``."""

from __future__ import annotations

import threading
from typing import Any

from django.apps import AppConfig

#: The thread on which Django sent ``request_started``, Django's own thread-sensitive
#: work, by the id of the request's scope (Django passes the scope to the signal).
django_threads: dict[int, int] = {}


def _note_thread(scope: Any = None, **kwargs: object) -> None:
    if scope is not None:
        django_threads[id(scope)] = threading.get_ident()


class OrmConfig(AppConfig):  # type: ignore[misc]  # django has no type stubs here
    name = "tests.integration.apps_orm"
    label = "apps_orm"

    def ready(self) -> None:
        from django.core.signals import request_started  # noqa: PLC0415

        request_started.connect(_note_thread, dispatch_uid="apps_orm-thread")
