"""FastAPI endpoints that use the Django ORM, through crossgate, on uvicorn.

The Django ORM keeps one database connection per thread and closes it when Django's
``request_finished`` signal fires on that thread. Outside Django's own handlers nothing
does that, so a FastAPI project that calls the ORM must give each request:

* one thread for all its ORM calls: ``async with crossgate.thread_sensitive()`` around the
  request, and ``crossgate.sync_to_async`` (thread-sensitive by default) around each call;
* Django's request signals, sent on that thread, so that ``CONN_MAX_AGE`` applies:
  ``request_started`` before, ``request_finished`` after (it closes the connection, or
  keeps it for the next request on that thread when ``CONN_MAX_AGE`` > 0).

:class:`~examples.django_orm.app.DjangoRequestScope`, an ASGI middleware of ten lines,
does both (see app.py). Endpoints must be ``async def``: FastAPI runs plain ``def``
endpoints and dependencies in its own thread pool, where neither applies.

Run: ``python -m examples.django_orm [--port N]`` (creates the SQLite database named by
``CROSSGATE_EXAMPLE_DB``, default ``$TMPDIR/crossgate-django-orm.sqlite3``), then
``curl -X POST 'http://127.0.0.1:8000/notes?text=hi'`` and
``curl http://127.0.0.1:8000/notes``.
"""
