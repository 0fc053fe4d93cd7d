"""Settings of the ORM project (see the package docstring)."""

from __future__ import annotations

import os

from tests.integration.apps_orm import ENV

SECRET_KEY = "crossgate-integration-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["tests.integration.apps_orm"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.integration.apps_orm.urls"

_max_age = int(os.environ.get(ENV["max_age"], "0"))
if os.environ.get(ENV["engine"], "sqlite") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ[ENV["name"]],
            "USER": os.environ[ENV["user"]],
            "HOST": "127.0.0.1",
            "PORT": os.environ[ENV["port"]],
            "CONN_MAX_AGE": _max_age,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ[ENV["name"]],
            "CONN_MAX_AGE": _max_age,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
