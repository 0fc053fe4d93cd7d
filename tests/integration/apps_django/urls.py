"""The deployed project's URLs (see the package docstring)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from tests.integration.apps_django import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("whoami", views.whoami),
    path("visits", views.visits),
    path("note", views.note),
    path("upload", views.upload),
]
