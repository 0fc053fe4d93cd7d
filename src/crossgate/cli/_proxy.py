"""``--proxy-headers``: the client's address and the scheme from a trusted proxy's headers.

Used where the server has no such setting of its own (hypercorn, wsgiref) or where its own
setting covers the scheme only (gunicorn's ``forwarded_allow_ips`` leaves ``REMOTE_ADDR``
the proxy's). The rule is the one uvicorn and gunicorn apply: headers count only when the
peer is trusted; the client is the rightmost ``X-Forwarded-For`` entry that is not itself
a trusted proxy (entries further left were written by the client and prove nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from crossgate._types import ASGIApp, Environ, Message, Receive, Send, StartResponse, WSGIApp

__all__ = ["ProxyHeadersASGI", "ProxyHeadersWSGI", "Trusted", "forwarded"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SCHEMES: Final = frozenset({"http", "https"})


@dataclass(frozen=True)
class Trusted:
    """The peers whose forwarding headers are believed: addresses, networks, or ``*``."""

    networks: tuple[_Network, ...]
    anyone: bool = False

    @classmethod
    def parse(cls, text: str) -> Trusted:
        """``"127.0.0.1,10.0.0.0/8,::1"`` or ``"*"``; ValueError names a bad entry."""
        entries = [entry.strip() for entry in text.split(",") if entry.strip()]
        if "*" in entries:
            return cls((), anyone=True)
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return cls(tuple(networks))

    def __contains__(self, host: object) -> bool:
        if self.anyone:
            return True
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def forwarded(
    peer: str | None, forwarded_for: str | None, proto: str | None, trusted: Trusted
) -> tuple[str | None, str | None]:
    """The client's address and the scheme the proxy says, each None when not to be changed.

    ``forwarded_for`` and ``proto`` are the ``X-Forwarded-For`` and ``X-Forwarded-Proto``
    values as received (repeated fields joined by commas); only a trusted ``peer`` sets them.
    """
    if peer not in trusted:
        return None, None
    scheme = None
    if proto:
        last = proto.rsplit(",", 1)[-1].strip().lower()
        scheme = last if last in _SCHEMES else None
    client = None
    if forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            client = hop
            if hop not in trusted:
                break
    return client, scheme


class ProxyHeadersASGI:
    """Sets ``client`` and ``scheme`` of HTTP and WebSocket scopes from a trusted proxy.

    Args:
        app: the ASGI 3 application.
        trusted: the proxies whose headers count.
    """

    def __init__(self, app: ASGIApp, trusted: Trusted) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            values: dict[bytes, list[str]] = {}
            for name, value in scope.get("headers", ()):
                if name in (b"x-forwarded-for", b"x-forwarded-proto"):
                    values.setdefault(bytes(name), []).append(bytes(value).decode("latin-1"))
            client, scheme = forwarded(
                peer[0] if peer else None,
                ",".join(values.get(b"x-forwarded-for", ())) or None,
                ",".join(values.get(b"x-forwarded-proto", ())) or None,
                self.trusted,
            )
            if client is not None or scheme is not None:
                scope = dict(scope)
                if client is not None:
                    scope["client"] = (client, 0)
                if scheme is not None:
                    secure = scheme == "https"
                    websocket = scope["type"] == "websocket"
                    scope["scheme"] = ("wss" if secure else "ws") if websocket else scheme
        await self.app(scope, receive, send)


class ProxyHeadersWSGI:
    """Sets ``REMOTE_ADDR`` and ``wsgi.url_scheme`` from a trusted proxy's headers.

    Args:
        app: the WSGI application.
        trusted: the proxies whose headers count.
    """

    def __init__(self, app: WSGIApp, trusted: Trusted) -> None:
        self.app = app
        self.trusted = trusted

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        client, scheme = forwarded(
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_X_FORWARDED_FOR"),
            environ.get("HTTP_X_FORWARDED_PROTO"),
            self.trusted,
        )
        if client is not None:
            environ["REMOTE_ADDR"] = client
            environ.pop("REMOTE_PORT", None)  # the proxy's port, not the client's
        if scheme is not None:
            environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)
