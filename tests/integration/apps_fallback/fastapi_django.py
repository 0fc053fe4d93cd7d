"""FastAPI in front of a legacy Django project: ``app`` (Django's WSGI handler) and
``app_asgi`` (Django's ASGI handler), for uvicorn."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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

import django  # noqa: E402 -- needs the settings above
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path, reverse  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

from crossgate import fallback  # noqa: E402

django.setup()


def avatar(request: HttpRequest, user: int) -> HttpResponse:
    url = reverse("avatar", kwargs={"user": user})
    return HttpResponse(f"django avatar of {user} at {url}", content_type="text/plain")


def echo(request: HttpRequest) -> JsonResponse:
    body = request.body
    return JsonResponse(
        {"app": "django", "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    )


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        for index in range(5):
            yield f"django {index}\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [
    path("users/<int:user>/avatar", avatar, name="avatar"),
    path("echo", echo),
    path("stream", stream),
]

api = FastAPI()


@api.get("/users/{user}")
async def user(user: int, request: Request) -> dict[str, Any]:
    return {"app": "fastapi", "url": str(request.url_for("user", user=user))}


app = fallback(api, get_wsgi_application())
app_asgi = fallback(api, get_asgi_application())
