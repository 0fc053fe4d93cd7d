"""The lifespan driver on any loop of the bridge's backends (asyncio or trio).

:class:`~crossgate.adapters.lifespan.LifespanManager` speaks the protocol (its ``_send``,
``_ended`` and ``_resolve`` are used here as they are) but waits, times out and cancels
with asyncio's own calls. :class:`AnyLoopLifespan` replaces just those steps with the
bridge's backend functions, so that :class:`~crossgate.adapters.asgi_to_wsgi.AsgiToWsgi`
can run a trio app's lifespan on the trio portal. Kept apart while the lifespan package
is being reworked; once its manager waits through the backend, this module goes.
"""

from __future__ import annotations

from typing import Any

from crossgate._errors import LifespanError
from crossgate._types import Message
from crossgate.adapters._bridge import (
    Task,
    Waiter,
    fail_after,
    is_cancellation,
    running_loop,
    wait_tasks,
)
from crossgate.adapters.lifespan import CANCEL_GRACE, LifespanManager

__all__ = ["AnyLoopLifespan"]

# LifespanManager's phases (its module keeps them private).
_IDLE = "idle"
_STARTING = "starting"
_STARTED = "started"
_STOPPING = "stopping"
_STOPPED = "stopped"


class AnyLoopLifespan(LifespanManager):
    """:class:`LifespanManager` on whichever loop runs it (see the module's docstring)."""

    _task: Any
    _waiter: Any
    _shutdown_requested: Any

    async def startup(self) -> dict[str, Any]:
        if self._phase != _IDLE:
            raise RuntimeError(f"lifespan startup already ran (phase {self._phase})")
        loop = running_loop()
        self._phase = _STARTING
        waiter: Waiter[None] = loop.create_future()
        self._waiter = waiter
        self._shutdown_requested = loop.create_future()
        scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = loop.create_task(self._run(scope))
        try:
            async with fail_after(self.startup_timeout):
                await waiter
        except TimeoutError:
            self._phase = _STOPPED
            await self._cancel_task()
            raise LifespanError(
                f"ASGI lifespan startup did not complete within {self.startup_timeout} s"
            ) from None
        except BaseException:
            if self._phase == _STARTING:
                self._phase = _STOPPED
            await self._cancel_task()
            raise
        return self.state

    async def shutdown(self) -> None:
        if self._phase != _STARTED:
            return
        task: Task = self._task
        if task.done():
            self._phase = _STOPPED
            error = self.error
            if error is not None:
                raise LifespanError(
                    f"ASGI lifespan task failed before shutdown: {error!r}"
                ) from error
            return
        self._phase = _STOPPING
        waiter: Waiter[None] = running_loop().create_future()
        self._waiter = waiter
        # Lifespan spec (Shutdown): "Sent to the application when the server has stopped
        # accepting connections and closed all active connections."
        self._shutdown_requested.set_result(None)
        try:
            async with fail_after(self.shutdown_timeout):
                await waiter
                await wait_tasks((task,), CANCEL_GRACE)
        except TimeoutError:
            raise LifespanError(
                f"ASGI lifespan shutdown did not complete within {self.shutdown_timeout} s"
            ) from None
        finally:
            self._phase = _STOPPED
            await self._cancel_task()

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if is_cancellation(exc):
                self._ended(None, cancelled=True)
                raise
            self._ended(exc)
        else:
            self._ended(None)

    async def _receive(self) -> Message:
        if not self._received_startup:
            self._received_startup = True
            return {"type": "lifespan.startup"}
        await self._shutdown_requested
        if self._received_shutdown:  # a receive() after lifespan.shutdown: nothing comes
            await running_loop().create_future()
        self._received_shutdown = True
        return {"type": "lifespan.shutdown"}

    async def _cancel_task(self) -> None:
        task: Task | None = self._task
        if task is None or task.done():
            return
        task.cancel()
        await wait_tasks((task,), CANCEL_GRACE)
