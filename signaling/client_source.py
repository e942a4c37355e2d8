"""Where a request comes from: the client's address and region, believed only from proxies
the operator named (``[server] trusted_proxies``).

Why: bans, strikes and per-address limits key on the address, and the region picks the route
(the strict one exists for people who would rather avoid it). Both arrive in headers that
anyone can write, so a header is read only when the peer that delivered it is a trusted proxy;
anyone else gets their socket's address and the default region. Of the forwarding chain, the
client is the rightmost hop that is not itself a trusted proxy: every hop to its right was
written by a proxy we trust, everything to its left by parties we cannot check.

Only one forwarding header is read, the one the proxies write (``[server] forwarded_header``):
a proxy that appends to X-Forwarded-For passes a client's own ``Forwarded`` on untouched, so
reading whichever is present would let the client choose.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.datastructures import Headers
    from starlette.requests import HTTPConnection

    from signaling.config import Config
    from signaling.route_policy import RoutePolicy

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientSource:
    """Who a request is from, as far as this server may believe."""

    address: str
    """The client's IP address ("" if the server was not told the peer's)."""
    region: str
    """The region from the trusted header, or the default region."""


def parse_ip(text: str) -> str | None:
    """An address as proxies write it ("192.0.2.1", "192.0.2.1:4711", "[2001:db8::1]:80",
    "2001:db8::1"), normalised (IPv4-mapped IPv6 as IPv4); None for anything else
    ("unknown", an obfuscated ``_hidden`` node name)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def forwarded_for(values: Sequence[str]) -> list[str]:
    """The ``for=`` hops of RFC 7239 ``Forwarded`` header lines, leftmost first."""
    hops: list[str] = []
    for element in ",".join(values).split(","):
        for pair in element.split(";"):
            key, _, value = pair.partition("=")
            if key.strip().lower() == "for":
                hops.append(value.strip())
    return hops


def x_forwarded_for(values: Sequence[str]) -> list[str]:
    """The hops of ``X-Forwarded-For`` header lines, leftmost first."""
    return [hop.strip() for hop in ",".join(values).split(",") if hop.strip()]


_HOP_READERS = {"x-forwarded-for": x_forwarded_for, "forwarded": forwarded_for}


class Networks:
    """IP addresses and networks an operator listed (trusted proxies, relay workers' hosts)."""

    def __init__(self, networks: Sequence[str]) -> None:
        self._networks: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def __contains__(self, address: str) -> bool:
        ip = parse_ip(address)
        if ip is None:
            return False
        parsed = ipaddress.ip_address(ip)
        return any(parsed in network for network in self._networks)


class TrustedProxies:
    """The proxies whose forwarding headers are believed; sans-I/O."""

    def __init__(self, networks: Sequence[str], header: str = "x-forwarded-for") -> None:
        self._networks = Networks(networks)
        self.header = header
        self._read_hops = _HOP_READERS[header]

    def trusts(self, address: str) -> bool:
        return address in self._networks

    def client_address(self, peer: str, header_values: Sequence[str]) -> str:
        """The client's address: `peer` itself unless it is a trusted proxy; then the
        rightmost hop of the forwarding header that is not a trusted proxy. A hop that is not
        an address stops the walk at the proxy that wrote it (its address is what we know)."""
        client = parse_ip(peer) or peer
        if not self.trusts(peer):
            return client
        for hop in reversed(self._read_hops(header_values)):
            ip = parse_ip(hop)
            if ip is None:
                return client
            client = ip
            if not self.trusts(ip):
                return ip
        return client  # every hop a proxy of ours: the leftmost is as far as anyone knows


class ClientLocator:
    """The one place that says where a request is from (see the module's docstring)."""

    def __init__(self, proxies: TrustedProxies, policy: RoutePolicy, default_region: str) -> None:
        self.proxies = proxies
        self._policy = policy
        self._default_region = default_region

    @classmethod
    def from_config(cls, config: Config, policy: RoutePolicy) -> ClientLocator:
        server = config.server
        proxies = TrustedProxies(server.trusted_proxies, server.forwarded_header)
        return cls(proxies, policy, config.regions.default_region)

    def locate(self, peer: str, headers: Headers) -> ClientSource:
        """The client's address and region for a request from `peer` with `headers`."""
        address = self.proxies.client_address(peer, headers.getlist(self.proxies.header))
        if self.proxies.trusts(peer):
            return ClientSource(address, self._policy.region_from_headers(headers))
        return ClientSource(address, self._default_region)

    def of(self, conn: HTTPConnection) -> ClientSource:
        """The client's address and region for this request (HTTP or WebSocket)."""
        return self.locate(conn.client.host if conn.client else "", conn.headers)


def trust_warnings(config: Config) -> list[str]:
    """Settings that believe anyone, for the log at start."""
    warnings: list[str] = []
    regions = config.regions
    if regions.trusted_header and regions.routes and not config.server.trusted_proxies:
        warnings.append(
            f"[regions] trusted_header = {regions.trusted_header!r} is ignored: "
            "[server] trusted_proxies is empty, so no request's region header is believed and "
            f"every client gets the default region ({regions.default_region!r}, route "
            f"{config.regions.default_route.value}); list the proxy that sets the header"
        )
    if "*" in config.server.allowed_origins:
        warnings.append(
            '[server] allowed_origins = ["*"]: any web site may open /ws and run calls in its '
            "visitors' names"
        )
    return warnings
