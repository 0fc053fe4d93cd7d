"""The apps `test_nginx.py` serves behind nginx: Django and Flask (WSGI), FastAPI (ASGI).

Each answers the same three routes: ``/whoami`` (the client's address, the scheme, an
absolute URL built by the framework, the process), ``/stream/numbers`` (five lines, 0.4 s
apart) and ``POST /upload`` (the size and SHA-256 of the body, read in pieces).
"""
