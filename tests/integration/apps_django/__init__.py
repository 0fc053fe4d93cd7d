"""A small Django project as users deploy one, on ASGI through crossgate.wsgi_to_asgi
(tests/integration/test_django_deployed.py): settings in a module, an SQLite database, the
admin, sessions in the database and CSRF protection.

``asgi:application`` is what the server runs. The database file is named by the environment
variable :data:`DB_ENV`; the test runs ``migrate`` and ``createsuperuser`` on it before the
server starts. Routes besides ``/admin/``:

* ``/whoami``: the signed-in user's name, or ``anonymous``;
* ``/visits``: counts the requests of this session (kept in the database);
* ``/note`` (GET): a form with its CSRF token; (POST): ``noted: <text>``, 403 without the token;
* ``/upload`` (GET): a form with its CSRF token; (POST multipart, CSRF-protected): per file
  its field, name, size, SHA-256, whether that matches the ``sha256-<field>`` field posted
  beside it, and whether Django kept it in memory or in a temporary file.
"""

from __future__ import annotations

__all__ = ["DB_ENV", "SETTINGS"]

DB_ENV = "CROSSGATE_DJANGO_DB"
SETTINGS = "tests.integration.apps_django.settings"
