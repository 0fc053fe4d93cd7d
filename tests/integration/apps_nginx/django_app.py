"""A Django project in one module: its views, its URLs and Django's WSGI handler."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path, reverse


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        {
            "client": request.META["REMOTE_ADDR"],
            "scheme": request.scheme,
            "url": request.build_absolute_uri(reverse("whoami")),
            "pid": os.getpid(),
        }
    )


def numbers(request: HttpRequest) -> HttpResponse:
    def lines() -> Iterator[bytes]:
        for number in range(5):
            if number:
                time.sleep(0.4)
            yield f"line {number}\n".encode()

    return StreamingHttpResponse(lines(), content_type="text/plain")


def upload(request: HttpRequest) -> HttpResponse:
    digest, size = hashlib.sha256(), 0
    while chunk := request.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"size": size, "sha256": digest.hexdigest()})


urlpatterns = [
    path("whoami", whoami, name="whoami"),
    path("stream/numbers", numbers),
    path("upload", upload),
]

application = get_wsgi_application()
