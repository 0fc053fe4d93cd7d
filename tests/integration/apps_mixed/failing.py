"""Two mounts: /ok starts (and records it), /billing fails its startup."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette

from crossgate.middleware.dispatch import dispatch

MARKERS = Path(os.environ.get("CROSSGATE_TEST_DIR", "."))


@contextlib.asynccontextmanager
async def ok_lifespan(app: Starlette) -> AsyncIterator[None]:
    (MARKERS / "ok-startup").touch()
    yield
    (MARKERS / "ok-shutdown").touch()


def connect_gateway() -> None:
    raise RuntimeError("payment gateway unreachable")


@contextlib.asynccontextmanager
async def billing_lifespan(app: Starlette) -> AsyncIterator[None]:
    connect_gateway()
    yield  # pragma: no cover


app = dispatch(
    {"/ok": Starlette(lifespan=ok_lifespan), "/billing": Starlette(lifespan=billing_lifespan)}
)
