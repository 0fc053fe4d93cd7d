"""Flask, Django and Starlette under one ``crossgate.dispatch``, served by uvicorn.

``scripts/demo`` runs this. Each framework is mounted under its own prefix and builds its
own URLs with it (Flask's ``url_for``, Django's ``reverse``, Starlette's ``url_for``),
because the dispatcher sets ``root_path`` (``SCRIPT_NAME`` for the WSGI apps) and keeps
``path`` whole. Lifespan reaches every mounted app that has one: the Starlette app opens a
resource at startup and sees it in its requests' state.

Run: ``python -m examples.mixed [--port N]``, or ``crossgate serve examples.mixed:app``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import django
from django.conf import settings
from flask import Flask, redirect, url_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from crossgate import dispatch

# --- Flask: a legacy app with a redirect built by url_for ----------------------------------

flask_app = Flask(__name__)


@flask_app.get("/")
def flask_index() -> str:
    return f"Hello from Flask, mounted at {url_for('flask_index')}\n"


@flask_app.get("/old")
def flask_old() -> Any:
    # Redirects to /flask/ when mounted at /flask: url_for includes SCRIPT_NAME.
    return redirect(url_for("flask_index"))


# --- Django: configured in code, one view that reverses its own URL -------------------------

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="crossgate-demo-not-secret",  # a demo, never deployed
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402 - needs configured settings
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path, reverse  # noqa: E402


def django_hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        f"Hello from Django, this view is at {reverse('hello')} "
        f"(SCRIPT_NAME={request.META.get('SCRIPT_NAME')!r})\n",
        content_type="text/plain; charset=utf-8",
    )


urlpatterns = [path("", django_hello, name="hello")]
django_app = WSGIHandler()

# --- Starlette: an ASGI app with a lifespan-created resource --------------------------------


@asynccontextmanager
async def starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "Hello from Starlette, with state from its lifespan"}


async def starlette_index(request: Request) -> JSONResponse:
    return JSONResponse(
        {"message": request.state.greeting, "url": str(request.url_for("starlette_index"))}
    )


starlette_app = Starlette(
    routes=[Route("/", starlette_index, name="starlette_index")], lifespan=starlette_lifespan
)

# --- The index and the dispatcher ------------------------------------------------------------

PAGES = {
    "/flask/": "Flask (WSGI) — and /flask/old redirects here via url_for",
    "/django/": "Django (WSGI) — reverse() includes the prefix",
    "/starlette/": "Starlette (ASGI) — state from its lifespan",
}


async def index(request: Request) -> HTMLResponse | PlainTextResponse:
    if request.url.path != "/":
        return PlainTextResponse("not found\n", status_code=404)
    items = "".join(f'<li><a href="{url}">{url}</a>: {text}</li>' for url, text in PAGES.items())
    return HTMLResponse(
        "<!doctype html><title>crossgate demo</title>"
        "<h1>Three frameworks, one ASGI server, one crossgate.dispatch</h1>"
        f"<ul>{items}</ul>"
    )


app = dispatch(
    {
        "/flask": flask_app,
        "/django": django_app,
        "/starlette": starlette_app,
        "/": Starlette(routes=[Route("/{rest:path}", index)]),
    }
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="crossgate demo: three frameworks, one server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)

    import uvicorn  # noqa: PLC0415 - only needed to serve, not to import the app

    base = f"http://{args.host}:{args.port}"
    print(f"crossgate demo on {base}/  (Ctrl+C to stop)", flush=True)
    for url, text in PAGES.items():
        print(f"  {base}{url}  {text}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
