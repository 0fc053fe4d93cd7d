"""Django settings for the example: one app ("notes"), SQLite, CSRF, no sessions or auth.

The database lives outside the repository: ``$CROSSGATE_EXAMPLE_DB`` or a file in the
system's temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

# An example's key: set DJANGO_SECRET_KEY for anything that is not a local demo.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "crossgate-example-key-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = ["examples.django_on_uvicorn.apps.NotesConfig"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]

ROOT_URLCONF = "examples.django_on_uvicorn.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CROSSGATE_EXAMPLE_DB")
        or str(Path(tempfile.gettempdir()) / "crossgate-django-example.sqlite3"),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
