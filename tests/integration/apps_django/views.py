"""The deployed project's views (see the package docstring)."""

from __future__ import annotations

import hashlib

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.template import engines

# {% csrf_token %} renders the hidden csrfmiddlewaretoken field and sets the csrftoken cookie.
_FORM = engines["django"].from_string(
    """<!doctype html>
<form method="post" enctype="{{ enctype }}">{% csrf_token %}
<input name="{{ field }}" type="{{ kind }}"><button>Send</button>
</form>
"""
)


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    name = user.get_username() if user.is_authenticated else "anonymous"
    return HttpResponse(name, content_type="text/plain")


def visits(request: HttpRequest) -> HttpResponse:
    count: int = request.session.get("visits", 0) + 1
    request.session["visits"] = count
    return HttpResponse(str(count), content_type="text/plain")


def note(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        context = {"enctype": "application/x-www-form-urlencoded", "field": "text", "kind": "text"}
        return HttpResponse(_FORM.render(context, request))
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    return HttpResponse(f"noted: {request.POST['text']}", content_type="text/plain")


def upload(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        context = {"enctype": "multipart/form-data", "field": "file", "kind": "file"}
        return HttpResponse(_FORM.render(context, request))
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    files = []
    for field, items in request.FILES.lists():
        for item in items:
            digest = hashlib.sha256()
            for chunk in item.chunks():
                digest.update(chunk)
            files.append(
                {
                    "field": field,
                    "name": item.name,
                    "size": item.size,
                    "sha256": digest.hexdigest(),
                    "match": digest.hexdigest() == request.POST.get(f"sha256-{field}"),
                    # InMemoryUploadedFile below FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), else
                    # TemporaryUploadedFile.
                    "kept": type(item).__name__,
                }
            )
    return JsonResponse({"files": files})
