"""A Quart-Trio app served through ``crossgate.asgi_to_wsgi(app, backend="trio")`` by real
WSGI servers: the trio counterpart of :mod:`tests.integration.apps_asgi` (same routes,
markers and events), with every wait on trio's own primitives, which no asyncio loop can
run.
"""
