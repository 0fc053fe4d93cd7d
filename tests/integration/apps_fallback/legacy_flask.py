"""The legacy Flask app the new apps are put in front of (shared by the fallback tests)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask

# Where the lifespan hooks leave their marks (the test's temporary directory).
MARKERS = Path(os.environ.get("CROSSGATE_TEST_DIR") or tempfile.gettempdir())

legacy = flask.Flask(__name__)
_lock = threading.Lock()
_calls = {"deciding": 0}


@legacy.route("/users/<int:user>/avatar")
def avatar(user: int) -> str:
    return f"flask avatar of {user} at {flask.url_for('avatar', user=user)}"


@legacy.route("/old")
def old() -> Any:
    return flask.redirect(flask.url_for("avatar", user=1))


@legacy.route("/echo", methods=["POST"])
def echo() -> dict[str, Any]:
    body = flask.request.get_data()
    return {"app": "flask", "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@legacy.route("/stream")
def stream() -> flask.Response:
    def chunks() -> Iterator[str]:
        for index in range(5):
            yield f"flask {index}\n"
            time.sleep(0.01)

    return flask.Response(chunks(), mimetype="text/plain")


@legacy.route("/deciding")
def deciding() -> str:
    with _lock:
        _calls["deciding"] += 1
    return "flask deciding"


@legacy.route("/calls")
def calls() -> dict[str, int]:
    with _lock:
        return dict(_calls)


def started() -> None:
    """An on_startup hook of the legacy side: the one lifespan reaches it too."""
    (MARKERS / "flask-startup").touch()


def stopped() -> None:
    (MARKERS / "flask-shutdown").touch()
