"""The compared site in Flask: ``app`` is the WSGI app gunicorn serves natively, ``asgi``
the same app through crossgate for uvicorn (routes: see the package docstring)."""

from __future__ import annotations

from flask import (
    Flask,
    Response,
    jsonify,
    redirect,
    request,
    send_file,
    send_from_directory,
    session,
    url_for,
)
from werkzeug.wrappers import Response as WerkzeugResponse

from crossgate import wsgi_to_asgi
from tests.integration.apps_compared import (
    ASSET,
    DOWNLOAD_NAME,
    file_summary,
    files_dir,
    stream_chunks,
)

app = Flask(__name__)
app.secret_key = "crossgate-compared-tests-only"


@app.route("/hello", methods=["GET", "HEAD"])
def hello() -> Response:
    return Response("hello from Flask\n", mimetype="text/plain")


@app.get("/redirect")
def to_hello() -> WerkzeugResponse:
    return redirect(url_for("hello"))


@app.get("/redirect-absolute")
def to_hello_absolute() -> WerkzeugResponse:
    return redirect(url_for("hello", _external=True))


@app.get("/dir/")
def directory() -> str:
    # Requested without its slash, werkzeug's router redirects (strict_slashes).
    return "a directory\n"


@app.get("/cookies/set")
def set_cookies() -> Response:
    response = Response("cookies set\n", mimetype="text/plain")
    response.set_cookie("flavour", "oatmeal raisin", path="/")
    response.set_cookie("scoped", "yes", path=request.script_root + "/cookies", httponly=True)
    return response


@app.get("/cookies")
def get_cookies() -> Response:
    return jsonify(sorted(request.cookies.items()))


@app.get("/session/add")
def session_add() -> Response:
    session["items"] = [*session.get("items", []), request.args["item"]]
    return jsonify(session["items"])


@app.get("/session")
def session_get() -> Response:
    return jsonify(session.get("items", []))


@app.post("/upload")
def upload() -> Response:
    files = [
        file_summary(field, storage.filename or "", storage.mimetype, storage.read())
        for field, storage in request.files.items(multi=True)
    ]
    return jsonify({"fields": sorted(request.form.items(multi=True)), "files": files})


@app.route("/files/<name>", methods=["GET", "HEAD"])
def files(name: str) -> Response:
    return send_from_directory(files_dir(), name)


@app.route("/download", methods=["GET", "HEAD"])
def download() -> Response:
    return send_file(files_dir() / ASSET, as_attachment=True, download_name=DOWNLOAD_NAME)


@app.route("/stream", methods=["GET", "HEAD"])
def stream() -> Response:
    return Response(stream_chunks(), mimetype="application/octet-stream")


@app.get("/echo/<path:rest>")
def echo(rest: str) -> Response:
    response = jsonify(
        {
            "rest": rest,
            "path": request.path,
            "script_root": request.script_root,
            "full_path": request.full_path,
            "url": request.url,
            # The request target as sent, as gunicorn and crossgate both give it.
            "raw_uri": request.environ.get("RAW_URI"),
            "args": sorted(request.args.items(multi=True)),
            "x_echo": request.headers.get("X-Echo"),
        }
    )
    # Back as a response header: a non-ASCII value travels as latin-1 (PEP 3333).
    response.headers["X-Echo"] = request.headers.get("X-Echo", "")
    return response


asgi = wsgi_to_asgi(app)
