"""The Flask app behind nginx: ``url_for(..., _external=True)`` builds the URL."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request, url_for

app = Flask(__name__)


@app.get("/whoami")
def whoami() -> Response:
    return jsonify(
        client=request.remote_addr,
        scheme=request.scheme,
        url=url_for("whoami", _external=True),
        pid=os.getpid(),
    )


@app.get("/stream/numbers")
def numbers() -> Response:
    def lines() -> Iterator[bytes]:
        for number in range(5):
            if number:
                time.sleep(0.4)
            yield f"line {number}\n".encode()

    return Response(lines(), content_type="text/plain")


@app.post("/upload")
def upload() -> Response:
    digest, size = hashlib.sha256(), 0
    while chunk := request.stream.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return jsonify(size=size, sha256=digest.hexdigest())
