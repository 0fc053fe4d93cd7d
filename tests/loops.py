"""Running a coroutine on each event loop crossgate supports, for tests that start their
own loop (Hypothesis properties, which cannot use the anyio fixture per example)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import uvloop

__all__ = ["LOOPS", "run_on"]

T = TypeVar("T")

#: The loops every loop-using test runs on (as the anyio fixture's ids).
LOOPS = ("asyncio", "trio", "uvloop")


def run_on(loop: str, main: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``main(*args)`` run to its end on a new loop of the kind named in :data:`LOOPS`."""
    if loop == "trio":
        result: T = trio.run(main, *args)
        return result
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_await(main, *args))


async def _await(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    return await main(*args)
