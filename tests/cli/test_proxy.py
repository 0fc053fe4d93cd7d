"""--proxy-headers where crossgate applies them: the rule, from a table, and both wrappers."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from crossgate._types import Environ, Message, StartResponse
from crossgate.cli._proxy import ProxyHeadersASGI, ProxyHeadersWSGI, Trusted, forwarded

LOCAL = Trusted.parse("127.0.0.1")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "proto", "trusted", "expected"),
    [
        # An untrusted peer's headers are ignored, whatever they say.
        ("203.0.113.9", "198.51.100.1", "https", LOCAL, (None, None)),
        (None, "198.51.100.1", "https", LOCAL, (None, None)),
        # One proxy: the address it added, and its scheme.
        ("127.0.0.1", "198.51.100.1", "https", LOCAL, ("198.51.100.1", "https")),
        ("127.0.0.1", "198.51.100.1", "http", LOCAL, ("198.51.100.1", "http")),
        # What the client wrote itself (left of the proxy's entry) proves nothing.
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", None, LOCAL, ("198.51.100.1", None)),
        # A chain of trusted proxies is walked from the right.
        (
            "127.0.0.1",
            "6.6.6.6, 198.51.100.1, 10.0.0.2",
            None,
            Trusted.parse("127.0.0.1, 10.0.0.0/8"),
            ("198.51.100.1", None),
        ),
        # Every hop trusted: the leftmost is the client.
        (
            "127.0.0.1",
            "10.0.0.3,10.0.0.2",
            None,
            Trusted.parse("127.0.0.1,10.0.0.0/8"),
            ("10.0.0.3", None),
        ),
        ("::1", "2001:db8::1", "HTTPS", Trusted.parse("::1"), ("2001:db8::1", "https")),
        ("192.0.2.7", "198.51.100.1", "https", Trusted.parse("*"), ("198.51.100.1", "https")),
        # A scheme that is not http or https is not believed; the last value counts.
        ("127.0.0.1", None, "gopher", LOCAL, (None, None)),
        ("127.0.0.1", None, "http, https", LOCAL, (None, "https")),
        ("127.0.0.1", " , ", "", LOCAL, (None, None)),
        ("not-an-ip", "198.51.100.1", "https", LOCAL, (None, None)),
    ],
)
def test_forwarded(
    peer: str | None,
    forwarded_for: str | None,
    proto: str | None,
    trusted: Trusted,
    expected: tuple[str | None, str | None],
) -> None:
    assert forwarded(peer, forwarded_for, proto, trusted) == expected


@pytest.mark.parametrize("text", ["localhost", "10.0.0.1/8", "1.2.3.4,nope"])
def test_trusted_refuses_what_is_not_an_address_or_network(text: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address or network"):
        Trusted.parse(text)


def test_the_wsgi_wrapper_sets_remote_addr_and_scheme() -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(dict(environ))
        return []

    wrapped = ProxyHeadersWSGI(app, LOCAL)
    base = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5555", "wsgi.url_scheme": "http"}
    headers = {"HTTP_X_FORWARDED_FOR": "198.51.100.1", "HTTP_X_FORWARDED_PROTO": "https"}
    wrapped({**base, **headers}, lambda *a: lambda b: None)
    wrapped({**base, "REMOTE_ADDR": "203.0.113.9", **headers}, lambda *a: lambda b: None)
    first, second = seen
    assert (first["REMOTE_ADDR"], first["wsgi.url_scheme"]) == ("198.51.100.1", "https")
    assert "REMOTE_PORT" not in first
    assert (second["REMOTE_ADDR"], second["wsgi.url_scheme"]) == ("203.0.113.9", "http")


@pytest.mark.anyio
async def test_the_asgi_wrapper_sets_client_and_scheme_and_passes_lifespan() -> None:
    seen: list[Message] = []

    async def app(scope: Message, receive: object, send: object) -> None:
        seen.append(scope)

    wrapped = ProxyHeadersASGI(app, LOCAL)
    headers = [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-proto", b"https")]
    http = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 4000), "headers": headers}
    websocket = {**http, "type": "websocket", "scheme": "ws"}
    outsider = {**http, "client": ("203.0.113.9", 4000)}
    lifespan = {"type": "lifespan"}
    for scope in (http, websocket, outsider, lifespan):
        await wrapped(scope, None, None)  # type: ignore[arg-type]
    assert seen[0]["client"] == ("198.51.100.1", 0)
    assert seen[0]["scheme"] == "https"
    assert (seen[1]["client"], seen[1]["scheme"]) == (("198.51.100.1", 0), "wss")
    assert seen[2] is outsider
    assert seen[3] is lifespan
    assert http["client"] == ("127.0.0.1", 4000), "the server's scope is not changed"
