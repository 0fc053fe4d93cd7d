"""Give any ASGI application a lifespan: ``with_lifespan(app, on_startup=..., on_shutdown=...)``.

The shim answers the lifespan scope itself, so a server never sees an app that cannot take
it (Django's ``ASGIHandler`` raises on it, and uvicorn logs that at every start). Hooks are
sync or async callables; sync ones run off the loop (:func:`~crossgate.adapters._bridge.run_sync`).
A hook taking one positional argument receives the lifespan state dict, so it can put
resources there for the requests (``scope["state"]``, ``request.state`` in Starlette).

If the wrapped app has a lifespan of its own (FastAPI, Starlette), ``forward="auto"`` runs
it too, through :class:`~crossgate.adapters.lifespan.LifespanManager`, **inside** the hooks:
startup hooks first, then the app's startup; the app's shutdown first, then the shutdown
hooks. The shim is a layer around the app, so like nested ``with`` blocks the outer layer's
resources exist for the whole of the inner one's life: the app's startup may use what the
hooks put in the state, and its shutdown still finds them open. The app's state is merged
into the state the server gave. ``forward=False`` never sends the app a lifespan event.

Lifespan protocol: https://asgi.readthedocs.io/en/latest/specs/lifespan.html
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, cast

from asgiref.sync import iscoroutinefunction

from crossgate._errors import LifespanError
from crossgate._types import ASGIApp, Message, Receive, Send
from crossgate.adapters._bridge import run_sync
from crossgate.adapters.lifespan import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LifespanManager,
    serve_lifespan,
)

__all__ = ["Hook", "LifespanShim", "with_lifespan"]

logger = logging.getLogger(__name__)

#: A startup or shutdown hook: sync or async, taking nothing or the lifespan state dict.
Hook = Callable[..., object]


class _Hook:
    """A hook with what was found out about it once, at construction."""

    __slots__ = ("fn", "is_async", "name", "takes_state")

    def __init__(self, fn: Hook) -> None:
        if not callable(fn):
            raise TypeError(f"a lifespan hook must be callable, not {fn!r}")
        self.fn = fn
        self.name = getattr(fn, "__qualname__", None) or repr(fn)
        self.is_async = iscoroutinefunction(fn) or iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 -- an object with an async __call__
        )
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins without a signature: call them bare
            self.takes_state = False
            return
        self.takes_state = _binds(signature, 1)
        if not self.takes_state and not _binds(signature, 0):
            raise TypeError(
                f"lifespan hook {self.name} must take no arguments or one (the state dict)"
            )

    async def __call__(self, state: dict[str, Any]) -> None:
        args = (state,) if self.takes_state else ()
        if self.is_async:
            await cast("Awaitable[object]", self.fn(*args))
            return
        result = await run_sync(self.fn, *args)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            await result


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True


def _hooks(hooks: Hook | Iterable[Hook]) -> tuple[_Hook, ...]:
    if callable(hooks):
        return (_Hook(hooks),)
    return tuple(_Hook(hook) for hook in hooks)


class LifespanShim:
    """An ASGI app that runs ``app`` with lifespan hooks (see the module docstring).

    Hooks (one callable or several, sync or async, taking nothing or the state dict) run on
    ``lifespan.startup``/``lifespan.shutdown``; a raising hook is reported as
    ``lifespan.startup.failed``/``lifespan.shutdown.failed`` with its message. The app's own
    lifespan, if it has one, runs inside the hooks (``forward="auto"``).

    Every scope but ``lifespan`` goes to ``app`` unchanged, except that when the server's
    lifespan scope had no ``state`` (servers from before state existed) the shim keeps the
    state itself and gives each request a shallow copy of it as ``scope["state"]``.
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
        self.on_startup = _hooks(on_startup)
        self.on_shutdown = _hooks(on_shutdown)
        self.forward = forward
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._own_state: dict[str, Any] | None = None

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        own = self._own_state
        if own and "state" not in scope:
            scope = {**scope, "state": dict(own)}
        await self.app(scope, receive, send)

    async def _lifespan(self, scope: Message, receive: Receive, send: Send) -> None:
        # Lifespan spec: "state Optional(dict[Unicode string, Any]) -- An empty namespace
        # where the application can persist state [...] Optional; if missing the server does
        # not support this feature." Then the shim holds it and hands out copies itself.
        state: dict[str, Any] | None = scope.get("state")
        if state is None:
            state = self._own_state = {}
        started: list[LifespanManager] = []  # the app's own lifespan, once it started

        async def startup() -> str | None:
            manager, error = await self._startup(state)
            if manager is not None:
                started.append(manager)
            return error

        await serve_lifespan(
            receive,
            send,
            startup,
            lambda: self._shutdown(started[0] if started else None, state),
        )

    async def _startup(self, state: dict[str, Any]) -> tuple[LifespanManager | None, str | None]:
        error = await self._run(self.on_startup, state, "on_startup", self.startup_timeout)
        if error is not None or self.forward is False:
            return None, error
        manager = LifespanManager(
            self.app, startup_timeout=self.startup_timeout, shutdown_timeout=self.shutdown_timeout
        )
        manager.state.update(state)  # the app's startup sees what the hooks made
        try:
            await manager.startup()
        except LifespanError as exc:
            logger.error("with_lifespan: %s", exc)
            # The server exits without a shutdown after startup.failed: close what the
            # startup hooks opened now, or nobody will.
            await self._run(self.on_shutdown, state, "on_shutdown", self.shutdown_timeout)
            return None, str(exc)
        if not manager.supported:
            # Lifespan spec: an app that raises on the lifespan scope does not support it;
            # the hooks alone are its lifespan, and nothing reaches the server.
            return None, None
        state.update(manager.state)
        return manager, None

    async def _shutdown(self, manager: LifespanManager | None, state: dict[str, Any]) -> str | None:
        errors: list[str] = []
        if manager is not None:
            try:
                await manager.shutdown()
            except LifespanError as exc:  # the hooks still run: their resources must close
                logger.error("with_lifespan: %s", exc)
                errors.append(str(exc))
        error = await self._run(self.on_shutdown, state, "on_shutdown", self.shutdown_timeout)
        if error is not None:
            errors.append(error)
        return "; ".join(errors) if errors else None

    @staticmethod
    async def _run(
        hooks: tuple[_Hook, ...], state: dict[str, Any], phase: str, timeout: float | None
    ) -> str | None:
        """Run ``hooks`` in order; the first failure stops them and comes back as a message."""
        if not hooks:
            return None
        current = hooks[0]
        try:
            async with asyncio.timeout(timeout) as deadline:
                for current in hooks:
                    await current(state)
        except TimeoutError as exc:
            if not deadline.expired():
                return _failed(phase, current, exc)
            message = f"{phase} hook {current.name} did not finish within {timeout} s"
            logger.error("%s", message)
            return message
        except Exception as exc:
            return _failed(phase, current, exc)
        return None

    def __repr__(self) -> str:
        return f"<LifespanShim {self.app!r}>"


def _failed(phase: str, hook: _Hook, exc: Exception) -> str:
    logger.error("%s hook %s raised", phase, hook.name, exc_info=exc)
    # Lifespan spec (Startup Failed / Shutdown Failed): "message (Unicode string) --
    # Optional; if missing defaults to ''." The server prints it: it must say what broke.
    return f"{phase} hook {hook.name} raised {type(exc).__name__}: {exc}"


#: ``with_lifespan(app, on_startup=..., on_shutdown=...)``, the functional spelling: the
#: class itself, so that its options are declared (and typed) once.
with_lifespan = LifespanShim
