"""The Django app of :mod:`tests.integration.apps_wsgi` through ``crossgate.wsgi_to_asgi``,
with startup and shutdown hooks, for ``hypercorn -k trio``."""

from __future__ import annotations

from django.core.wsgi import get_wsgi_application

import tests.integration.apps_wsgi.django_app  # noqa: F401 - configures Django
from crossgate import wsgi_to_asgi
from tests.integration.apps_trio.wsgi_hooks import on_shutdown, on_startup

application = wsgi_to_asgi(get_wsgi_application(), on_startup=on_startup, on_shutdown=on_shutdown)
