"""The example's Django app: its models, views and templates live in this package."""

from __future__ import annotations

from django.apps import AppConfig


class NotesConfig(AppConfig):  # type: ignore[misc]  # Django is untyped here
    name = "examples.django_on_uvicorn"
    label = "notes"
    verbose_name = "Notes"
