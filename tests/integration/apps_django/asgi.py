"""The deployed project's ASGI entry point: Django's WSGI handler through crossgate."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from crossgate import wsgi_to_asgi
from tests.integration.apps_django import SETTINGS

os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)

application = wsgi_to_asgi(get_wsgi_application())
