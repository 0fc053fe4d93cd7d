"""Drive an ASGI application's lifespan from outside: startup, state, shutdown.

``async with lifespan(app) as state:`` runs the app's startup on the current event loop
(asyncio, uvloop or trio: it waits, times out and cancels through the bridge's backend) and
its shutdown when the block ends; ``with lifespan_sync(app) as state:`` does the same from
sync code, on the per-process portal loop (where :mod:`crossgate.adapters.asgi_to_wsgi`
also runs the app's requests, so the objects made at startup stay usable).

Lifespan protocol (https://asgi.readthedocs.io/en/latest/specs/lifespan.html), as enforced:

* ``lifespan.startup.failed`` and ``lifespan.shutdown.failed`` raise :class:`LifespanError`
  with the app's message at once (no waiting for a timeout);
* an app that raises on the lifespan scope, returns without answering, or sends before it
  received ``lifespan.startup`` has no lifespan: the block runs with an empty state;
* startup and shutdown are bounded by their timeouts; past them the app's lifespan task is
  cancelled and :class:`LifespanError` says which phase hung.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

from crossgate._errors import LifespanError
from crossgate._types import ASGIApp, Message
from crossgate.adapters._bridge import (
    Task,
    Waiter,
    fail_after,
    get_portal,
    is_cancellation,
    running_loop,
    wait_tasks,
)

__all__ = [
    "CANCEL_GRACE",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "LifespanManager",
    "lifespan",
    "lifespan_sync",
]

logger = logging.getLogger(__name__)

#: Seconds an app may take to answer ``lifespan.startup`` (models, pools, migrations...).
DEFAULT_STARTUP_TIMEOUT: Final = 60.0
#: Seconds an app may take to answer ``lifespan.shutdown``; below the usual 30 s a process
#: manager (gunicorn's ``graceful_timeout``, systemd) grants before it kills the process.
DEFAULT_SHUTDOWN_TIMEOUT: Final = 10.0
#: Seconds an app task that was cancelled (a lifespan task after a timeout, or after it
#: answered shutdown but did not return; a request task) gets to unwind before it is left
#: to the loop's own teardown.
CANCEL_GRACE: Final = 1.0

_IDLE: Final = "idle"
_STARTING: Final = "starting"
_STARTED: Final = "started"
_STOPPING: Final = "stopping"
_STOPPED: Final = "stopped"
_UNSUPPORTED: Final = "unsupported"


class LifespanManager:
    """One run of an app's lifespan on the running loop (asyncio's, uvloop's or trio's):
    ``await startup()``, later ``await shutdown()``.

    After :meth:`startup`, :attr:`supported` says whether the app speaks the protocol and
    :attr:`state` is the namespace it filled in; :attr:`error` holds what the app raised
    when it turned out to have no lifespan (for callers that require one).

    Args:
        app: the ASGI app whose lifespan to run.
        startup_timeout: seconds the app may take to answer ``lifespan.startup`` (None:
            no bound).
        shutdown_timeout: seconds the app may take to answer ``lifespan.shutdown`` (None:
            no bound).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.app = app
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        # Lifespan spec: "state Optional(dict[Unicode string, Any]) -- An empty namespace
        # where the application can persist state to be used when handling subsequent
        # requests."
        self.state: dict[str, Any] = {}
        self.supported: bool | None = None
        self.error: BaseException | None = None
        self._phase = _IDLE
        self._received_startup = False
        self._received_shutdown = False
        self._task: Task | None = None
        # The phase waiter: resolved by the app's answer, its failure, or its end.
        self._waiter: Waiter[None] | None = None
        self._shutdown_requested: Waiter[None] | None = None

    @property
    def phase(self) -> str:
        """idle, starting, started, stopping, stopped or unsupported."""
        return self._phase

    async def startup(self) -> dict[str, Any]:
        """Send ``lifespan.startup``; return the state once the app completed its startup.

        Raises :class:`LifespanError` on ``lifespan.startup.failed`` (with the app's message)
        or after ``startup_timeout``. An app without a lifespan returns ``{}`` and leaves
        :attr:`supported` False.
        """
        if self._phase != _IDLE:
            raise RuntimeError(f"lifespan startup already ran (phase {self._phase})")
        loop = running_loop()
        self._phase = _STARTING
        waiter = self._waiter = loop.create_future()
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
            # lifespan.startup.failed, or the caller was cancelled: the task has no future.
            if self._phase == _STARTING:
                self._phase = _STOPPED
            await self._cancel_task()
            raise
        return self.state

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app's answer (``shutdown_timeout``).

        Does nothing unless startup completed. Raises :class:`LifespanError` on
        ``lifespan.shutdown.failed``, on a timeout, or if the lifespan task had died.
        """
        if self._phase != _STARTED:
            return
        task = self._task
        assert task is not None
        assert self._shutdown_requested is not None
        if task.done():
            self._phase = _STOPPED
            error = self.error  # None when the task was cancelled (see _ended)
            if error is not None:
                raise LifespanError(
                    f"ASGI lifespan task failed before shutdown: {error!r}"
                ) from error
            return
        self._phase = _STOPPING
        waiter = self._waiter = running_loop().create_future()
        # Lifespan spec (Shutdown): "Sent to the application when the server has stopped
        # accepting connections and closed all active connections."
        self._shutdown_requested.set_result(None)
        try:
            async with fail_after(self.shutdown_timeout):
                await waiter
                # After its answer the app is expected to return; do not leave it pending.
                await wait_tasks((task,), CANCEL_GRACE)
        except TimeoutError:
            raise LifespanError(
                f"ASGI lifespan shutdown did not complete within {self.shutdown_timeout} s"
            ) from None
        finally:
            self._phase = _STOPPED
            await self._cancel_task()

    # -- the app's side -------------------------------------------------------------------

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # the outcome goes to the waiter
            if is_cancellation(exc):
                self._ended(None, cancelled=True)
                raise
            self._ended(exc)
        else:
            self._ended(None)

    async def _receive(self) -> Message:
        if not self._received_startup:
            self._received_startup = True
            # Lifespan spec (Startup): "Sent to the application when the server is ready to
            # startup and receive connections, but before it has started to do so."
            return {"type": "lifespan.startup"}
        assert self._shutdown_requested is not None
        await self._shutdown_requested
        if self._received_shutdown:  # a receive() after lifespan.shutdown: nothing comes
            await running_loop().create_future()
        self._received_shutdown = True
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        phase = self._phase
        if not self._received_startup and phase == _STARTING:
            # Sending before receiving is what apps without a lifespan tend to do (an HTTP
            # handler answering the lifespan scope): treated as no lifespan.
            error = LifespanError(
                f"ASGI app sent {kind!r} before it received lifespan.startup: "
                "it has no lifespan support"
            )
            logger.debug("%s", error)
            self._unsupported(error)
            raise error
        if phase == _STARTING and kind == "lifespan.startup.complete":
            # Lifespan spec (Startup Complete): "A server must wait for this message before
            # it starts processing connections."
            self._phase = _STARTED
            self.supported = True
            self._resolve(None)
            return
        if phase == _STARTING and kind == "lifespan.startup.failed":
            # Lifespan spec (Startup Failed): "If a server sees this it should log/print the
            # message provided and then exit." Raised at once, with the message.
            self.supported = True
            self._phase = _STOPPED
            self._resolve(LifespanError(f"ASGI lifespan startup failed: {_message_text(message)}"))
            return
        if phase == _STARTING:
            # Any other answer to lifespan.startup: an app that ignores the scope's type
            # (it received lifespan.startup as if it were a request, and answers with
            # http.response.start). Only lifespan.startup.failed is a failed startup;
            # uvicorn and hypercorn in "auto" mode run such an app without lifespan too.
            error = LifespanError(
                f"ASGI app answered lifespan.startup with {kind!r}: it has no lifespan support"
            )
            logger.debug("%s", error)
            self._unsupported(error)
            raise error
        if phase == _STOPPING and kind == "lifespan.shutdown.complete":
            self._resolve(None)
            return
        if phase == _STOPPING and kind == "lifespan.shutdown.failed":
            self._resolve(LifespanError(f"ASGI lifespan shutdown failed: {_message_text(message)}"))
            return
        error = LifespanError(f"unexpected ASGI lifespan message {kind!r} (phase {phase})")
        self._resolve(error)
        raise error

    # -- outcomes -------------------------------------------------------------------------

    def _resolve(self, error: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    def _unsupported(self, error: BaseException | None) -> None:
        self._phase = _UNSUPPORTED
        self.supported = False
        self.error = error
        self._resolve(None)

    def _ended(self, error: BaseException | None, *, cancelled: bool = False) -> None:
        """The app's lifespan callable returned (or raised ``error``)."""
        phase = self._phase
        if phase == _STARTING:
            # Lifespan spec: "If an exception is raised when calling the application callable
            # with a lifespan.startup message or a scope with type lifespan, the server must
            # continue but not send any lifespan events." Returning without an answer is the
            # same refusal, said politely.
            if error is not None and self._received_startup:
                logger.warning(
                    "ASGI app raised during lifespan startup without sending "
                    "lifespan.startup.failed; running it without lifespan",
                    exc_info=error,
                )
            elif error is not None:
                logger.debug("ASGI app has no lifespan support (%r)", error)
            if not cancelled:
                self._unsupported(error)
        elif phase == _STARTED:
            # Died between startup and shutdown: reported when shutdown comes.
            self.error = error
            if error is not None:
                logger.error("ASGI lifespan task failed", exc_info=error)
        elif phase == _STOPPING:
            # Returning is an answer too (nothing left to clean up); raising is a failure.
            if error is None:
                self._resolve(None)
            else:
                self._resolve(LifespanError(f"ASGI lifespan shutdown raised {error!r}"))
                self.error = error

    async def _cancel_task(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        await wait_tasks((task,), CANCEL_GRACE)

    def __repr__(self) -> str:
        return f"<LifespanManager {self.app!r} phase={self._phase}>"


def _message_text(message: Message) -> str:
    # Lifespan spec: "message (Unicode string) -- Optional; if missing defaults to ""."
    text = message.get("message") or ""
    return str(text) or "(no message)"


@contextlib.asynccontextmanager
async def lifespan(
    app: ASGIApp,
    *,
    startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
    shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
) -> AsyncIterator[dict[str, Any]]:
    """Run ``app``'s lifespan startup on the running loop, yield its state, then shut down.

    An app without a lifespan yields an empty state.

    Args:
        app: the ASGI app whose lifespan to run.
        startup_timeout: seconds the app may take to complete its startup (None: no bound).
        shutdown_timeout: seconds the app may take to complete its shutdown (None: no bound).

    Yields:
        The lifespan state the app filled in at startup.

    Raises:
        LifespanError: startup or shutdown failed (with the app's message) or timed out.
    """
    manager = LifespanManager(
        app, startup_timeout=startup_timeout, shutdown_timeout=shutdown_timeout
    )
    state = await manager.startup()
    try:
        yield state
    finally:
        await manager.shutdown()


@contextlib.contextmanager
def lifespan_sync(
    app: ASGIApp,
    *,
    startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
    shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
) -> Iterator[dict[str, Any]]:
    """:func:`lifespan` for sync code: the app's lifespan runs on the portal loop.

    Blocks during startup and shutdown. Not for use on the portal loop's own thread.

    Args:
        app: the ASGI app whose lifespan to run.
        startup_timeout: seconds the app may take to complete its startup (None: no bound).
        shutdown_timeout: seconds the app may take to complete its shutdown (None: no bound).

    Yields:
        The lifespan state the app filled in at startup.

    Raises:
        LifespanError: startup or shutdown failed (with the app's message) or timed out.
    """
    portal = get_portal()
    manager = LifespanManager(
        app, startup_timeout=startup_timeout, shutdown_timeout=shutdown_timeout
    )
    state = portal.call(manager.startup)
    try:
        yield state
    finally:
        portal.call(manager.shutdown)
