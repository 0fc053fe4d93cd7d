"""The compared site in Django, configured in code with no database (sessions in signed
cookies): ``application`` is the WSGI app gunicorn serves natively, ``asgi`` the same app
through crossgate for uvicorn (routes: see the package docstring).

No CSRF middleware: the upload is posted by a test client, not a browser form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import django
from django.conf import settings
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect
from django.urls import path, re_path, reverse
from django.views.decorators.http import condition

from crossgate import wsgi_to_asgi
from tests.integration.apps_compared import (
    ASSET,
    DOWNLOAD_NAME,
    file_summary,
    files_dir,
    stream_chunks,
)

settings.configure(
    DEBUG=False,
    SECRET_KEY="crossgate-compared-tests-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",  # APPEND_SLASH redirects /dir to /dir/
    ],
    INSTALLED_APPS=[],
    DATABASES={},
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    USE_TZ=True,
)
django.setup()


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from Django\n", content_type="text/plain")


def to_hello(request: HttpRequest) -> HttpResponseRedirect:
    return redirect("hello")


def to_hello_absolute(request: HttpRequest) -> HttpResponseRedirect:
    return redirect(request.build_absolute_uri(reverse("hello")))


def directory(request: HttpRequest) -> HttpResponse:
    return HttpResponse("a directory\n", content_type="text/plain")


def set_cookies(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("cookies set\n", content_type="text/plain")
    response.set_cookie("flavour", "oatmeal raisin", path="/")
    response.set_cookie(
        "scoped", "yes", path=request.META["SCRIPT_NAME"] + "/cookies", httponly=True
    )
    return response


def get_cookies(request: HttpRequest) -> JsonResponse:
    return JsonResponse(sorted(request.COOKIES.items()), safe=False)


def session_add(request: HttpRequest) -> JsonResponse:
    request.session["items"] = [*request.session.get("items", []), request.GET["item"]]
    return JsonResponse(request.session["items"], safe=False)


def session_get(request: HttpRequest) -> JsonResponse:
    return JsonResponse(request.session.get("items", []), safe=False)


def upload(request: HttpRequest) -> JsonResponse:
    files = [
        file_summary(field, item.name or "", item.content_type or "", item.read())
        for field, items in request.FILES.lists()
        for item in items
    ]
    fields = sorted((name, value) for name, values in request.POST.lists() for value in values)
    return JsonResponse({"fields": fields, "files": files})


def _asset(name: str) -> Path:
    if name != ASSET:
        raise Http404(name)
    return files_dir() / name


def _etag(request: HttpRequest, name: str) -> str:
    stat = _asset(name).stat()
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


def _last_modified(request: HttpRequest, name: str) -> datetime:
    return datetime.fromtimestamp(_asset(name).stat().st_mtime, tz=UTC)


# How a Django view gives a file ETag, Last-Modified and 304s (FileResponse has none).
@condition(etag_func=_etag, last_modified_func=_last_modified)  # type: ignore[untyped-decorator]
def files(request: HttpRequest, name: str) -> FileResponse:
    return FileResponse(_asset(name).open("rb"))


def download(request: HttpRequest) -> FileResponse:
    return FileResponse(
        (files_dir() / ASSET).open("rb"), as_attachment=True, filename=DOWNLOAD_NAME
    )


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(stream_chunks(), content_type="application/octet-stream")


def echo(request: HttpRequest, rest: str) -> JsonResponse:
    response = JsonResponse(
        {
            "rest": rest,
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META["SCRIPT_NAME"],
            "full_path": request.get_full_path(),
            "uri": request.build_absolute_uri(),
            # The request target as sent, as gunicorn and crossgate both give it.
            "raw_uri": request.META.get("RAW_URI"),
            "query": sorted((k, v) for k, values in request.GET.lists() for v in values),
            "x_echo": request.headers.get("X-Echo"),
        }
    )
    # Back as a response header: a non-ASCII value travels as latin-1 (PEP 3333).
    response["X-Echo"] = request.headers.get("X-Echo", "")
    return response


urlpatterns = [
    path("hello", hello, name="hello"),
    path("redirect", to_hello),
    path("redirect-absolute", to_hello_absolute),
    path("dir/", directory),
    path("cookies/set", set_cookies),
    path("cookies", get_cookies),
    path("session/add", session_add),
    path("session", session_get),
    path("upload", upload),
    path("files/<str:name>", files),
    path("download", download),
    path("stream", stream),
    re_path(r"^echo/(?P<rest>.*)$", echo),
]

from django.core.wsgi import get_wsgi_application  # noqa: E402 - after settings.configure

application = get_wsgi_application()
asgi = wsgi_to_asgi(application)
