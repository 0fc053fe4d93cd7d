"""The Flask app of :mod:`tests.integration.apps_wsgi` through ``crossgate.wsgi_to_asgi``,
with startup and shutdown hooks, for ``hypercorn -k trio``."""

from __future__ import annotations

from crossgate import wsgi_to_asgi
from tests.integration.apps_trio.wsgi_hooks import on_shutdown, on_startup
from tests.integration.apps_wsgi.flask_app import flask_app

application = wsgi_to_asgi(flask_app, on_startup=on_startup, on_shutdown=on_shutdown)
