"""The FastAPI app that takes the legacy app's endpoints over, one at a time.

It shares the legacy app's session: the cookie is read and written with the Flask app's
own signing serializer, so a login made on either side holds on both.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, Response
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

from examples.migrate.legacy import legacy

_found = SecureCookieSessionInterface().get_signing_serializer(legacy)
if _found is None:
    raise RuntimeError("the legacy app needs a SECRET_KEY to sign its session cookie")
_serializer = _found
COOKIE = legacy.config["SESSION_COOKIE_NAME"]
MAX_AGE = int(legacy.permanent_session_lifetime.total_seconds())


def read_session(request: Request) -> dict[str, Any]:
    """The Flask session of this request (empty when absent or not signed by us)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return {}
    try:
        data: dict[str, Any] = _serializer.loads(cookie, max_age=MAX_AGE)
    except BadSignature:
        return {}
    return data


def write_session(response: Response, data: dict[str, Any]) -> None:
    """Set the Flask session cookie as Flask itself would (its name, path and flags)."""
    response.set_cookie(
        COOKIE,
        _serializer.dumps(data),
        path=legacy.config["SESSION_COOKIE_PATH"] or "/",
        httponly=legacy.config["SESSION_COOKIE_HTTPONLY"],
        samesite=legacy.config["SESSION_COOKIE_SAMESITE"],
        secure=legacy.config["SESSION_COOKIE_SECURE"],
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from FastAPI's lifespan"}


# redirect_slashes=False: otherwise FastAPI answers "/users/" with a redirect to its
# "/users" (a 307, not a 404), and a path Flask owns with the slash never reaches Flask.
api = FastAPI(title="examples.migrate: the new app", lifespan=lifespan, redirect_slashes=False)


@api.get("/users/{user_id}", name="user")
async def user(user_id: int, request: Request) -> dict[str, Any]:
    """Moved from Flask: same URL, same session."""
    return {
        "framework": "fastapi",
        "user_id": user_id,
        "viewer": read_session(request).get("user"),
        "greeting": request.state.greeting,
        "self": str(request.url_for("user", user_id=user_id)),
    }


@api.post("/preferences")
async def preferences(request: Request, response: Response, theme: str) -> dict[str, Any]:
    """New endpoint, writing the shared session: the Flask pages see the change."""
    data = read_session(request)
    data["theme"] = theme
    write_session(response, data)
    return {"framework": "fastapi", "theme": theme}
