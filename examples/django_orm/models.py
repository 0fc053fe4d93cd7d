"""One model; ``migrate --run-syncdb`` creates its table (the app has no migrations)."""

from __future__ import annotations

from django.db import models


class Note(models.Model):  # type: ignore[misc]  # django has no type stubs here
    text = models.CharField(max_length=200)

    class Meta:
        app_label = "notes"
