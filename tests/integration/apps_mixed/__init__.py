"""Apps that mix WSGI and ASGI under crossgate's middleware, served by real servers in tests."""
