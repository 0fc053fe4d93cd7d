"""URL routes of the example."""

from __future__ import annotations

from django.urls import path

from examples.django_on_uvicorn import views

urlpatterns = [
    path("", views.index, name="index"),
    path("upload/", views.upload, name="upload"),
    path("stream/", views.stream, name="stream"),
]
