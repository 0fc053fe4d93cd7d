"""The app's side of the lifespan protocol, for crossgate's own apps: served once, here,
around an async context manager (entered on ``lifespan.startup``, left on
``lifespan.shutdown``), and the lifespans of several apps composed into one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

from crossgate._errors import LifespanError
from crossgate._types import ASGIApp, Message, Receive, Send
from crossgate.adapters.lifespan._manager import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LifespanManager,
)

__all__ = ["LifespanGroup", "Teardown", "serve_lifespan"]

logger = logging.getLogger(__name__)


async def serve_lifespan(
    receive: Receive, send: Send, context: AbstractAsyncContextManager[object]
) -> None:
    """Answer a server's lifespan events around ``context``: entered on
    ``lifespan.startup``, left on ``lifespan.shutdown``.

    The one place crossgate's apps (``wsgi_to_asgi``, ``with_lifespan``, ``dispatch``,
    ``fallback``) speak the protocol. A :class:`LifespanError` raised by the context is
    the ``message`` of ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``; any
    other error is logged with its traceback and named in the message. Lifespan spec:
    "message (Unicode string) -- Optional; if missing defaults to ''", and after a failed
    startup no shutdown comes. A server that sends ``lifespan.shutdown`` with no startup
    before it gets the context entered and left at once, so what it undoes still runs.

    Args:
        receive: the lifespan scope's ``receive()``.
        send: the lifespan scope's ``send()``.
        context: what startup enters and shutdown leaves (the app's resources).
    """
    started = False
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "lifespan.startup" and not started:
            error = await _enter(context)
            if error is not None:
                await send({"type": "lifespan.startup.failed", "message": error})
                return
            started = True
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            error = None if started else await _enter(context)
            if error is None:
                error = await _leave(context)
            if error is None:
                await send({"type": "lifespan.shutdown.complete"})
            else:
                await send({"type": "lifespan.shutdown.failed", "message": error})
            return


async def _enter(context: AbstractAsyncContextManager[object]) -> str | None:
    try:
        await context.__aenter__()
    except Exception as exc:
        return _failure("startup", exc)
    return None


async def _leave(context: AbstractAsyncContextManager[object]) -> str | None:
    try:
        await context.__aexit__(None, None, None)
    except Exception as exc:
        return _failure("shutdown", exc)
    return None


def _failure(phase: str, exc: Exception) -> str:
    if isinstance(exc, LifespanError):
        return str(exc)  # the context's own message, logged where it was raised
    logger.error("lifespan %s raised", phase, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


class Teardown:
    """What a lifespan context undoes at shutdown: steps pushed as it starts things, run
    last pushed first (an :class:`~contextlib.AsyncExitStack`), every one of them even
    when another failed.

    A step fails by raising :class:`LifespanError`; :meth:`close` returns the messages.
    """

    __slots__ = ("_failures", "_stack")

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._failures: list[str] = []

    def push(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run ``step()`` at :meth:`close`, before the steps pushed earlier."""
        self._stack.push_async_callback(self._run, step)

    async def _run(self, step: Callable[[], Awaitable[object]]) -> None:
        try:
            await step()
        except LifespanError as exc:
            self._failures.append(str(exc))

    async def close(self) -> list[str]:
        """Run the steps; the messages of those that failed, in the order they ran."""
        await self._stack.aclose()
        failures, self._failures = self._failures, []
        return failures


Key = TypeVar("Key", bound=Hashable)


class LifespanGroup(Generic[Key]):
    """The lifespans of several apps served as one (``dispatch``'s mounts, ``fallback``'s
    two apps): started in order, shut down in reverse order; a failed startup shuts down
    those that had started, and names the app that failed. An app without a lifespan is
    skipped. ``states`` holds each started app's state, by its key, for its requests.

    Args:
        apps: ``(key, app)`` pairs, in the order they start.
        name: prefixes the messages (``"crossgate.dispatch"``).
        describe: names an app in the messages, from its key.
        startup_timeout: seconds each app's lifespan startup may take (None: no bound).
        shutdown_timeout: seconds each app's lifespan shutdown may take (None: no bound).
    """

    def __init__(
        self,
        apps: Sequence[tuple[Key, ASGIApp]],
        *,
        name: str,
        describe: Callable[[Key], str],
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.apps = list(apps)
        self.name = name
        self.describe = describe
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.states: dict[Key, dict[str, Any]] = {}

    async def serve(self, scope: Message, receive: Receive, send: Send) -> None:
        """Serve a ``lifespan`` scope for the whole group."""
        server_state: dict[str, Any] = scope.get("state") or {}
        await serve_lifespan(receive, send, self.running(server_state))

    @contextlib.asynccontextmanager
    async def running(self, server_state: dict[str, Any]) -> AsyncIterator[None]:
        """Every app's lifespan, each seeded with ``server_state``, for the block."""
        self.states = {}
        teardown = Teardown()
        for key, app in self.apps:
            manager = LifespanManager(
                app, startup_timeout=self.startup_timeout, shutdown_timeout=self.shutdown_timeout
            )
            manager.state.update(server_state)
            try:
                await manager.startup()
            except LifespanError as exc:
                message = f"{self.name}: {self.describe(key)} failed to start: {exc}"
                logger.error("%s", message)
                # Lifespan spec (Startup Failed): "If a server sees this it should log/print
                # the message provided and then exit." No shutdown follows: undo what
                # started now.
                await teardown.close()
                raise LifespanError(message) from None
            if manager.supported:
                self.states[key] = manager.state
                teardown.push(functools.partial(self._stop, key, manager))
        yield
        failures = await teardown.close()
        if failures:
            raise LifespanError(f"{self.name}: " + "; ".join(failures))

    async def _stop(self, key: Key, manager: LifespanManager) -> None:
        self.states.pop(key, None)
        try:
            await manager.shutdown()
        except LifespanError as exc:  # the others still shut down (Teardown)
            logger.error("%s: %s: %s", self.name, self.describe(key), exc)
            raise LifespanError(f"{self.describe(key)}: {exc}") from None
