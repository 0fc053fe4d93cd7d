"""Shared fixtures: every async test runs on both asyncio's loop and uvloop."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """The anyio pytest plugin runs `@pytest.mark.anyio` tests on each of these loops."""
    backend: tuple[str, dict[str, Any]] = request.param
    return backend
