"""A Falcon app on ASGI through crossgate (routes: see the package docstring)."""

from __future__ import annotations

import falcon

from crossgate.adapters.wsgi_to_asgi import wsgi_to_asgi
from tests.integration.apps_wsgi import (
    endless,
    mark_started,
    pattern,
    sha_of_stream,
    started,
    wait_closed,
)


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello, Falcon!"


class Stream:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/octet-stream"
        # An iterable without read(): Falcon hands it to the server as the WSGI body.
        resp.stream = pattern(
            req.get_param_as_int("chunks", required=True),
            req.get_param_as_int("size", required=True),
        )


class Upload:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = sha_of_stream(req.bounded_stream.read)


class Endless:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/octet-stream"
        resp.stream = endless(req.get_param("token", required=True))


class Closed:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = wait_closed(req.get_param("token", required=True))


class Startup:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = started()


falcon_app = falcon.App()
falcon_app.add_route("/hello", Hello())
falcon_app.add_route("/stream", Stream())
falcon_app.add_route("/upload", Upload())
falcon_app.add_route("/endless", Endless())
falcon_app.add_route("/closed", Closed())
falcon_app.add_route("/startup", Startup())

application = wsgi_to_asgi(falcon_app, on_startup=[mark_started], workers=8)
