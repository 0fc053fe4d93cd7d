"""A Flask app on ASGI through crossgate (routes: see the package docstring)."""

from __future__ import annotations

from flask import Flask, Response, request

from crossgate.adapters.wsgi_to_asgi import wsgi_to_asgi
from tests.integration.apps_wsgi import (
    endless,
    mark_started,
    pattern,
    sha_of_stream,
    started,
    wait_closed,
)

flask_app = Flask(__name__)


@flask_app.get("/hello")
def hello() -> str:
    return "Hello, Flask!"


@flask_app.get("/stream")
def stream() -> Response:
    chunks = int(request.args["chunks"])
    size = int(request.args["size"])
    return Response(pattern(chunks, size), mimetype="application/octet-stream")


@flask_app.post("/upload")
def upload() -> str:
    return sha_of_stream(request.stream.read)


@flask_app.get("/endless")
def endless_view() -> Response:
    return Response(endless(request.args["token"]), mimetype="application/octet-stream")


@flask_app.get("/closed")
def closed() -> str:
    return wait_closed(request.args["token"])


@flask_app.get("/startup")
def startup() -> str:
    return started()


application = wsgi_to_asgi(flask_app, on_startup=[mark_started], workers=8)
