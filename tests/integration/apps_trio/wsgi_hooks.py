"""Lifespan hooks for the WSGI apps served on hypercorn's trio worker: each marks the
test's directory ($CROSSGATE_TEST_DIR), so the test sees that it ran and in which
process, even after the server has gone."""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.integration.apps_asgi import mark
from tests.integration.apps_wsgi import mark_started

__all__ = ["on_shutdown", "on_startup"]


def _marking(phase: str) -> Callable[[], None]:
    def hook() -> None:
        mark(f"{phase}-wsgi-{os.getpid()}")

    hook.__name__ = f"mark_{phase}"
    return hook


on_startup: list[Callable[[], None]] = [mark_started, _marking("startup")]
on_shutdown: list[Callable[[], None]] = [_marking("shutdown")]
