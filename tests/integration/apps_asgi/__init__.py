"""ASGI applications served through crossgate by real WSGI servers in integration tests."""
