"""Test your own wrapped apps: drive one request through any WSGI or ASGI application.

Two drivers, each a small spec-conforming server of its own (they use none of crossgate's
adapters, so what they report can be held against them):

* :func:`call_wsgi` serves a :class:`Request` with a WSGI application (PEP 3333);
* :func:`call_asgi` serves it with an ASGI application (the ASGI HTTP spec), in process;

both return a :class:`Response`: status, headers, body, and what was observed on the way
(the request body the app read, every message it sent, whether the response was aborted).
:func:`wsgi_environ` and :func:`asgi_scope` give the environ and the scope they build.
Hypothesis strategies for requests and apps are in :mod:`crossgate.testing.strategies`
(``pip install crossgate[testing]``).

>>> from crossgate import asgi_to_wsgi
>>> async def hello(scope, receive, send):
...     await send({"type": "http.response.start", "status": 200,
...                 "headers": [(b"content-type", b"text/plain")]})
...     await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})
>>> response = call_wsgi(asgi_to_wsgi(hello, lifespan="off"), Request("GET", "/x"))
>>> response.status, response.reason, response.body
(200, 'OK', b'hello /x')
"""

from __future__ import annotations

from crossgate.testing._asgi import asgi_scope, call_asgi
from crossgate.testing._messages import Request, Response
from crossgate.testing._wsgi import call_wsgi, wsgi_environ

__all__ = ["Request", "Response", "asgi_scope", "call_asgi", "call_wsgi", "wsgi_environ"]
