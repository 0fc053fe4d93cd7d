"""Settings of the benchmark's Django project (see the package docstring)."""

from __future__ import annotations

import os

from benchmarks.django_orm import ENV

SECRET_KEY = "crossgate-benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["benchmarks.django_orm"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "benchmarks.django_orm.urls"
if os.environ.get(ENV["engine"], "sqlite") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ[ENV["name"]],
            "USER": os.environ[ENV["user"]],
            "HOST": "127.0.0.1",
            "PORT": os.environ[ENV["port"]],
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ[ENV["name"]],
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# A view that fails says why on the server's stderr (the benchmark then publishes nothing).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
