"""Fixtures of the adapter tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from crossgate._types import WSGIApp
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI, wsgi_to_asgi


@pytest.fixture
def make() -> Iterator[Callable[..., WSGIToASGI]]:
    """Build adapters; their pools are shut down after the test."""
    made: list[WSGIToASGI] = []

    def factory(app: WSGIApp, **options: Any) -> WSGIToASGI:
        # Most tests here are about wsgi.input streaming from receive(): small bodies are
        # not received whole before the app runs unless a test asks for it.
        options.setdefault("body_prefetch", 0)
        adapter = wsgi_to_asgi(app, **options)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.pool.shutdown()
