"""Django's own ASGI handler (``application``), and the same mounted in crossgate's
dispatch (``dispatched``), which opens a thread-sensitive context per request."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from benchmarks.django_orm import SETTINGS
from crossgate import dispatch

os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)

application = get_asgi_application()
dispatched = dispatch({"/": application})
