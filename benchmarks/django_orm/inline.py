"""The ceiling: Django's ``ASGIHandler`` with no thread hop at all.

Every ``sync_to_async`` Django makes (its signals, ``response.close``) runs its function
right on the event loop's thread, and the ``/inline/...`` views call the ORM there too
(``DJANGO_ALLOW_ASYNC_UNSAFE``): the same request work as the other servers (the same
handler, view, queries, connection opened by the view and closed by
``request_finished``) with a bridge that costs nothing, so no ``sync_to_async`` can make
this workload faster than this server is. Correct only because every query runs on the
one thread, in one go per request (no await between a view's queries and no
``transaction.atomic`` across awaits): a measuring device, not a way to deploy Django.

uvicorn must import this module before anything imports Django: Django binds asgiref's
``sync_to_async`` when its modules load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import asgiref.sync

from benchmarks.django_orm import SETTINGS

if "django" in sys.modules:
    raise RuntimeError("benchmarks.django_orm.inline must be imported before Django")

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)


def _inline_sync_to_async(
    func: Callable[..., Any] | None = None, *, thread_sensitive: bool = True, executor: Any = None
) -> Any:
    """asgiref's signature; the function runs in the caller's thread, in its context."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def inline(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return inline

    return wrap if func is None else wrap(func)


asgiref.sync.sync_to_async = _inline_sync_to_async  # type: ignore[assignment]

from django.core.asgi import get_asgi_application  # noqa: E402  # after the patch above

application = get_asgi_application()
