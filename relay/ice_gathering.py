"""Host candidates as the operator configured them: which addresses, which ports, which names.

Why: aioice gathers a UDP socket on a random port on every interface address it finds (docker
bridges included, 127.0.0.1 never) and offers each as it is. A relay on a cloud machine sits
behind 1:1 NAT (clients must be told the public address, as mediasoup's ``announcedAddress``
does), behind a firewall that must name its UDP ports, and beside interfaces no client should
be sent to. aioice has no option for any of it (``use_ipv4``/``use_ipv6`` only), so for a leg
whose worker is configured so, this module takes over host gathering:

* addresses come from the interfaces (``ifaddr``, aioice's own source) that
  :attr:`GatheringPolicy.gather_from` names, by interface name, address or network;
* each socket is bound to the first free port of :attr:`GatheringPolicy.udp_ports` (tried
  from a random offset, so legs spread over the range), or to a random port without one;
* each socket's candidate carries the announced address of its family instead of the
  interface address (or beside it, with ``keep_interface_addresses``); further announced
  addresses become extra candidates on the same socket, which answers checks for all of them.

Private aiortc/aioice API touched (guarded by the version checks of ``relay.aiortc_adapter``
and ``relay.ice_tcp``), all in :func:`restrict_gathering`:

* ``RTCIceGatherer._connection``: the leg's aioice ``Connection``;
* ``Connection.get_component_candidates(component, addresses, timeout)``: replaced on the
  instance; aioice's ``gather_candidates`` calls it and appends what it returns to the
  connection's local candidates;
* ``Connection._protocols``: where the host sockets' ``StunProtocol`` s must be listed for aioice
  to pair, check and close them;
* ``aioice.ice.server_reflexive_candidate``: the STUN query aioice would have made.

With ``shared_udp_port`` the sockets are not the leg's own: ``relay.ice_udp_mux`` lends each leg
a protocol on the worker's shared socket per address instead.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import ifaddr
from aioice import turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol, server_reflexive_candidate
from aiortc import RTCPeerConnection

from relay.aiortc_adapter import check_aiortc_version
from relay.ice_tcp import UnsupportedAioiceError, check_aioice_version
from relay.ice_udp_mux import UdpMux

log = logging.getLogger("chatguard.relay.gathering")


@dataclass(frozen=True)
class GatheringPolicy:
    """How a worker gathers its host candidates; the default is aioice's own behaviour."""

    gather_from: tuple[str, ...] = ()
    """Interface names (``eth0``), addresses or networks (``10.0.0.0/8``) to gather on; empty:
    every address but loopback and IPv6 link-local (aioice's choice)."""
    announced: tuple[str, ...] = ()
    """Addresses clients are told instead of the interface address of the same family (a
    public IP in front of a 1:1 NAT)."""
    keep_interface_addresses: bool = False
    """Offer the interface address beside the announced ones (clients on the same private
    network then reach the worker without going through the NAT)."""
    udp_ports: tuple[int, int] | None = None
    """First and last UDP port the ICE sockets may use; None: any."""
    shared_udp_port: int = 0
    """One UDP port for every leg of the worker (``relay.ice_udp_mux``), instead of a socket
    per leg; 0: a socket per leg."""

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_GATHERING

    def describe(self) -> str:
        """One line for the worker's start-up log."""
        announced = ", ".join(self.announced) or "the interface addresses"
        if self.announced and self.keep_interface_addresses:
            announced += " and the interface addresses"
        ports = f"{self.udp_ports[0]}-{self.udp_ports[1]}" if self.udp_ports else "any"
        if self.shared_udp_port:
            ports = f"{self.shared_udp_port} (shared by every leg)"
        where = ", ".join(self.gather_from) or "every address"
        return f"gathered on {where}, offered as {announced}, UDP ports {ports}"


DEFAULT_GATHERING: Final = GatheringPolicy()
"""aioice's own gathering: every address, random ports."""


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None  # an interface name


def select_addresses(
    interfaces: Iterable[tuple[str, str]], gather_from: Iterable[str]
) -> list[str]:
    """The addresses to gather on, from ``(interface name, address)`` pairs.

    IPv6 link-local addresses are never chosen (a candidate cannot carry the scope they need).
    With nothing named, loopback is left out as aioice does; named, it is allowed (a test host
    whose only interface is ``lo``).
    """
    entries = list(gather_from)
    names = {e for e in entries if _network(e) is None}
    networks = [n for e in entries if (n := _network(e)) is not None]
    chosen: list[str] = []
    for name, text in interfaces:
        address = ipaddress.ip_address(text)
        if address.is_link_local and address.version == 6:
            continue
        if entries:
            if name not in names and not any(address in n for n in networks):
                continue
        elif address.is_loopback:
            continue
        if text not in chosen:
            chosen.append(text)
    return chosen


def interface_addresses() -> list[tuple[str, str]]:
    """``(interface name, address)`` for every address of this machine (as aioice reads them)."""
    pairs: list[tuple[str, str]] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            pairs.append((str(adapter.nice_name), address))
    return pairs


def candidate_hosts(interface_address: str, policy: GatheringPolicy) -> list[str]:
    """The addresses a socket bound to ``interface_address`` is offered under, first the one
    aioice pairs it as: the announced ones of its family, then (if kept, or if none is of its
    family) the interface address itself."""
    version = ipaddress.ip_address(interface_address).version
    same_family = [a for a in policy.announced if ipaddress.ip_address(a).version == version]
    if not same_family or policy.keep_interface_addresses:
        same_family.append(interface_address)
    return list(dict.fromkeys(same_family))


def ports_to_try(udp_ports: tuple[int, int] | None, rng: random.Random) -> Iterator[int]:
    """Every port of the range once, from a random offset; ``0`` (any) without a range."""
    if udp_ports is None:
        yield 0
        return
    first, last = udp_ports
    size = last - first + 1
    start = rng.randrange(size)
    for i in range(size):
        yield first + (start + i) % size


async def _bind(
    connection: Connection, address: str, policy: GatheringPolicy, rng: random.Random
) -> StunProtocol | None:
    """A UDP socket on ``address`` at a port the policy allows; None if every one is taken."""
    loop = asyncio.get_running_loop()
    for port in ports_to_try(policy.udp_ports, rng):
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), local_addr=(address, port)
            )
        except OSError as exc:
            # uvloop raises its own OSError without errno, the system's error as its cause
            cause = exc.__cause__ if exc.errno is None else exc
            if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE and port:
                continue
            log.warning("cannot gather on %s: %s", address, exc)
            return None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE)
        return protocol
    log.warning("no free UDP port in %s on %s: no candidate there", policy.udp_ports, address)
    return None


def _host_candidate(host: str, port: int, component: int) -> Candidate:
    return Candidate(
        foundation=candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=candidate_priority(component, "host"),
        host=host,
        port=port,
        type="host",
    )


async def _gather(
    connection: Connection,
    policy: GatheringPolicy,
    rng: random.Random,
    mux: UdpMux | None,
    component: int,
    addresses: list[str],
    timeout: int = 5,
) -> list[Candidate]:
    """Stands in for ``Connection.get_component_candidates``; ``addresses`` (aioice's own
    choice) is replaced by the policy's. Server-reflexive candidates are queried as aioice
    would, unless addresses are announced (the operator has said what is public); relayed ones
    are not, as workers are never given a TURN server."""
    bound = mux.attach(connection) if mux is not None else None
    if bound is None:
        bound = [
            (address, protocol)
            for address in select_addresses(interface_addresses(), policy.gather_from)
            if (protocol := await _bind(connection, address, policy, rng)) is not None
        ]
    candidates: list[Candidate] = []
    protocols: list[StunProtocol] = []
    for address, protocol in bound:
        port = int(protocol.transport.get_extra_info("sockname")[1])
        hosts = candidate_hosts(address, policy)
        offered = [_host_candidate(host, port, component) for host in hosts]
        protocol.local_candidate = offered[0]
        protocols.append(protocol)
        candidates += offered
    connection._protocols += protocols
    if connection.stun_server and not policy.announced:
        queries = [
            asyncio.create_task(server_reflexive_candidate(p, connection.stun_server))
            for p in protocols
            if ipaddress.ip_address(p.local_candidate.host).version == 4
        ]
        if queries:
            done, pending = await asyncio.wait(queries, timeout=timeout)
            candidates += [t.result()[0] for t in done if t.exception() is None]
            for task in pending:
                task.cancel()
    return candidates


def _ice_connections(pc: RTCPeerConnection) -> list[Any]:
    """The aioice connections of ``pc``'s ICE transports (one with BUNDLE)."""
    dtls = [t.receiver.transport for t in pc.getTransceivers() if t.receiver.transport]
    if pc.sctp is not None:
        dtls.append(pc.sctp.transport)
    gatherers = {id(d.transport.iceGatherer): d.transport.iceGatherer for d in dtls}
    return [g._connection for g in gatherers.values()]


def restrict_gathering(
    pc: RTCPeerConnection,
    policy: GatheringPolicy,
    mux: UdpMux | None = None,
    rng: random.Random | None = None,
) -> None:
    """Make ``pc`` gather host candidates by ``policy`` (call after ``setRemoteDescription``,
    before ``setLocalDescription``, which gathers), on the worker's shared port ``mux`` when
    given (built from ``policy.shared_udp_port``). The default policy leaves aioice alone."""
    if policy.is_default and mux is None:
        return
    check_aiortc_version()
    connections = _ice_connections(pc)
    if not connections:
        raise ValueError("restrict gathering after setRemoteDescription")
    for connection in connections:
        gather_by_policy(connection, policy, mux, rng)


def gather_by_policy(
    connection: Connection,
    policy: GatheringPolicy,
    mux: UdpMux | None = None,
    rng: random.Random | None = None,
) -> None:
    """Make an aioice ``connection`` gather its host candidates by ``policy`` (and ``mux``)."""
    check_aioice_version()
    if not hasattr(connection, "get_component_candidates") or not hasattr(connection, "_protocols"):
        raise UnsupportedAioiceError("aioice Connection has no get_component_candidates")
    hook = partial(_gather, connection, policy, rng or random.Random(), mux)
    setattr(connection, "get_component_candidates", hook)  # noqa: B010
