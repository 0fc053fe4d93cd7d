"""crossgate's exceptions, and the logging filter for a client's disconnect."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from crossgate import ClientDisconnected, ClientDisconnectFilter
from crossgate._errors import caused_by_disconnect
from tests.integration.support import REPO


class UnreadablePostError(OSError):
    """Django's: an OSError raised ``from`` the read's error."""


def _wrapped(from_: bool) -> BaseException:
    try:
        try:
            raise ClientDisconnected("the client disconnected before the request body ended")
        except OSError as exc:
            if from_:
                raise UnreadablePostError(*exc.args) from exc
            raise UnreadablePostError(*exc.args)  # noqa: B904 - the implicit context
    except UnreadablePostError as outer:
        return outer


def _unrelated() -> BaseException:
    try:
        raise ZeroDivisionError("the app's own bug")
    except ZeroDivisionError as exc:
        return exc


def test_caused_by_disconnect_follows_the_cause_and_the_context() -> None:
    assert caused_by_disconnect(ClientDisconnected("gone"))
    assert caused_by_disconnect(_wrapped(from_=True))
    assert caused_by_disconnect(_wrapped(from_=False))
    assert not caused_by_disconnect(_unrelated())
    looped = ValueError("a")
    looped.__context__ = looped  # a cycle in the chain ends the walk
    assert not caused_by_disconnect(looped)


def _record(exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord(
        "django.request",
        logging.ERROR,
        __file__,
        1,
        "Internal Server Error: %s",
        ("/up",),
        exc_info,
    )


def test_the_filter_makes_a_disconnect_one_info_line() -> None:
    record = _record(_wrapped(from_=True))
    assert ClientDisconnectFilter().filter(record)
    assert (record.levelno, record.levelname) == (logging.INFO, "INFO")
    assert record.exc_info is None
    assert record.getMessage() == (
        "Internal Server Error: /up: the client left before the request ended (UnreadablePostError)"
    )


@pytest.mark.parametrize("exc", [None, _unrelated()], ids=["no-exception", "unrelated"])
def test_the_filter_leaves_other_records_alone(exc: BaseException | None) -> None:
    record = _record(exc)
    assert ClientDisconnectFilter().filter(record)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "Internal Server Error: /up"
    assert record.exc_info == (None if exc is None else (type(exc), exc, exc.__traceback__))


DJANGO_UPLOAD = textwrap.dedent(
    """
    import asyncio, sys
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path

    logging_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                    "formatter": "plain"},
        },
        "root": {"handlers": ["err"], "level": "INFO"},
    }
    if sys.argv[1] == "filtered":
        logging_config["filters"] = {"client_gone": {"()": "crossgate.ClientDisconnectFilter"}}
        logging_config["loggers"] = {"django.request": {"filters": ["client_gone"]}}
    settings.configure(
        DEBUG=False, SECRET_KEY="x", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={}, LOGGING=logging_config,
    )
    django.setup()

    def upload(request):
        return HttpResponse(str(request.FILES["f"].size))

    urlpatterns = [path("upload", upload)]

    from django.core.wsgi import get_wsgi_application
    from crossgate import wsgi_to_asgi

    head = (b'--B\\r\\nContent-Disposition: form-data; name="f"; filename="a"\\r\\n'
            b"Content-Type: application/octet-stream\\r\\n\\r\\n")
    messages = [
        {"type": "http.request", "body": head + b"x" * 1000, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        pass

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/upload", "raw_path": b"/upload",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"x"), (b"content-length", b"100000"),
                    (b"content-type", b"multipart/form-data; boundary=B")],
    }
    app = wsgi_to_asgi(get_wsgi_application())
    asyncio.run(app(scope, receive, send))
    app.pool.shutdown()
    """
)


@pytest.mark.parametrize("mode", ["plain", "filtered"])
def test_a_django_upload_cut_by_its_client_logs_one_line_with_the_filter(mode: str) -> None:
    """Django logs the cut upload's UnreadablePostError as an Internal Server Error with its
    traceback (crossgate itself says nothing above DEBUG); with the filter, one INFO line."""
    run = subprocess.run(
        [sys.executable, "-c", DJANGO_UPLOAD, mode],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=True,
    )
    lines = run.stderr.splitlines()
    if mode == "plain":
        assert lines[0] == "ERROR django.request Internal Server Error: /upload"
        assert "Traceback (most recent call last):" in lines
    else:
        assert lines == [
            "INFO django.request Internal Server Error: /upload: the client left before the "
            "request ended (UnreadablePostError)"
        ]
