"""The bridge's trio backend: what the trio path adds beside asyncio's (the shared
behaviour runs on all three loops in test_bridge, test_calls, test_sensitive and
test_asgi_to_wsgi)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import trio
import trio.lowlevel

from crossgate import sync_to_async
from crossgate._errors import LifespanError
from crossgate._types import Message, Receive, Send
from crossgate.adapters import _bridge
from crossgate.adapters._bridge.portal import BasePortal
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi
from crossgate.adapters.calls import async_to_sync
from crossgate.adapters.lifespan import LifespanManager
from crossgate.testing import Request, call_asgi

LONG = 10.0


# --------------------------------------------------------------------------------------------
# sync_to_async and async_to_sync inside trio.run
# --------------------------------------------------------------------------------------------


def test_async_to_sync_inside_sync_to_async_runs_on_the_calling_trio_run() -> None:
    async def inner(x: int) -> tuple[int, trio.lowlevel.TrioToken]:
        await trio.sleep(0.001)  # trio's own: no asyncio loop could run this
        return x * 2, trio.lowlevel.current_trio_token()

    def sync_part(x: int) -> tuple[int, trio.lowlevel.TrioToken]:
        return async_to_sync(inner)(x)

    async def main() -> None:
        value, token = await sync_to_async(sync_part)(21)
        assert value == 42
        assert token is trio.lowlevel.current_trio_token()
        value, token = await sync_to_async(sync_part, thread_sensitive=False)(1)
        assert (value, token) == (2, trio.lowlevel.current_trio_token())

    trio.run(main)


def test_async_to_sync_on_a_thread_running_trio_is_refused() -> None:
    async def inner() -> None:
        pass

    async def main() -> None:
        with pytest.raises(RuntimeError, match="use await instead"):
            async_to_sync(inner)()

    trio.run(main)


def test_a_waiter_cancelled_by_trio_is_done_and_drops_a_late_result() -> None:
    async def main() -> None:
        loop = _bridge.running_loop()
        waiter: _bridge.Waiter[int] = loop.create_future()
        with trio.move_on_after(0.01):
            await waiter
        assert waiter.done()
        assert waiter.cancelled()
        # What a worker's delivery does once the caller gave up: nothing, no error.
        _bridge.resolve_threadsafe(waiter, 5)
        await trio.sleep(0.01)

    trio.run(main)


def test_a_waiter_resolved_before_it_is_awaited_returns_at_once() -> None:
    async def main() -> None:
        loop = _bridge.running_loop()
        waiter: _bridge.Waiter[int] = loop.create_future()
        waiter.set_result(7)
        assert await waiter == 7
        failing: _bridge.Waiter[int] = loop.create_future()
        failing.set_exception(KeyError("x"))
        with pytest.raises(KeyError):
            await failing

    trio.run(main)


def test_each_trio_run_has_its_own_loop() -> None:
    loops: list[_bridge.Loop] = []

    async def main() -> None:
        loops.append(_bridge.running_loop())
        assert _bridge.running_loop() is loops[-1]

    trio.run(main)
    trio.run(main)
    assert loops[0] is not loops[1]


def test_no_loop_outside_asyncio_and_trio() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        _bridge.running_loop()
    assert not _bridge.in_trio()


def test_a_process_that_never_uses_trio_never_imports_it() -> None:
    """The asyncio path pays nothing for trio, import time included."""
    code = """
import asyncio, io, sys
from crossgate import asgi_to_wsgi, async_to_sync, sync_to_async

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

async def main():
    assert await sync_to_async(lambda: 1)() == 1
    assert await sync_to_async(lambda: 2, thread_sensitive=False)() == 2

asyncio.run(main())
async def two():
    return 2
assert async_to_sync(two)() == 2
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "x",
           "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
           "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}
assert b"".join(asgi_to_wsgi(app, lifespan="off")(environ, lambda s, h, e=None: None)) == b"ok"
assert "trio" not in sys.modules, "trio was imported"
"""
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.parametrize("call", ["fail_after", "timeout", "running_loop"])
def test_the_first_bridge_call_of_a_trio_run_finds_trio(call: str) -> None:
    """The backend imports trio once it first finds a run: a timeout as the process's first
    use of the bridge on trio must do that too (fail_after raised AttributeError)."""
    code = f"""
import trio
from crossgate.adapters import _bridge
from crossgate.adapters._bridge.portal import BasePortal

async def main():
    if {call!r} == "running_loop":
        assert _bridge.running_loop() is not None
        return
    with trio.move_on_after(5):
        async with getattr(_bridge, {call!r})(0.01):
            await trio.sleep(1)
    raise AssertionError("the timeout did not fire")

try:
    trio.run(main)
except TimeoutError:
    pass
"""
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()


# --------------------------------------------------------------------------------------------
# The trio portal
# --------------------------------------------------------------------------------------------


def test_the_trio_portal_runs_trio_and_is_one_per_process() -> None:
    portal = _bridge.get_trio_portal()
    assert _bridge.get_trio_portal() is portal
    assert portal.thread is not _bridge.get_portal().thread

    async def where() -> tuple[int | None, trio.lowlevel.TrioToken]:
        await trio.lowlevel.checkpoint()
        return threading.get_ident(), trio.lowlevel.current_trio_token()

    ident, token = portal.call(where)
    assert ident == portal.thread.ident
    assert portal.call(where)[1] is token  # the same run every time


def test_the_trio_portal_starts_where_signal_registration_is_intercepted() -> None:
    """mod_wsgi replaces ``signal.signal`` with a function that ignores the registration
    (its WSGIRestrictSignal, on by default); trio's main-thread check then said yes in the
    portal's thread, trio failed to start there, and the first request hung for ever."""
    code = """
import signal

def intercepted(signum, handler):  # what mod_wsgi puts in signal.signal's place
    return None

signal.signal = intercepted
from crossgate.adapters._bridge import TrioPortal

portal = TrioPortal(name="intercepted-signals")

async def answer():
    return 42

print(portal.call(answer, timeout=10))
portal.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["42"]


def test_a_portal_whose_loop_cannot_start_raises_instead_of_hanging() -> None:
    class Broken(BasePortal):
        def _run(self) -> None:
            raise OSError("no loop here")

    with pytest.raises(RuntimeError, match="could not start") as caught:
        Broken(name="broken-portal")
    assert isinstance(caught.value.__cause__, OSError)


def test_trio_portal_close_runs_hooks_in_reverse_and_cancels_leftovers() -> None:
    portal = _bridge.TrioPortal(name="trio-close-test")
    order: list[str] = []
    cancelled = threading.Event()

    async def leftover() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.set()
            raise

    def hook(name: str) -> Callable[[], Any]:
        async def run() -> None:
            await trio.lowlevel.checkpoint()
            order.append(name)

        return run

    portal.spawn(leftover)
    portal.on_close(hook("first"))
    portal.on_close(hook("second"))
    portal.close(timeout=LONG)
    assert order == ["second", "first"]
    assert cancelled.wait(LONG)
    assert not portal.thread.is_alive()
    assert portal.closed
    with pytest.raises(RuntimeError, match="closed"):
        portal.spawn(leftover)


def test_trio_portal_call_times_out_and_cancels_the_task() -> None:
    portal = _bridge.TrioPortal(name="trio-timeout-test")
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.set()
            raise

    try:
        with pytest.raises(TimeoutError):
            portal.call(forever, timeout=0.05)
        assert cancelled.wait(LONG)
        # The portal is still usable.
        assert portal.call(trio.sleep, 0) is None
    finally:
        portal.close(timeout=LONG)


def test_call_in_loop_from_the_trio_portal_thread_is_refused() -> None:
    portal = _bridge.TrioPortal(name="trio-own-thread-test")

    async def nested() -> None:
        _bridge.call_in_loop(portal.loop, trio.sleep, 0)

    try:
        with pytest.raises(RuntimeError, match="deadlock"):
            portal.call(nested)
    finally:
        portal.close(timeout=LONG)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_fork_rebuilds_the_trio_portal_and_the_apps_lifespan_in_the_child() -> None:
    """A worker forked after a request (gunicorn without --preload does it before) gets
    its own portal and its own lifespan: the parent's trio thread does not exist there."""
    code = """
import io, os, sys, threading
import trio
from crossgate import asgi_to_wsgi

started = []

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        started.append(os.getpid())
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await trio.sleep(0)
    body = f"{os.getpid()} {threading.get_ident()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})

wrapper = asgi_to_wsgi(app, backend="trio")
def get():
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "x",
               "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}
    return b"".join(wrapper(environ, lambda s, h, e=None: None)).decode().split()

parent_pid, parent_thread = get()
pid = os.fork()
if pid == 0:
    child_pid, child_thread = get()
    ok = child_pid == str(os.getpid()) and child_pid != parent_pid
    ok = ok and started == [int(parent_pid), os.getpid()]
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert started == [os.getpid()]
"""
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()


# --------------------------------------------------------------------------------------------
# The lifespan on any loop, and call_asgi under trio
# --------------------------------------------------------------------------------------------


def lifespan_app(answer: str, events: list[str]) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        message: Message = await receive()
        events.append(message["type"])
        if answer == "hang":
            await anyio.sleep_forever()
        await send({"type": f"lifespan.startup.{answer}", "message": "no database"})
        if answer == "complete":
            events.append((await receive())["type"])
            await send({"type": "lifespan.shutdown.complete"})

    return app


@pytest.mark.anyio
@pytest.mark.on_trio
async def test_the_lifespan_manager_runs_startup_and_shutdown() -> None:
    events: list[str] = []
    manager = LifespanManager(lifespan_app("complete", events))
    assert await manager.startup() == {}
    assert manager.supported
    await manager.shutdown()
    assert events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.anyio
@pytest.mark.on_trio
async def test_the_lifespan_manager_failed_startup_raises_with_the_message() -> None:
    manager = LifespanManager(lifespan_app("failed", []))
    with pytest.raises(LifespanError, match="no database"):
        await manager.startup()


@pytest.mark.anyio
@pytest.mark.on_trio
async def test_the_lifespan_manager_startup_timeout_cancels_the_app() -> None:
    manager = LifespanManager(lifespan_app("hang", []), startup_timeout=0.05)
    with pytest.raises(LifespanError, match=r"did not complete within 0\.05 s"):
        await manager.startup()


@pytest.mark.anyio
@pytest.mark.on_trio
async def test_the_lifespan_manager_app_without_lifespan_is_unsupported() -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        raise RuntimeError("http only")

    manager = LifespanManager(app)
    assert await manager.startup() == {}
    assert manager.supported is False


def test_lifespan_on_without_support_is_refused_on_the_trio_portal() -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        raise RuntimeError("http only")

    wrapper = asgi_to_wsgi(app, lifespan="on", backend="trio")
    try:
        with pytest.raises(LifespanError):
            wrapper.start()
    finally:
        wrapper.close()


def test_call_asgi_serves_a_trio_app_under_trio() -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await trio.sleep(0.001)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body[::-1]})

    async def main() -> None:
        response = await call_asgi(app, Request("POST", "/", body=[b"ab", b"c"]))
        assert (response.status, response.body) == (200, b"cba")

        async def deaf(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            await trio.sleep_forever()

        with pytest.raises(TimeoutError):
            await call_asgi(deaf, timeout=0.05)

    trio.run(main)
