"""A minimal Django project served by uvicorn through ``crossgate.wsgi_to_asgi``.

A model on SQLite, a form POST checked for CSRF, a file upload and a
``StreamingHttpResponse``, all plain Django WSGI code. ``app`` is Django's WSGI handler
wrapped for ASGI servers, with the database migrations run as its lifespan startup hook
(so start one process, or migrate beforehand when serving with several workers).

Run: ``python -m examples.django_on_uvicorn [--port N]`` and open http://127.0.0.1:8000/ ,
or ``crossgate serve examples.django_on_uvicorn:app``. For comparison, ``django_asgi`` is
Django's own ASGI handler, which raises on the lifespan scope (``crossgate serve
examples.django_on_uvicorn:django_asgi`` wraps it in ``crossgate.with_lifespan``, so the
server logs no lifespan complaint).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_on_uvicorn.settings")

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

from crossgate import wsgi_to_asgi

__all__ = ["app", "application", "django_asgi", "migrate"]


def migrate() -> None:
    """Create or update the SQLite tables (a lifespan startup hook, run in a pool thread)."""
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    call_command("migrate", interactive=False, verbosity=0)
    connections.close_all()  # this thread's connection; each request opens its own


#: Django's WSGI application (``get_wsgi_application`` also runs ``django.setup()``).
application = get_wsgi_application()
#: What uvicorn serves: the WSGI app as ASGI, migrating the database at startup.
app = wsgi_to_asgi(application, on_startup=[migrate])
#: Django's own ASGI handler, for comparison (it raises on the lifespan scope).
django_asgi = get_asgi_application()
