"""Which pages may open a client WebSocket (``/ws``): the Origin check.

Why: browsers let any site's script open a WebSocket to any server, sending along the
visitor's cookies and address; only the Origin header, which a page cannot forge, says whose
script it is. Without this check another site could run calls (and collect strikes and bans)
in its visitors' names. A request without Origin is allowed: browsers always send one on a
WebSocket, so its absence means a program (a bot, the load tool), which could write any
Origin it liked anyway.

Allowed: the page's own site (the Origin's host and port equal the request's Host), the
origins in ``[server] allowed_origins``, or everything with "*". The scheme is not compared
with the Host: behind a TLS-terminating proxy the request arrives as plain HTTP for an
``https://`` page.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _authority(host: str, port: int | None, scheme: str) -> str:
    """host[:port], lower-case, without the scheme's default port."""
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host.lower()
    return f"{host.lower()}:{port}"


def origin_authority(origin: str) -> tuple[str, str] | None:
    """(scheme, authority) of an Origin header; None for "null" and anything malformed."""
    parts = urlsplit(origin.strip())
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts.scheme, _authority(host, port, parts.scheme)


def host_authority(host: str, scheme: str) -> str:
    """A Host header as an authority comparable with an origin of `scheme`."""
    host = host.strip().lower()
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and not name.endswith(":"):  # "[::1]:80", "h:80"; not "::1"
        return _authority(name, int(port), scheme)
    return host


class OriginPolicy:
    """Decides from the Origin and Host headers alone; sans-I/O."""

    def __init__(self, allowed_origins: Sequence[str]) -> None:
        self.any = "*" in allowed_origins
        self._allowed = {
            parsed for origin in allowed_origins if (parsed := origin_authority(origin))
        }

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None or self.any:
            return True
        parsed = origin_authority(origin)
        if parsed is None:
            return False
        if parsed in self._allowed:
            return True
        scheme, authority = parsed
        return host is not None and host_authority(host, scheme) == authority
