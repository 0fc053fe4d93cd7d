"""The portal: the per-process event loop thread that sync code borrows (started on first
use, rebuilt after ``fork()``, stopped at interpreter exit)."""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Generic, TypeVar, cast

from crossgate.adapters._bridge.backend import Loop, TrioLoop, trio_loop
from crossgate.adapters._bridge.hop import post_threadsafe
from crossgate.adapters._bridge.mailbox import call_in_loop

__all__ = ["BasePortal", "Portal", "TrioPortal", "get_portal", "get_trio_portal"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


#: A close hook's default bound: the ``timeout`` given to :meth:`Portal.close`.
_CLOSE_TIMEOUT: Final = object()


class BasePortal:
    """An event loop running in a daemon thread, for sync code that needs one: what the
    asyncio :class:`Portal` and the :class:`TrioPortal` share.

    Use :func:`get_portal` (or :func:`get_trio_portal`) for the per-process instance: it is
    created on first use and rebuilt in a child process after ``fork()``, because a forked
    child inherits the portal object but not its thread.
    """

    loop: Loop

    def __init__(self, *, name: str = "crossgate-portal") -> None:
        self.pid = os.getpid()
        # (hook, its own bound in seconds: None for none, _CLOSE_TIMEOUT for close()'s).
        self._close_hooks: list[tuple[Callable[[], Coroutine[Any, Any, object]], object]] = []
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._bootstrap, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            # A loop that cannot start must not leave the caller waiting on it for ever.
            raise RuntimeError(f"the crossgate portal could not start: {self._failed!r}") from (
                self._failed
            )

    def _bootstrap(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            if self._ready.is_set():
                raise
            self._failed = exc
            self._ready.set()

    def _run(self) -> None:
        """The thread: run the loop, set ``_ready`` once it runs, until :meth:`_stop`."""
        raise NotImplementedError

    def _stop(self) -> None:
        """On the loop: make :meth:`_run` end (what is still running is cancelled)."""
        raise NotImplementedError

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def call(
        self, fn: Callable[..., Awaitable[T]], /, *args: Any, timeout: float | None = None
    ) -> T:
        """Run ``await fn(*args)`` on the portal loop and block until it ends."""
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("Portal.call() from the portal's own thread would deadlock")
        return call_in_loop(self.loop, fn, *args, timeout=timeout)

    def spawn(
        self,
        fn: Callable[..., Coroutine[Any, Any, Any]],
        /,
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        """Start ``fn(*args)`` as a task on the portal loop without waiting for it."""
        ctx = contextvars.copy_context() if context is None else context
        loop = self.loop

        def start() -> None:
            loop.create_task(fn(*args), context=ctx)

        if not post_threadsafe(loop, start):
            raise RuntimeError("the crossgate portal is closed")

    def on_close(
        self,
        hook: Callable[[], Coroutine[Any, Any, object]],
        *,
        timeout: float | object | None = _CLOSE_TIMEOUT,
    ) -> None:
        """Await ``hook()`` on the portal loop when it closes (last registered, first run),
        for at most ``timeout`` seconds (None: as long as it takes, for a hook that bounds
        itself; by default, the ``timeout`` given to :meth:`close`)."""
        self._close_hooks.append((hook, timeout))

    def close(self, timeout: float = 10.0) -> None:
        """Run the close hooks, cancel what is left, stop the loop and join its thread."""
        if self._stopped or self.pid != os.getpid():
            return
        self._stopped = True
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("Portal.close() from the portal's own thread")
        hooks, self._close_hooks = self._close_hooks[::-1], []
        for hook, bound in hooks:
            limit = timeout if bound is _CLOSE_TIMEOUT else cast("float | None", bound)
            try:
                call_in_loop(self.loop, hook, timeout=limit)
            except BaseException:
                logger.exception("a portal close hook failed")
        post_threadsafe(self.loop, self._stop)
        self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._stopped


class Portal(BasePortal):
    """The asyncio portal: an asyncio loop (uvloop's when installed) in a daemon thread."""

    loop: asyncio.AbstractEventLoop

    def __init__(self, *, name: str = "crossgate-portal") -> None:
        self.loop = _new_loop()
        super().__init__(name=name)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self._cancel_remaining())
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def _stop(self) -> None:
        self.loop.stop()

    async def _cancel_remaining(self) -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not me and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)


class TrioPortal(BasePortal):
    """The trio portal: ``trio.run`` in a daemon thread, for trio ASGI apps.

    Its tasks are trio system tasks: when the portal stops, the run's main task returns
    and trio cancels them and waits for them to unwind (:meth:`close` waits for the
    thread ``timeout`` seconds at most).
    """

    loop: TrioLoop

    def __init__(self, *, name: str = "crossgate-trio-portal") -> None:
        try:
            import trio  # noqa: PLC0415 - an optional dependency
        except ImportError as exc:
            raise ImportError("the trio portal needs trio: pip install 'crossgate[trio]'") from exc
        self._trio = trio
        self._done: Any = None  # the trio.Event that ends the run, made inside it
        super().__init__(name=name)

    def _run(self) -> None:
        _trust_only_the_main_thread(self._trio)
        self._trio.run(self._main)

    async def _main(self) -> None:
        self.loop = trio_loop()
        self._done = self._trio.Event()
        self._ready.set()
        await self._done.wait()

    def _stop(self) -> None:
        self._done.set()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (as uvicorn picks it), unless CROSSGATE_LOOP=asyncio."""
    choice = os.environ.get("CROSSGATE_LOOP", "auto")
    if choice not in {"auto", "asyncio", "uvloop"}:
        raise ValueError(f"CROSSGATE_LOOP must be auto, asyncio or uvloop, not {choice!r}")
    if choice != "asyncio":
        try:
            import uvloop  # noqa: PLC0415
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _trust_only_the_main_thread(trio: Any) -> None:
    """Keep trio from taking this thread for the main one where ``signal.signal`` lies.

    trio decides whether it runs in the main thread by calling ``signal.signal``, which
    raises elsewhere, and if so it calls ``signal.set_wakeup_fd``. mod_wsgi replaces
    ``signal.signal`` with a function that ignores the registration and raises nothing
    ("mod_wsgi will intercept all attempts to register signal handlers and cause the
    registration to be ignored", WSGIRestrictSignal in its configuration docs): trio then
    fails to start in the portal's thread (``set_wakeup_fd only works in main thread``).
    Only there, trio's check is narrowed to what it means to test: outside the main thread
    it is False, as ``set_wakeup_fd`` itself would say.
    """
    module = getattr(getattr(trio, "_core", None), "_wakeup_socketpair", None)
    probe = getattr(module, "is_main_thread", None)
    if module is None or probe is None or getattr(probe, "_crossgate_narrowed", False):
        return  # another trio layout, or already narrowed
    if not probe():
        return  # the probe tells the truth here

    def is_main_thread() -> bool:
        return threading.current_thread() is threading.main_thread() and bool(probe())

    is_main_thread._crossgate_narrowed = True  # type: ignore[attr-defined]
    module.is_main_thread = is_main_thread


PortalT = TypeVar("PortalT", bound=BasePortal)


class _PerProcess(Generic[PortalT]):
    """The process's one portal of a kind: made on first use, made again in a child after
    ``fork()`` (which inherits the object but not its thread) or once closed, and closed
    at interpreter exit."""

    def __init__(self, make: Callable[[], PortalT]) -> None:
        self.make = make
        self.portal: PortalT | None = None

    def get(self) -> PortalT:
        portal = self.portal
        if portal is not None and portal.pid == os.getpid() and not portal.closed:
            return portal
        with _portal_lock:
            portal = self.portal
            if portal is None or portal.pid != os.getpid() or portal.closed:
                if portal is None or portal.pid != os.getpid():
                    atexit.register(self.close_at_exit)
                portal = self.portal = self.make()
            return portal

    def close_at_exit(self) -> None:
        portal = self.portal
        if portal is not None and portal.pid == os.getpid():
            portal.close()


_portal_lock = threading.Lock()
_asyncio_portal: _PerProcess[Portal] = _PerProcess(Portal)
_trio_portal: _PerProcess[TrioPortal] = _PerProcess(TrioPortal)


#: The per-process asyncio portal, started on first use and rebuilt after ``fork()`` (a
#: bound method, not a function around it: asgi_to_wsgi calls it on every request).
get_portal = _asyncio_portal.get
#: The per-process trio portal, likewise.
get_trio_portal = _trio_portal.get


def _after_fork_in_child() -> None:
    # A lock that another thread of the parent held at fork() stays held forever in the
    # child, where that thread does not exist: get_portal() would then deadlock on it.
    global _portal_lock
    _portal_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_after_fork_in_child)
