"""Give any ASGI application a lifespan: ``with_lifespan(app, on_startup=..., on_shutdown=...)``.

The shim answers the lifespan scope itself, so a server never sees an app that cannot take
it (Django's ``ASGIHandler`` raises on it, and uvicorn logs that at every start). Hooks run
as :class:`~crossgate.adapters.lifespan._hooks.Hooks` runs them: sync or async, sync ones
off the loop (:func:`~crossgate.adapters._bridge.run_sync`), one taking a positional
argument given the lifespan state dict.

If the wrapped app has a lifespan of its own (FastAPI, Starlette), ``forward="auto"`` runs
it too, through :class:`~crossgate.adapters.lifespan.LifespanManager`, **inside** the hooks:
startup hooks first, then the app's startup; the app's shutdown first, then the shutdown
hooks. The shim is a layer around the app, so like nested ``with`` blocks the outer layer's
resources exist for the whole of the inner one's life: the app's startup may use what the
hooks put in the state, and its shutdown still finds them open. The app's state is merged
into the state the server gave. ``forward=False`` never sends the app a lifespan event.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

from crossgate._errors import LifespanError
from crossgate._types import ASGIApp, Message, Receive, Send
from crossgate.adapters.lifespan._hooks import Hook, Hooks
from crossgate.adapters.lifespan._manager import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LifespanManager,
)
from crossgate.adapters.lifespan._serve import Teardown, serve_lifespan

__all__ = ["LifespanShim", "with_lifespan"]

logger = logging.getLogger(__name__)


class LifespanShim:
    """An ASGI app that runs ``app`` with lifespan hooks (see the module docstring).

    Hooks run on ``lifespan.startup``/``lifespan.shutdown``; a raising hook is reported as
    ``lifespan.startup.failed``/``lifespan.shutdown.failed`` with its message. The app's own
    lifespan, if it has one, runs inside the hooks (``forward="auto"``).

    Every scope but ``lifespan`` goes to ``app`` unchanged, except that when the server's
    lifespan scope had no ``state`` (servers from before state existed) the shim keeps the
    state itself and gives each request a shallow copy of it as ``scope["state"]``.

    Args:
        app: the ASGI app to run.
        on_startup: one callable or several, sync or async, taking nothing or the state
            dict; run in order at startup.
        on_shutdown: as ``on_startup``, run at shutdown.
        forward: ``"auto"`` runs the app's own lifespan inside the hooks, if it has one;
            False never sends it a lifespan event.
        startup_timeout: seconds the startup hooks together, and then the app's startup,
            may each take (None: no bound).
        shutdown_timeout: seconds the app's shutdown, and then the shutdown hooks
            together, may each take (None: no bound).

    Raises:
        ValueError: ``forward`` is neither ``"auto"`` nor False.
        TypeError: a hook is not callable, or takes more than one argument.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        on_startup: Hook | Iterable[Hook] = (),
        on_shutdown: Hook | Iterable[Hook] = (),
        forward: Literal["auto", False] = "auto",
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        if forward not in ("auto", False):
            raise ValueError(f"forward must be 'auto' or False, not {forward!r}")
        self.app = app
        self.hooks = Hooks(
            on_startup,
            on_shutdown,
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
        )
        self.on_startup = self.hooks.on_startup
        self.on_shutdown = self.hooks.on_shutdown
        self.forward = forward
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._own_state: dict[str, Any] | None = None

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Lifespan spec: "state Optional(dict[Unicode string, Any]) -- An empty
            # namespace where the application can persist state [...] Optional; if missing
            # the server does not support this feature." Then the shim holds it and hands
            # out copies itself.
            state: dict[str, Any] | None = scope.get("state")
            if state is None:
                state = self._own_state = {}
            await serve_lifespan(receive, send, self._running(state))
            return
        own = self._own_state
        if own and "state" not in scope:
            scope = {**scope, "state": dict(own)}
        await self.app(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _running(self, state: dict[str, Any]) -> AsyncIterator[None]:
        """The hooks, and inside them the app's own lifespan, for the block."""
        hooks = self.hooks
        await hooks.startup(state)
        teardown = Teardown()
        teardown.push(functools.partial(hooks.shutdown, state))
        if self.forward is not False:
            manager = LifespanManager(
                self.app,
                startup_timeout=self.startup_timeout,
                shutdown_timeout=self.shutdown_timeout,
            )
            manager.state.update(state)  # the app's startup sees what the hooks made
            try:
                await manager.startup()
            except LifespanError as exc:
                logger.error("with_lifespan: %s", exc)
                # The server exits without a shutdown after startup.failed: close what the
                # startup hooks opened now, or nobody will.
                await teardown.close()
                raise
            # Lifespan spec: an app that raises on the lifespan scope does not support it;
            # the hooks alone are its lifespan, and nothing reaches the server.
            if manager.supported:
                state.update(manager.state)
                teardown.push(functools.partial(_stop_app, manager))
        yield
        failures = await teardown.close()
        if failures:
            raise LifespanError("; ".join(failures))

    def __repr__(self) -> str:
        return f"<LifespanShim {self.app!r}>"


async def _stop_app(manager: LifespanManager) -> None:
    try:
        await manager.shutdown()
    except LifespanError as exc:  # the hooks still run: their resources must close
        logger.error("with_lifespan: %s", exc)
        raise


#: ``with_lifespan(app, on_startup=..., on_shutdown=...)``, the functional spelling: the
#: class itself, so that its options are declared (and typed) once.
with_lifespan = LifespanShim
