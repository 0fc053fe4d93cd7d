"""One model, stored in SQLite."""

from __future__ import annotations

from django.db import models


class Note(models.Model):  # type: ignore[misc]  # Django is untyped here
    text = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created", "id")

    def __str__(self) -> str:
        return str(self.text)
