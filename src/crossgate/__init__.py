"""crossgate: translate between WSGI (PEP 3333) and ASGI, in both directions."""
