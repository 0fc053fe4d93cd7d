"""The app of the ORM project, labelled ``apps_orm``."""

from __future__ import annotations

from django.apps import AppConfig


class OrmConfig(AppConfig):  # type: ignore[misc]  # django has no type stubs here
    name = "tests.integration.apps_orm"
    label = "apps_orm"
