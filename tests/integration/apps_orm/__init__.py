"""A Django project whose async views call the ORM through ``crossgate.sync_to_async``
(tests/integration/test_django_orm.py), on SQLite or PostgreSQL, as the environment says:

* ``CROSSGATE_ORM_ENGINE``: ``sqlite`` (the file named by ``CROSSGATE_ORM_NAME``) or
  ``postgresql`` (database ``CROSSGATE_ORM_NAME`` on 127.0.0.1, port ``CROSSGATE_ORM_PORT``,
  user ``CROSSGATE_ORM_USER``);
* ``CROSSGATE_ORM_MAX_AGE``: Django's ``CONN_MAX_AGE``.

``asgi:application`` is Django's own ASGI handler; ``asgi:dispatched`` the same handler
mounted in ``crossgate.dispatch``. Routes:

* ``/orm?calls=N``: N ORM queries, each through ``crossgate.sync_to_async``; answers JSON
  with the thread of each call, the database's id of the connection each used (the
  backend's pid on PostgreSQL), and the thread Django sent ``request_started`` on;
* ``/fds``: how many file descriptors of this process are open on the SQLite file.
"""

from __future__ import annotations

__all__ = ["ENV", "SETTINGS"]

SETTINGS = "tests.integration.apps_orm.settings"
ENV = {
    "engine": "CROSSGATE_ORM_ENGINE",
    "name": "CROSSGATE_ORM_NAME",
    "port": "CROSSGATE_ORM_PORT",
    "user": "CROSSGATE_ORM_USER",
    "max_age": "CROSSGATE_ORM_MAX_AGE",
}
