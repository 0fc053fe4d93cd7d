"""Helpers shared by the adapter tests."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def no_new_cycles() -> Iterator[None]:
    """Assert that the block leaves no garbage for the cyclic collector: everything it
    made is freed by reference counting as it goes.

    The crossgate logger makes no records meanwhile: pytest's log capture keeps each
    record, so an error logged with its traceback, and all that the traceback holds, would
    stay reachable and hide a cycle.
    """
    logger = logging.getLogger("crossgate")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    gc.collect()
    gc.disable()
    try:
        yield
        assert gc.collect() == 0
    finally:
        gc.enable()
        logger.setLevel(level)
