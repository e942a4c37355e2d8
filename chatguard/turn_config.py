"""The coturn configuration that matches chatguard's own (``chatguard turn-config``).

Why: signaling mints TURN credentials with ``[ice.turn] secret`` (``signaling.ice``) and coturn
checks them with its ``static-auth-secret``; two files holding one secret drift apart, and a
TURN server left open to private addresses lets any user reach the operator's internal network
through it. Printing coturn's file from chatguard's keeps the secret, the realm and the ports
in one place, and denies every private, loopback and link-local peer except the relay workers,
which TURN must reach. Pure: the command prints what :func:`coturn_config` returns.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from signaling.config import Config, ConfigError

DEFAULT_PORTS: Final = {"turn": 3478, "turns": 5349}
"""RFC 5766/7065 default ports when a URL names none."""

DENIED_PEER_RANGES: Final = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255",
    "192.0.2.0-192.0.2.255",
    "192.88.99.0-192.88.99.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "198.51.100.0-198.51.100.255",
    "203.0.113.0-203.0.113.255",
    "240.0.0.0-255.255.255.255",
    "::1",
    "64:ff9b::-64:ff9b::ffff:ffff",
    "::ffff:0.0.0.0-::ffff:255.255.255.255",
    "100::-100::ffff:ffff:ffff:ffff",
    "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)
"""Special-purpose ranges (RFC 6890): private, loopback, link-local, documentation, NAT64,
IPv4-mapped. coturn's own example file denies the same; ``allowed-peer-ip`` overrides them."""


def listening_ports(urls: list[str]) -> dict[str, int]:
    """``{"turn": port, "turns": port}`` for the schemes ``urls`` use; coturn listens on one
    port per scheme (UDP and TCP on ``listening-port``, TLS on ``tls-listening-port``)."""
    ports: dict[str, int] = {}
    for url in urls:
        scheme, _, rest = url.partition(":")
        if scheme not in DEFAULT_PORTS:
            raise ConfigError(f"ice.turn.urls: {url!r} is not a turn: or turns: URL")
        try:
            port = urlsplit("//" + rest.partition("?")[0]).port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise ConfigError(f"ice.turn.urls: {url!r} has no valid port") from None
        if ports.setdefault(scheme, port) != port:
            raise ConfigError(
                f"ice.turn.urls: coturn listens on one {scheme}: port, found {ports[scheme]} "
                f"and {port}"
            )
    return ports


def coturn_config(config: Config, source: str = "built-in defaults") -> str:
    """coturn's ``turnserver.conf`` for ``config`` (``source`` names it in the header)."""
    turn = config.ice.turn
    if not turn.urls or not turn.secret:
        raise ConfigError("turn-config needs [ice.turn] urls and secret")
    ports = listening_ports(turn.urls)
    if "turns" in ports and not turn.tls_cert_file:
        raise ConfigError("turns: URLs need ice.turn.tls_cert_file and tls_key_file")
    lines = [
        f"# coturn configuration matching chatguard's [ice.turn] in {source}",
        "# (printed by `chatguard turn-config`). It holds the shared secret: keep it private.",
        "use-auth-secret",
        f"static-auth-secret={turn.secret}",
        f"realm={turn.realm}",
        "fingerprint",
    ]
    if "turn" in ports:
        lines.append(f"listening-port={ports['turn']}")
    else:
        lines += ["no-udp", "no-tcp"]
    if "turns" in ports:
        lines += [
            f"tls-listening-port={ports['turns']}",
            f"cert={turn.tls_cert_file}",
            f"pkey={turn.tls_key_file}",
            "no-tlsv1",
            "no-tlsv1_1",
        ]
    else:
        lines += ["no-tls", "no-dtls"]
    lines += [
        "no-multicast-peers",
        "no-cli",
        "# relay only to public addresses, and to chatguard's relay workers:",
        *(f"denied-peer-ip={r}" for r in DENIED_PEER_RANGES),
    ]
    allowed = dict.fromkeys([*turn.allowed_peer_ips, *config.relay.announced_addresses])
    lines += [f"allowed-peer-ip={address}" for address in allowed]
    lines += [
        "# for this machine: listening-ip=..., relay-ip=..., and behind 1:1 NAT",
        "# external-ip=PUBLIC/PRIVATE",
    ]
    return "\n".join(lines) + "\n"
