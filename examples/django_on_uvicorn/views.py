"""Views: a form POST with CSRF that creates a Note, a file upload, a streamed response."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from django import forms
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from examples.django_on_uvicorn.models import Note


class NoteForm(forms.ModelForm):  # type: ignore[misc]  # Django is untyped here
    class Meta:
        model = Note
        fields = ("text",)


@require_http_methods(["GET", "POST"])  # type: ignore[untyped-decorator]
def index(request: HttpRequest) -> HttpResponse:
    """GET: the notes and the forms. POST (CSRF-checked by the middleware): add a note."""
    form = NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("index")  # post/redirect/get
    notes = Note.objects.all()
    status = 400 if request.method == "POST" else 200
    return render(request, "notes/index.html", {"notes": notes, "form": form}, status=status)


@require_POST  # type: ignore[untyped-decorator]
def upload(request: HttpRequest) -> HttpResponse:
    """A multipart upload: the file's name, size and SHA-256, read in chunks."""
    file = request.FILES.get("file")
    if file is None:
        return HttpResponseBadRequest("no file in the 'file' field\n")
    digest = hashlib.sha256()
    size = 0
    for chunk in file.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"name": file.name, "size": size, "sha256": digest.hexdigest()})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """A StreamingHttpResponse: crossgate sends each chunk as the generator yields it."""
    count = min(int(request.GET.get("lines", "10")), 10_000)

    def lines() -> Iterator[bytes]:
        for i in range(1, count + 1):
            yield f"line {i} of {count}\n".encode()

    return StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
