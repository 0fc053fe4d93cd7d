"""The example's Django app."""

from __future__ import annotations

from django.apps import AppConfig


class NotesConfig(AppConfig):  # type: ignore[misc]  # django has no type stubs here
    name = "examples.django_orm"
    label = "notes"
