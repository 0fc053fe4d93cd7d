"""Django settings of the example: the ORM only, on an SQLite file."""

from __future__ import annotations

import os
import tempfile

SECRET_KEY = "crossgate-example-only"
DEBUG = False
INSTALLED_APPS = ["examples.django_orm"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get(
            "CROSSGATE_EXAMPLE_DB",
            os.path.join(tempfile.gettempdir(), "crossgate-django-orm.sqlite3"),
        ),
        # 0: a connection per request, closed by request_finished. Try 60: the connection
        # then stays open on its thread and the next request there reuses it.
        "CONN_MAX_AGE": int(os.environ.get("CROSSGATE_EXAMPLE_MAX_AGE", "0")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
