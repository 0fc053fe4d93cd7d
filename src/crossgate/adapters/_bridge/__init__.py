"""The one place where threads meet the event loop.

Everything that crosses between a thread and an event loop goes through this package:

* :class:`WorkerPool` runs sync code in a bounded set of daemon threads, created lazily; a
  job that waits on the network steps away (:func:`step_away`) and does not hold a slot.
* :class:`Portal` is the per-process event loop thread that sync code borrows (started on
  first use, rebuilt after ``fork()``, stopped at interpreter exit); :class:`TrioPortal`
  is the same on trio, for trio ASGI apps.
* :mod:`.backend` says what the bridge needs from a loop (:class:`Loop`, :class:`Waiter`,
  :class:`Task`): an asyncio loop provides it as it is, a trio run through
  :class:`TrioLoop`. The loop is found per call, asyncio's first (at no cost to it).
* :func:`call_in_loop` runs a coroutine on a loop from a thread and blocks until it ends.
  While it blocks, the thread serves sync work that the coroutine sends back to it, so
  nesting ``sync -> async -> sync`` never needs a second thread and never deadlocks.
* :class:`ThreadSensitive` delimits a context whose thread-sensitive calls
  (:func:`run_sensitive`) all run on one thread, a lane borrowed from a pool.
* :class:`ThreadToLoop` and :class:`LoopToThread` are bounded byte channels: the producer
  wakes the consumer only when the consumer is waiting (everything queued meanwhile is
  taken in one batch), and blocks once the bytes in flight reach the budget.

A thread hop costs tens of microseconds, so the rule here is to hop as rarely as possible:
results travel with one ``call_soon_threadsafe`` (thread -> loop) or one lock release
(loop -> thread), never through ``concurrent.futures`` and its callback chains.
"""

from crossgate.adapters._bridge.backend import (
    AsyncLock,
    CancelHandle,
    Event,
    Handle,
    Loop,
    Task,
    Timeout,
    TrioCancelScope,
    TrioLoop,
    Waiter,
    asyncio_loop,
    cancel_and_wait,
    current_task,
    fail_after,
    in_trio,
    is_cancellation,
    new_event,
    new_lock,
    running_loop,
    timeout,
    trio_loop,
    wait_tasks,
)
from crossgate.adapters._bridge.channels import DEFAULT_BUDGET, LoopToThread, ThreadToLoop
from crossgate.adapters._bridge.hop import origin_loop, post_threadsafe, resolve_threadsafe
from crossgate.adapters._bridge.mailbox import call_in_loop, copy_back, run_sync
from crossgate.adapters._bridge.pool import (
    DEFAULT_MAX_THREADS,
    DEFAULT_WORKERS,
    WorkerPool,
    default_pool,
    set_default_workers,
    step_away,
    step_back,
    thread_cap,
)
from crossgate.adapters._bridge.portal import (
    BasePortal,
    Portal,
    TrioPortal,
    get_portal,
    get_trio_portal,
)
from crossgate.adapters._bridge.sensitive import (
    ThreadSensitive,
    call_from_seat,
    current_seat,
    process_lane,
    run_sensitive,
)

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_THREADS",
    "DEFAULT_WORKERS",
    "AsyncLock",
    "BasePortal",
    "CancelHandle",
    "Event",
    "Handle",
    "Loop",
    "LoopToThread",
    "Portal",
    "Task",
    "ThreadSensitive",
    "ThreadToLoop",
    "Timeout",
    "TrioCancelScope",
    "TrioLoop",
    "TrioPortal",
    "Waiter",
    "WorkerPool",
    "asyncio_loop",
    "call_from_seat",
    "call_in_loop",
    "cancel_and_wait",
    "copy_back",
    "current_seat",
    "current_task",
    "default_pool",
    "fail_after",
    "get_portal",
    "get_trio_portal",
    "in_trio",
    "is_cancellation",
    "new_event",
    "new_lock",
    "origin_loop",
    "post_threadsafe",
    "process_lane",
    "resolve_threadsafe",
    "run_sensitive",
    "run_sync",
    "running_loop",
    "set_default_workers",
    "step_away",
    "step_back",
    "thread_cap",
    "timeout",
    "trio_loop",
    "wait_tasks",
]
