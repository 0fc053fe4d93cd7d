"""Django's ASGI handler with lifespan hooks (``app``), and mounted under dispatch (``mounted``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="crossgate-tests-only",  # a throwaway key for a test server
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    USE_TZ=True,
)

from django.core.asgi import get_asgi_application  # noqa: E402 -- needs the settings above
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path, reverse  # noqa: E402

from crossgate.middleware.dispatch import dispatch  # noqa: E402
from crossgate.middleware.lifespan import with_lifespan  # noqa: E402

MARKERS = Path(os.environ.get("CROSSGATE_TEST_DIR", "."))


def hello(request: HttpRequest) -> HttpResponse:
    state: dict[str, Any] = request.scope["state"]
    return HttpResponse(f"{state['greeting']} at {reverse('hello')}", content_type="text/plain")


urlpatterns = [path("hello", hello, name="hello")]


def open_resources(state: dict[str, Any]) -> None:
    state["greeting"] = "hello from a startup hook"
    (MARKERS / "django-startup").touch()


async def close_resources() -> None:
    (MARKERS / "django-shutdown").touch()


app = with_lifespan(get_asgi_application(), on_startup=open_resources, on_shutdown=close_resources)
mounted = dispatch({"/django": app})
