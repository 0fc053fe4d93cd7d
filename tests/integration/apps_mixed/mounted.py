"""Flask at /legacy, FastAPI (with a lifespan) at /api, a Starlette site at /: one ASGI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import flask
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from crossgate.middleware.dispatch import dispatch

legacy = flask.Flask(__name__)


@legacy.route("/")
def legacy_home() -> str:
    return "legacy home"


@legacy.route("/old")
def legacy_old() -> Any:
    return flask.redirect(flask.url_for("legacy_new"))


@legacy.route("/new")
def legacy_new() -> str:
    return f"new at {flask.request.script_root}{flask.request.path}"


@contextlib.asynccontextmanager
async def api_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"db": "db-of-the-api"}


api = FastAPI(lifespan=api_lifespan)


@api.get("/items")
async def items(request: Request) -> dict[str, Any]:
    return {"db": request.state.db, "url": str(request.url_for("items"))}


async def site_home(request: StarletteRequest) -> PlainTextResponse:
    # The API's lifespan state is the API's alone.
    return PlainTextResponse(f"site {request.url.path} db={'db' in request.state._state}")


site = Starlette(routes=[Route("/{rest:path}", site_home)])

app = dispatch({"/legacy": legacy, "/api": api, "/": site})
