"""The one runner of lifespan hooks, behind ``with_lifespan(app, on_startup=...)`` and
``wsgi_to_asgi(app, on_startup=...)`` alike.

A hook is sync or async; sync ones run off the loop. A hook taking one positional argument
receives the lifespan state dict, so it can put resources there for the requests
(``scope["state"]``, ``request.state`` in Starlette). The hooks of a phase run in order
under one timeout; the first that fails stops them, and its message is the one the server
gets in ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction

from crossgate._errors import LifespanError
from crossgate.adapters._bridge import run_sync
from crossgate.adapters._bridge import timeout as deadline_after
from crossgate.adapters.lifespan._manager import DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STARTUP_TIMEOUT

__all__ = ["Hook", "Hooks", "RunSync"]

logger = logging.getLogger(__name__)

#: A startup or shutdown hook: sync or async, taking nothing or the lifespan state dict.
Hook = Callable[..., object]
#: How a sync hook runs off the loop: ``await run(fn, *args)``.
RunSync = Callable[..., Awaitable[object]]


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

    async def __call__(self, state: dict[str, Any], run: RunSync) -> None:
        args = (state,) if self.takes_state else ()
        if self.is_async:
            await cast("Awaitable[object]", self.fn(*args))
            return
        result = await run(self.fn, *args)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            await result


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True


def _callables(hooks: Hook | Iterable[Hook]) -> tuple[Hook, ...]:
    if callable(hooks):
        return (hooks,)
    return tuple(hooks)


class Hooks:
    """Startup and shutdown hooks, run the same way wherever crossgate takes them.

    Args:
        on_startup: one hook or several, run by :meth:`startup`.
        on_shutdown: one hook or several, run by :meth:`shutdown`.
        startup_timeout: seconds all the startup hooks together may take (None: no bound).
        shutdown_timeout: seconds all the shutdown hooks together may take (None: no bound).
        run_sync: how a sync hook runs off the loop (default: the bridge's ``run_sync``;
            ``wsgi_to_asgi`` runs them in its worker pool, beside the app).

    Raises:
        TypeError: a hook is not callable, or takes more than one argument.
    """

    __slots__ = (
        "_run_sync",
        "_shutdown",
        "_startup",
        "on_shutdown",
        "on_startup",
        "shutdown_timeout",
        "startup_timeout",
    )

    def __init__(
        self,
        on_startup: Hook | Iterable[Hook] = (),
        on_shutdown: Hook | Iterable[Hook] = (),
        *,
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
        run_sync: RunSync = run_sync,
    ) -> None:
        self.on_startup = _callables(on_startup)
        self.on_shutdown = _callables(on_shutdown)
        self._startup = tuple(map(_Hook, self.on_startup))
        self._shutdown = tuple(map(_Hook, self.on_shutdown))
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._run_sync = run_sync

    async def startup(self, state: dict[str, Any]) -> None:
        """Run the startup hooks in order.

        Raises:
            LifespanError: a hook raised, or the hooks took longer than
                ``startup_timeout``; the message names the hook.
        """
        await self._run(self._startup, state, "on_startup", self.startup_timeout)

    async def shutdown(self, state: dict[str, Any]) -> None:
        """Run the shutdown hooks in order.

        Raises:
            LifespanError: as :meth:`startup`, within ``shutdown_timeout``.
        """
        await self._run(self._shutdown, state, "on_shutdown", self.shutdown_timeout)

    async def _run(
        self, hooks: tuple[_Hook, ...], state: dict[str, Any], phase: str, timeout: float | None
    ) -> None:
        """Run ``hooks`` in order; the first failure stops them."""
        if not hooks:
            return
        current = hooks[0]
        run = self._run_sync
        try:
            async with deadline_after(timeout) as deadline:
                for current in hooks:
                    await current(state, run)
        except TimeoutError as exc:
            if not deadline.expired():
                raise _failed(phase, current, exc) from None
            message = f"{phase} hook {current.name} did not finish within {timeout} s"
            logger.error("%s", message)
            raise LifespanError(message) from None
        except Exception as exc:
            raise _failed(phase, current, exc) from None


def _failed(phase: str, hook: _Hook, exc: Exception) -> LifespanError:
    logger.error("%s hook %s raised", phase, hook.name, exc_info=exc)
    # Lifespan spec (Startup Failed / Shutdown Failed): "message (Unicode string) --
    # Optional; if missing defaults to ''." The server prints it: it must say what broke.
    return LifespanError(f"{phase} hook {hook.name} raised {type(exc).__name__}: {exc}")
