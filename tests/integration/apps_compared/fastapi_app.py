"""The compared site in FastAPI, with Starlette's responses, StaticFiles and
SessionMiddleware: ``app`` is the ASGI app uvicorn serves natively, ``wsgi`` the same app
through crossgate for gunicorn (routes: see the package docstring).

python-multipart is not installed here, so ``request.form()`` cannot parse uploads; the
upload route parses the multipart body itself (:func:`parse_multipart`), which still
checks that every byte of the request body reached the app.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from crossgate import asgi_to_wsgi
from tests.integration.apps_compared import (
    ASSET,
    DOWNLOAD_NAME,
    file_summary,
    files_dir,
    stream_chunks,
)

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
app.add_middleware(SessionMiddleware, secret_key="crossgate-compared-tests-only")


@app.api_route("/hello", methods=["GET", "HEAD"])
def hello() -> PlainTextResponse:
    return PlainTextResponse("hello from FastAPI\n")


@app.get("/redirect")
def to_hello(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url_for("hello").path, status_code=302)


@app.get("/redirect-absolute")
def to_hello_absolute(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url_for("hello"), status_code=302)


@app.get("/dir/")
def directory() -> PlainTextResponse:
    # Requested without its slash, Starlette's router redirects (redirect_slashes).
    return PlainTextResponse("a directory\n")


@app.get("/cookies/set")
def set_cookies(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("cookies set\n")
    response.set_cookie("flavour", "oatmeal raisin", path="/")
    response.set_cookie(
        "scoped", "yes", path=request.scope["root_path"] + "/cookies", httponly=True
    )
    return response


@app.get("/cookies")
def get_cookies(request: Request) -> JSONResponse:
    return JSONResponse(sorted(request.cookies.items()))


@app.get("/session/add")
def session_add(request: Request, item: str) -> JSONResponse:
    request.session["items"] = [*request.session.get("items", []), item]
    return JSONResponse(request.session["items"])


@app.get("/session")
def session_get(request: Request) -> JSONResponse:
    return JSONResponse(request.session.get("items", []))


def parse_multipart(
    content_type: str, body: bytes
) -> tuple[list[tuple[str, str]], list[dict[str, object]]]:
    """(fields, file summaries) of a multipart/form-data body (RFC 7578), as sent by httpx."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        raise ValueError(f"no boundary in {content_type!r}")
    delimiter = b"--" + found.group(1).encode("latin-1")
    fields: list[tuple[str, str]] = []
    files: list[dict[str, object]] = []
    # Parts sit between delimiters; the last delimiter carries "--" and ends the body.
    for part in body.split(b"\r\n" + delimiter)[1:-1]:
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        params = dict(re.findall(r';\s*(\w+)="([^"]*)"', headers["content-disposition"]))
        if "filename" in params:
            content = headers.get("content-type", "text/plain")
            files.append(file_summary(params["name"], params["filename"], content, data))
        else:
            fields.append((params["name"], data.decode("utf-8")))
    return sorted(fields), files


@app.post("/upload")
async def upload(request: Request) -> JSONResponse:
    # The body as ASGI delivers it: "\r\n" before the first delimiter makes the split even.
    body = b"\r\n" + b"".join([chunk async for chunk in request.stream()])
    fields, files = parse_multipart(request.headers["content-type"], body)
    return JSONResponse({"fields": fields, "files": files})


@app.api_route("/download", methods=["GET", "HEAD"])
def download() -> FileResponse:
    return FileResponse(files_dir() / ASSET, filename=DOWNLOAD_NAME)


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in stream_chunks():
        yield chunk


@app.api_route("/stream", methods=["GET", "HEAD"])
def stream() -> StreamingResponse:
    return StreamingResponse(_chunks(), media_type="application/octet-stream")


@app.get("/echo/{rest:path}")
def echo(request: Request, rest: str) -> JSONResponse:
    response = JSONResponse(
        {
            "rest": rest,
            "path": request.url.path,
            "root_path": request.scope["root_path"],
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "url": str(request.url),
            "query": sorted(request.query_params.multi_items()),
            "x_echo": request.headers.get("X-Echo"),
        }
    )
    # Back as a response header: Starlette encodes a non-ASCII value as latin-1.
    response.headers["X-Echo"] = request.headers.get("X-Echo", "")
    return response


# StaticFiles is how a Starlette app serves files with conditional requests (304) and ranges.
app.mount("/files", StaticFiles(directory=files_dir()), name="files")

wsgi = asgi_to_wsgi(app)
