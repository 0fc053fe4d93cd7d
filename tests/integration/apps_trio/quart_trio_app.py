"""The Quart app of :mod:`tests.integration.apps_asgi.quart_app` on Quart-Trio: its startup
opens a resource bound to the trio run, and it is served as WSGI through crossgate on the
trio portal (``asgi_to_wsgi(..., backend="trio")``). ``/endless`` is a raw ASGI app beside
it, mounted by ``dispatch``, whose lifespan fan-out reaches Quart-Trio on that portal.
"""

from __future__ import annotations

from quart_trio import QuartTrio

from crossgate import dispatch
from crossgate.adapters.asgi_to_wsgi import asgi_to_wsgi
from tests.integration.apps_asgi import endless
from tests.integration.apps_asgi.quart_app import with_routes

app = with_routes(QuartTrio(__name__))
application = asgi_to_wsgi(dispatch({"/endless": endless, "/": app}), backend="trio")
