"""The applications that the ``benchmarks.servers`` package serves on real servers.

Two native apps answer the same workloads, one per interface, routed by path:

* ``/hello``: 13 bytes; ``/page``: a 20 KiB HTML page (what a Flask or Django page weighs);
* ``/download``: 4 MiB streamed in 64 KiB chunks; ``/upload``: a 1 MiB POST body, read in
  64 KiB pieces and answered with its length (status 400 for any other length, so a load
  generator that does not send the body shows up as failing responses);
* ``/flask`` (WSGI only): a real Flask app rendering a Jinja template; ``/fastapi`` (ASGI
  only): a real FastAPI app rendering the same template; ``/django`` (both): a real Django
  view rendering the same template (settings configured here, no database).

``wsgi_app`` and ``asgi_app`` are the natives (the ceilings); every adapter wraps one of
them, and each wrapped app is one module attribute, so a server takes ``module:attr``:
``crossgate_wsgi_to_asgi``, ``a2wsgi_wsgi_to_asgi``, ``asgiref_wsgi_to_asgi``,
``uvicorn_wsgi_to_asgi``, ``hypercorn_wsgi_to_asgi`` (the WSGI app for ASGI servers) and
``crossgate_asgi_to_wsgi``, ``a2wsgi_asgi_to_wsgi`` (the ASGI app for WSGI servers).
The wrappers are built on first access (PEP 562 module ``__getattr__``), so a server
process holds only the one it serves: a2wsgi's ASGI wrapper starts a loop thread when made.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import django
import jinja2
from a2wsgi import ASGIMiddleware, WSGIMiddleware
from asgiref.wsgi import WsgiToAsgi
from django.conf import settings
from django.shortcuts import render
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from flask import Flask, render_template
from hypercorn.middleware import AsyncioWSGIMiddleware

# uvicorn's own, deprecated middleware: the public name warns and may point to a2wsgi; the
# private class is the implementation uvicorn ships (its name in uvicorn 0.54).
from uvicorn.middleware.wsgi import _WSGIMiddleware

from crossgate import asgi_to_wsgi, wsgi_to_asgi
from crossgate._types import Environ, Message, Receive, Send, StartResponse, WSGIApp

#: The loose scope type (a plain mapping), as servers hand it over.
Scope = Message

__all__ = [
    "DOWNLOAD_SIZE",
    "HELLO",
    "PAGE",
    "TEMPLATE_MARKER",
    "UPLOAD_SIZE",
    "WRAPPERS",
    "asgi_app",
    "wsgi_app",
]

KIB = 1024
MIB = 1024 * KIB
HELLO = b"Hello, world!"
#: 20 KiB of HTML, built once: the adapter's cost, not the page's, is what is measured.
PAGE = (
    b"<!doctype html><html><head><title>crossgate bench</title></head><body>\n"
    + b"".join(b"<p>row %05d lorem ipsum dolor sit amet</p>\n" % i for i in range(600))
)[: 20 * KIB - len(b"</body></html>")] + b"</body></html>"
CHUNK = b"d" * (64 * KIB)
DOWNLOAD_SIZE = 4 * MIB
UPLOAD_SIZE = 1 * MIB
READ_SIZE = 64 * KIB
assert len(PAGE) == 20 * KIB

#: One template for Flask (Jinja), FastAPI (Jinja) and Django (its own engine): the syntax
#: below means the same in both engines, so the three real apps render the same page.
TEMPLATE = """<!doctype html>
<html><head><title>{{ title }}</title></head>
<body><h1>{{ title }}</h1>
<table>
{% for item in items %}<tr><td>{{ item.id }}</td><td>{{ item.name }}</td>\
<td>{{ item.price }}</td></tr>
{% endfor %}</table>
</body></html>
"""
TEMPLATE_MARKER = "<td>item-19</td>"


def _context() -> dict[str, Any]:
    return {
        "title": "crossgate bench",
        "items": [{"id": i, "name": f"item-{i}", "price": f"{i * 1.25:.2f}"} for i in range(20)],
    }


# --- the plain workloads, WSGI -----------------------------------------------------------

_TEXT = [("Content-Type", "text/plain")]
_HTML = [("Content-Type", "text/html; charset=utf-8")]
_BYTES = [("Content-Type", "application/octet-stream")]


def _hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*_TEXT, ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def _page(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*_HTML, ("Content-Length", str(len(PAGE)))])
    return [PAGE]


def _chunks() -> Iterator[bytes]:
    for _ in range(DOWNLOAD_SIZE // len(CHUNK)):
        yield CHUNK


def _download(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*_BYTES, ("Content-Length", str(DOWNLOAD_SIZE))])
    return _chunks()


def _upload(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    # Read as a streaming app does, in bounded pieces up to CONTENT_LENGTH (PEP 3333: "the
    # application should not attempt to read more data than is specified by the
    # CONTENT_LENGTH variable", https://peps.python.org/pep-3333/#input-and-error-streams).
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    total = 0
    while remaining > 0:
        data = stream.read(min(READ_SIZE, remaining))
        if not data:
            break
        total += len(data)
        remaining -= len(data)
    body = str(total).encode("ascii")
    status = "200 OK" if total == UPLOAD_SIZE else "400 Bad Request"
    start_response(status, [*_TEXT, ("Content-Length", str(len(body)))])
    return [body]


# --- the plain workloads, ASGI -----------------------------------------------------------


def _start(content_type: bytes, length: int, status: int = 200) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", b"%d" % length)],
    }


async def _ahello(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_start(b"text/plain", len(HELLO)))
    await send({"type": "http.response.body", "body": HELLO})


async def _apage(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_start(b"text/html; charset=utf-8", len(PAGE)))
    await send({"type": "http.response.body", "body": PAGE})


async def _adownload(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_start(b"application/octet-stream", DOWNLOAD_SIZE))
    count = DOWNLOAD_SIZE // len(CHUNK)
    for i in range(count):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": i < count - 1})


async def _aupload(scope: Scope, receive: Receive, send: Send) -> None:
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client left: nothing to answer
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(total).encode("ascii")
    await send(_start(b"text/plain", len(body), 200 if total == UPLOAD_SIZE else 400))
    await send({"type": "http.response.body", "body": body})


# --- the real apps -----------------------------------------------------------------------

flask_app = Flask(__name__)


# A template from the app's loader, as Flask apps use templates/: compiled once, cached.
flask_app.jinja_loader = jinja2.DictLoader({"bench.html": TEMPLATE})


@flask_app.route("/flask")
def flask_page() -> str:
    return render_template("bench.html", **_context())


fastapi_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
_jinja = jinja2.Environment(autoescape=True).from_string(TEMPLATE)


@fastapi_app.get("/fastapi", response_class=HTMLResponse)
async def fastapi_page() -> HTMLResponse:
    return HTMLResponse(_jinja.render(**_context()))


def _django_view(request: Any) -> Any:
    return render(request, "bench.html", _context())


if not settings.configured:
    from django.urls import path

    settings.configure(
        DEBUG=False,
        SECRET_KEY="crossgate-benchmarks-not-secret",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    # Cached, as Django's default loaders are when DEBUG is off.
                    "loaders": [
                        (
                            "django.template.loaders.cached.Loader",
                            [("django.template.loaders.locmem.Loader", {"bench.html": TEMPLATE})],
                        )
                    ]
                },
            }
        ],
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    urlpatterns = [path("django", _django_view)]
    django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402 (needs settings first)
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_wsgi = get_wsgi_application()
django_asgi = get_asgi_application()


# --- the two native apps -----------------------------------------------------------------

_WSGI_ROUTES: dict[str, WSGIApp] = {
    "/hello": _hello,
    "/page": _page,
    "/download": _download,
    "/upload": _upload,
    "/flask": flask_app,
    "/django": django_wsgi,
}


def _not_found(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [*_TEXT, ("Content-Length", "9")])
    return [b"not found"]


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI workloads, routed by ``PATH_INFO``."""
    return _WSGI_ROUTES.get(environ.get("PATH_INFO", ""), _not_found)(environ, start_response)


ASGIHandler = Callable[[Scope, Receive, Send], Any]
_ASGI_ROUTES: dict[str, ASGIHandler] = {
    "/hello": _ahello,
    "/page": _apage,
    "/download": _adownload,
    "/upload": _aupload,
    "/fastapi": fastapi_app,
    "/django": django_asgi,
}


async def _anot_found(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_start(b"text/plain", 9))
    await send({"type": "http.response.body", "body": b"not found"})


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI workloads, routed by ``path``; lifespan answered here (Django has none)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _ASGI_ROUTES.get(scope["path"], _anot_found)(scope, receive, send)


# --- the wrapped apps, one attribute each, built on first access ---------------------------


# Each peer annotates the apps it takes with its own types: hand them the natives as Any.
_wsgi: Any = wsgi_app
_asgi: Any = asgi_app

#: attribute name -> factory of the wrapped app.
WRAPPERS: dict[str, Callable[[], Any]] = {
    "crossgate_wsgi_to_asgi": lambda: wsgi_to_asgi(wsgi_app),
    "a2wsgi_wsgi_to_asgi": lambda: WSGIMiddleware(_wsgi),
    "asgiref_wsgi_to_asgi": lambda: WsgiToAsgi(_wsgi),  # type: ignore[no-untyped-call]
    "uvicorn_wsgi_to_asgi": lambda: _WSGIMiddleware(_wsgi),
    # hypercorn's wrapper answers 400 to bodies over 64 KiB unless told otherwise (it
    # buffers the whole body): allowed the upload workload's 1 MiB, as a user would.
    "hypercorn_wsgi_to_asgi": lambda: AsyncioWSGIMiddleware(_wsgi, max_body_size=2 * MIB),
    "crossgate_asgi_to_wsgi": lambda: asgi_to_wsgi(asgi_app),
    "a2wsgi_asgi_to_wsgi": lambda: ASGIMiddleware(_asgi),
}


def __getattr__(name: str) -> Any:
    factory = WRAPPERS.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = factory()
    globals()[name] = app
    return app
