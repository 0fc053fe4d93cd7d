"""Telling WSGI from ASGI apps, and the adapters refusing the wrong kind at construction."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from fastapi import FastAPI
from flask import Flask
from quart import Quart
from starlette.applications import Starlette

from crossgate import asgi_to_wsgi, wsgi_to_asgi
from crossgate._types import Environ, Receive, Scope, Send, StartResponse
from crossgate.adapters._kind import refuse_the_wrong_kind, shape


def wsgi_function(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return []


async def asgi_function(scope: Scope, receive: Receive, send: Send) -> None:
    pass


def sync_asgi(scope: Scope, receive: Receive, send: Send) -> Any:
    return asgi_function(scope, receive, send)


def anything(*args: Any) -> Any:
    return None


def asgi2_factory(scope: Scope) -> Any:
    return asgi_function


class WSGIClass:
    """PEP 3333: an application may be a class; calling it is calling the app."""

    def __init__(self, environ: Environ, start_response: StartResponse) -> None:
        pass

    def __iter__(self) -> Any:
        return iter([])


def wsgi_with_default(environ: Environ, start_response: StartResponse | None = None) -> Any:
    return []


class Double:
    _asgi_double_callable = True

    def __call__(self, scope: Scope) -> Any:
        return asgi_function


CERTAINLY_WSGI = [
    pytest.param(lambda: Flask(__name__), id="flask"),
    pytest.param(lambda: wsgi_function, id="function"),
    pytest.param(lambda: functools.partial(wsgi_function), id="partial"),
    pytest.param(lambda: WSGIClass, id="pep-3333-class"),
]
CERTAINLY_ASGI = [
    pytest.param(FastAPI, id="fastapi"),
    pytest.param(Starlette, id="starlette"),
    pytest.param(lambda: Quart(__name__), id="quart"),
    pytest.param(lambda: asgi_function, id="coroutine-function"),
    pytest.param(Double, id="asgiref-double-callable-hint"),
]
UNSURE = [
    pytest.param(lambda: anything, id="star-args"),
    pytest.param(lambda: wsgi_with_default, id="one-or-two-arguments"),
]


@pytest.mark.parametrize("make", CERTAINLY_WSGI)
def test_asgi_to_wsgi_refuses_a_wsgi_app_naming_it_and_the_way_out(make: Any) -> None:
    app = make()
    assert shape(app) == "wsgi"
    with pytest.raises(TypeError) as caught:
        asgi_to_wsgi(app)
    message = str(caught.value)
    assert repr(app) in message
    assert "is a WSGI application" in message
    assert "crossgate.wsgi_to_asgi()" in message


def test_asgi_to_wsgi_refuses_djangos_wsgi_handler() -> None:
    # Built without __init__, which needs configured settings: only its shape matters.
    handler = WSGIHandler.__new__(WSGIHandler)
    with pytest.raises(TypeError, match="is a WSGI application"):
        asgi_to_wsgi(handler)


@pytest.mark.parametrize("make", CERTAINLY_ASGI)
def test_wsgi_to_asgi_refuses_an_asgi_app_naming_it_and_the_way_out(make: Any) -> None:
    app = make()
    with pytest.raises(TypeError) as caught:
        wsgi_to_asgi(app)
    message = str(caught.value)
    assert repr(app) in message
    assert "is an ASGI application" in message
    assert "crossgate.asgi_to_wsgi()" in message


@pytest.mark.parametrize("app", [sync_asgi, asgi2_factory], ids=["three-arguments", "one"])
def test_wsgi_to_asgi_refuses_what_cannot_take_environ_and_start_response(app: Any) -> None:
    with pytest.raises(TypeError, match=r"cannot be called with \(environ, start_response\)"):
        wsgi_to_asgi(app)


@pytest.mark.parametrize("app", [None, 42, "module:app"])
def test_both_refuse_what_is_not_callable(app: Any) -> None:
    with pytest.raises(TypeError, match="takes a WSGI application, not"):
        wsgi_to_asgi(app)
    with pytest.raises(TypeError, match="takes an ASGI application, not"):
        asgi_to_wsgi(app)


@pytest.mark.parametrize("make", [*UNSURE, *CERTAINLY_ASGI])
def test_asgi_to_wsgi_takes_what_is_not_certainly_wsgi(make: Any) -> None:
    refuse_the_wrong_kind(make(), "asgi")


@pytest.mark.parametrize("make", [*UNSURE, *CERTAINLY_WSGI])
def test_wsgi_to_asgi_takes_what_may_be_wsgi(make: Any) -> None:
    refuse_the_wrong_kind(make(), "wsgi")


def test_a_callable_whose_signature_cannot_be_read_is_taken_by_both() -> None:
    """Nothing is certain about it: no refusal (``dict`` has no readable signature)."""
    refuse_the_wrong_kind(dict, "wsgi")
    refuse_the_wrong_kind(dict, "asgi")
