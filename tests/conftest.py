"""Shared fixtures: every async test runs on asyncio's loop and uvloop, and on trio where
its module (or the test) is marked ``on_trio``.

On trio so far (issue 26, part 1): the bridge and the function-level calls
(``test_bridge``, ``test_calls``, ``test_sensitive``), ``asgi_to_wsgi`` with
``backend="trio"`` (``test_asgi_to_wsgi``, the property and misuse suites' asgi_to_wsgi
parts), and ``crossgate.testing`` (``tests/testing``). Not yet: ``wsgi_to_asgi``,
``lifespan``, ``dispatch`` and ``with_lifespan`` (tests/adapters/test_wsgi_to_asgi.py,
test_lifespan.py, tests/middleware/), whose loop side still calls asyncio directly; they
move onto the bridge's backend in part 2. A test of an ``on_trio`` module that is about
asyncio itself says so with ``not_on_trio``.
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
