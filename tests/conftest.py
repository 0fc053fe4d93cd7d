"""Shared fixtures: every async test runs on asyncio's loop, uvloop and trio (its module
or the test marked ``on_trio``); tests that start their own loops (Hypothesis properties)
run on each of ``tests.loops.LOOPS`` through ``tests.loops.run_on``.

Every loop-using module is on trio (issue 26). What stays on asyncio, each with its
reason at the test: a test of an ``on_trio`` module that is about asyncio itself, or that
drives a peer running on asyncio only (asgiref's ``sync_to_async``), says so with
``not_on_trio(reason)``; ``tests/properties/test_differential.py`` runs the peers
(a2wsgi, asgiref, uvicorn's and Starlette's WSGI middleware) on asyncio, which is all they
support, and crossgate's side of its agreement property on all three loops.
"""

from __future__ import annotations

from typing import Any

import pytest

_ASYNCIO = pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio")
_UVLOOP = pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")
_TRIO = pytest.param(("trio", {}), id="trio")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "on_trio: the async tests also run on trio")
    config.addinivalue_line(
        "markers", "not_on_trio(reason): an async test of an on_trio module about asyncio itself"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "anyio_backend" not in metafunc.fixturenames:
        return
    trio = (
        metafunc.definition.get_closest_marker("on_trio") is not None
        and metafunc.definition.get_closest_marker("not_on_trio") is None
    )
    backends = [_ASYNCIO, _UVLOOP, _TRIO] if trio else [_ASYNCIO, _UVLOOP]
    metafunc.parametrize("anyio_backend", backends, indirect=True)


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """The anyio pytest plugin runs `@pytest.mark.anyio` tests on each of these loops."""
    backend: tuple[str, dict[str, Any]] = request.param
    return backend
