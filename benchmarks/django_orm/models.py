"""One model, created by ``migrate --run-syncdb`` (the app has no migrations)."""

from __future__ import annotations

from django.db import models


class Item(models.Model):  # type: ignore[misc]  # django has no type stubs here
    name = models.CharField(max_length=40)

    class Meta:
        app_label = "django_orm"
