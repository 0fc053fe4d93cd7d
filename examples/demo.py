"""The demo: a small Flask-style WSGI app served on uvicorn through crossgate.

Run it with ``scripts/demo`` (or ``python -m examples.demo [--port N]``) and open
http://127.0.0.1:8000/ . The app is plain PEP 3333 code with no framework, so the demo
needs nothing beyond ``crossgate[serve]``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
from collections.abc import Callable, Iterable, Iterator

from crossgate import wsgi_to_asgi
from crossgate._types import Environ, StartResponse

Handler = Callable[[Environ, StartResponse], Iterable[bytes]]
_routes: dict[str, Handler] = {}


def route(path: str) -> Callable[[Handler], Handler]:
    """Register a handler for an exact path, Flask style."""

    def register(handler: Handler) -> Handler:
        _routes[path] = handler
        return handler

    return register


@route("/")
def index(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    script = html.escape(environ.get("SCRIPT_NAME", ""))
    body = f"""<!doctype html>
<title>crossgate demo</title>
<h1>Hello from a WSGI app on an ASGI server</h1>
<p>This page was produced by a PEP 3333 application, run by uvicorn through
<code>crossgate.wsgi_to_asgi</code>.</p>
<ul>
  <li><a href="{script}/stream">{script}/stream</a>: a streamed response (a generator)</li>
  <li><a href="{script}/environ">{script}/environ</a>: the WSGI environ crossgate built</li>
  <li>POST to {script}/echo: the request body, streamed back</li>
</ul>
""".encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body]


@route("/stream")
def stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])

    def lines() -> Iterator[bytes]:
        for i in range(1, 11):
            yield f"line {i} of 10\n".encode()

    return lines()


@route("/environ")
def show_environ(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    shown = {k: v for k, v in environ.items() if isinstance(v, str | int | bool | tuple)}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(shown, indent=2, sort_keys=True, default=str).encode()]


@route("/echo")
def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] != "POST":
        start_response("405 Method Not Allowed", [("Allow", "POST")])
        return [b"POST a body to /echo\n"]
    start_response(
        "200 OK", [("Content-Type", environ.get("CONTENT_TYPE") or "application/octet-stream")]
    )
    stream = environ["wsgi.input"]
    return iter(lambda: stream.read(65536), b"")


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI application: dispatch on PATH_INFO, 404 otherwise."""
    handler = _routes.get(environ.get("PATH_INFO") or "/")
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    return handler(environ, start_response)


asgi_app = wsgi_to_asgi(app)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)

    import uvicorn  # noqa: PLC0415 - only needed to serve, not to import the app

    print(f"crossgate demo: http://{args.host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    uvicorn.run(asgi_app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
