"""A minimal Django project configured in code, on ASGI through crossgate.

Routes: see the package docstring. Django reads a request body only up to its
Content-Length (it ignores ``wsgi.input_terminated``), so uploads must declare one.
"""

from __future__ import annotations

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path

from crossgate.adapters.wsgi_to_asgi import wsgi_to_asgi
from tests.integration.apps_wsgi import (
    endless,
    mark_started,
    pattern,
    sha_of_stream,
    started,
    wait_closed,
)

settings.configure(
    DEBUG=False,
    SECRET_KEY="crossgate-integration-tests-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello, Django!", content_type="text/plain")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    chunks = int(request.GET["chunks"])
    size = int(request.GET["size"])
    return StreamingHttpResponse(pattern(chunks, size), content_type="application/octet-stream")


def upload(request: HttpRequest) -> HttpResponse:
    return HttpResponse(sha_of_stream(request.read), content_type="text/plain")


def endless_view(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(endless(request.GET["token"]))


def closed(request: HttpRequest) -> HttpResponse:
    return HttpResponse(wait_closed(request.GET["token"]), content_type="text/plain")


def startup(request: HttpRequest) -> HttpResponse:
    return HttpResponse(started(), content_type="text/plain")


urlpatterns = [
    path("hello", hello),
    path("stream", stream),
    path("upload", upload),
    path("endless", endless_view),
    path("closed", closed),
    path("startup", startup),
]

from django.core.wsgi import get_wsgi_application  # noqa: E402 - after settings.configure

application = wsgi_to_asgi(get_wsgi_application(), on_startup=[mark_started], workers=8)
