"""One UDP port per worker for every leg's ICE, DTLS and SRTP: legs told apart by ICE username.

Why: with a socket per leg, a firewall must open a port range as large as the legs a machine
carries; LiveKit and mediasoup serve every client of a worker on one UDP port instead, so the
rule is one port per worker. aioice binds a socket per connection and has no such mode.

How, beside aioice as ``relay.ice_tcp`` is: the worker binds one socket per gathered address on
its port. Each leg's aioice ``Connection`` gets one ``StunProtocol`` per socket (its host
candidate there) whose transport sends through the shared socket. A datagram goes to the leg
that owns its source address; an address becomes a leg's when the leg sends to it (its checks,
then its media) or when an authenticated STUN Binding request naming the leg's ICE username
arrives from it (``relay.ice_tcp.authenticated_check``). Anything else from an address no leg
owns is dropped and counted. ``relay.aiortc_adapter``'s fast receive path wraps each
protocol's ``datagram_received``, which the socket looks up per datagram, so it works here too.

Private aioice API touched (guarded by ``relay.ice_tcp.check_aioice_version``): ``StunProtocol``
used with a transport that is not its own socket, and its ``receiver`` (the leg's
``Connection``); ``relay.ice_gathering`` lists the protocols on the connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aioice import turn
from aioice.ice import Connection, StunProtocol

from relay.ice_tcp import authenticated_check, check_aioice_version

log = logging.getLogger("chatguard.relay.ice_udp_mux")

Address = tuple[str, int]


@dataclass
class UdpMuxStats:
    """What the shared sockets have seen, for logs and tests; counts only grow."""

    learned_addresses: int = 0
    """Peer addresses bound to a leg by an authenticated check."""
    dropped: int = 0
    """Datagrams from an address no leg owns that were not an authenticated check."""


class _LegTransport(asyncio.DatagramTransport):
    """A leg's view of one shared socket: what its ``StunProtocol`` sends through."""

    def __init__(self, shared: _SharedSocket, protocol: StunProtocol) -> None:
        super().__init__()
        self._shared = shared
        self._protocol = protocol
        self._closing = False

    def sendto(self, data: Any, addr: Any = None) -> None:
        """Send, claiming ``addr`` for this leg (its answers come back to the leg)."""
        shared = self._shared
        peer = (addr[0], addr[1])
        if shared.owners.get(peer) is not self._protocol:
            shared.owners.setdefault(peer, self._protocol)
        shared.transport.sendto(data, addr)

    def close(self) -> None:
        """The leg is closing: forget it here; the shared socket stays open."""
        if self._closing:
            return
        self._closing = True
        self._shared.release(self._protocol)
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._shared.transport.get_extra_info(name, default)


class _SharedSocket(asyncio.DatagramProtocol):
    """One bound address of the worker's port, and the legs reachable on it."""

    def __init__(self, stats: UdpMuxStats) -> None:
        self.stats = stats
        self.transport: asyncio.DatagramTransport
        self.owners: dict[Address, StunProtocol] = {}
        """Peer address -> the protocol of the leg it talks to."""
        self.legs: dict[str, StunProtocol] = {}
        """Local ICE username fragment -> that leg's protocol on this socket."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer = (addr[0], addr[1])
        protocol = self.owners.get(peer)
        if protocol is None:
            protocol = self._owner_by_check(data)
            if protocol is None:
                self.stats.dropped += 1
                return
            self.owners[peer] = protocol
            self.stats.learned_addresses += 1
        # looked up per datagram: relay.aiortc_adapter replaces it on the instance
        protocol.datagram_received(data, peer)

    def _owner_by_check(self, data: bytes) -> StunProtocol | None:
        def connection_for(ufrag: str) -> Connection | None:
            protocol = self.legs.get(ufrag)
            return None if protocol is None else protocol.receiver

        connection = authenticated_check(data, connection_for)
        if isinstance(connection, str):
            return None
        return self.legs[connection.local_username]

    def release(self, protocol: StunProtocol) -> None:
        """Forget a closing leg: its addresses and its username."""
        for peer in [p for p, owner in self.owners.items() if owner is protocol]:
            del self.owners[peer]
        ufrag = protocol.receiver.local_username
        if self.legs.get(ufrag) is protocol:
            del self.legs[ufrag]


class UdpMux:
    """A worker's shared UDP port on each address it offers.

    Usage::

        mux = UdpMux(7882, ["10.0.0.5"])
        await mux.start()
        protocols = mux.attach(connection)  # per leg, while it gathers; None: fall back
        mux.close()
    """

    def __init__(self, port: int, hosts: Sequence[str]) -> None:
        check_aioice_version()
        self.port = port
        self.hosts = list(hosts)
        self.stats = UdpMuxStats()
        self._sockets: dict[str, _SharedSocket] = {}

    async def start(self) -> None:
        """Bind ``port`` on every host; raises OSError if one cannot be bound."""
        loop = asyncio.get_running_loop()
        try:
            for host in self.hosts:
                _, shared = await loop.create_datagram_endpoint(
                    lambda: _SharedSocket(self.stats), local_addr=(host, self.port)
                )
                self._sockets[host] = shared
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        for shared in self._sockets.values():
            shared.transport.close()
        self._sockets.clear()

    def attach(self, connection: Connection) -> list[tuple[str, StunProtocol]] | None:
        """``(host, protocol)`` for each shared socket (to be listed on ``connection``);
        None when another leg here has the same ICE username (aioice's four-character ufrags
        collide rarely): that leg gets sockets of its own instead."""
        ufrag = connection.local_username
        if any(ufrag in shared.legs for shared in self._sockets.values()):
            log.warning("ICE ufrag %s already in use on this worker's UDP port", ufrag)
            return None
        attached = []
        for host, shared in self._sockets.items():
            protocol = StunProtocol(connection)
            protocol.connection_made(_LegTransport(shared, protocol))
            shared.legs[ufrag] = protocol
            attached.append((host, protocol))
        return attached
