"""The same small site written in Flask, Django and FastAPI, to serve natively and through
crossgate and compare the answers (tests/integration/test_compared.py).

Each app is mounted at :data:`PREFIX` and serves, below it:

* ``/hello`` (GET, HEAD): a short text;
* ``/redirect``: a redirect to ``/hello`` built by the framework's URL reversal
  (``url_for``, ``reverse``, ``request.url_for``); ``/redirect-absolute``: the same as an
  absolute URL; ``/dir/``: a page whose slash-less form the framework redirects;
* ``/cookies/set``: sets two cookies; ``/cookies``: echoes the cookies received;
* ``/session/add?item=X``: appends X to a list kept in the framework's signed-cookie
  session and echoes the list; ``/session``: echoes the list;
* ``/upload`` (POST multipart): echoes the form fields and, per file, its field name,
  file name, content type, size and SHA-256;
* ``/files/asset.bin``: the framework's static-file answer (``send_from_directory``,
  ``FileResponse`` behind ``@condition``, ``StaticFiles``): ETag, Last-Modified, 304s,
  ranges where the framework supports them; ``/download``: the same file as an attachment
  with a non-ASCII download name;
* ``/stream``: a streamed body of :data:`STREAM_CHUNKS` chunks of :data:`STREAM_CHUNK`
  bytes (no Content-Length);
* ``/echo/<anything>``: echoes the path, URL and query the framework decoded.

The directory served is named by the environment variable :data:`FILES_ENV`: the test
writes the file once, so every server sees the same bytes and the same modification time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "ASSET",
    "DOWNLOAD_NAME",
    "FILES_ENV",
    "PREFIX",
    "STREAM_CHUNK",
    "STREAM_CHUNKS",
    "asset_bytes",
    "file_summary",
    "files_dir",
    "stream_chunks",
]

#: Where every app is mounted (SCRIPT_NAME on gunicorn, root_path on uvicorn).
PREFIX = "/site"
FILES_ENV = "CROSSGATE_COMPARED_FILES"
ASSET = "asset.bin"
#: Offered as the attachment name of /download: non-ASCII, so it travels as filename*.
DOWNLOAD_NAME = "résumé 2024.bin"
STREAM_CHUNKS = 40
STREAM_CHUNK = 8 * 1024


def asset_bytes() -> bytes:
    """The served file: 150 KiB that are not one repeated byte (ranges must land right)."""
    return bytes(range(256)) * 600


def files_dir() -> Path:
    return Path(os.environ[FILES_ENV])


def file_summary(field: str, filename: str, content_type: str, data: bytes) -> dict[str, object]:
    """What /upload answers per file, in every framework."""
    return {
        "field": field,
        "filename": filename,
        "content_type": content_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def stream_chunks() -> Iterator[bytes]:
    """The /stream body: chunk i is the digit i % 10 repeated."""
    for index in range(STREAM_CHUNKS):
        yield str(index % 10).encode() * STREAM_CHUNK
