"""The legacy Flask app, part way through its migration.

``/users/<id>`` has moved to FastAPI: its view is gone, but the rule stays as
``build_only`` so that ``url_for("user", user_id=...)`` in views and templates still
builds the URL, which the FastAPI app now answers. Everything else is still here.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, redirect, request, session, url_for
from werkzeug.wrappers import Response

legacy = Flask(__name__)
# A placeholder: read it from the environment in a real deployment. The FastAPI side signs
# the same cookie with it (examples.migrate.new).
legacy.config["SECRET_KEY"] = "examples-migrate-not-a-secret"


class Visits:
    """Stands in for what the legacy app opens at startup (a DB pool, a cache client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # Flask views run in crossgate's thread pool
        self.count = 0
        self.open = True

    def add(self) -> int:
        with self._lock:
            self.count += 1
            return self.count


def open_resources() -> None:
    """on_startup hook, run by the server's one lifespan (through wsgi_to_asgi)."""
    legacy.extensions["visits"] = Visits()


def close_resources() -> None:
    """on_shutdown hook: after the Flask requests in flight have finished."""
    visits: Visits = legacy.extensions["visits"]
    visits.open = False


# Moved to FastAPI: kept for url_for only.
legacy.add_url_rule("/users/<int:user_id>", "user", build_only=True)


@legacy.get("/")
def index() -> dict[str, Any]:
    visits: Visits = legacy.extensions["visits"]
    return {
        "framework": "flask",
        "user": session.get("user"),
        "theme": session.get("theme", "light"),
        "visits": visits.add(),
        "profile": url_for("user", user_id=7),  # answered by FastAPI now
        "avatar": url_for("avatar", user_id=7),
    }


@legacy.post("/login")
def login() -> Response:
    session["user"] = request.form["user"]
    return redirect(url_for("index"))


@legacy.get("/users/<int:user_id>/avatar")
def avatar(user_id: int) -> dict[str, Any]:
    return {"framework": "flask", "avatar_of": user_id, "viewer": session.get("user")}
