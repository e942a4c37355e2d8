"""The browser's side of ICE over TCP for simulated users: an active TCP connection (RFC 6544)
to a relay worker's passive candidate, carrying STUN, DTLS and SRTP in RFC 4571 frames.

Why: a user whose network drops UDP reaches the relay only through the worker's ICE-TCP
listener (``relay.ice_tcp``). aioice, under aiortc, has no TCP client, so to measure TCP legs
the load generator plays the browser's part itself, beside an otherwise ordinary aiortc
connection:

* the offer goes out without the user's UDP candidates and without end-of-candidates (a
  browser trickles; the relay's ICE agent then waits for checks instead of failing at once);
* on the answer, one TCP connection is opened to each passive candidate, and an aioice
  ``StunProtocol`` whose transport frames each datagram onto that stream is listed in the
  user's ICE connection, with an active TCP candidate that pairs with that passive candidate
  only; the answer's UDP candidates are dropped before aiortc sees it, so the TCP pair is the
  only one checked, nominated, and used for DTLS and SRTP.

The framing and the send path are the product's own (``relay.rfc4571``, and
``relay.ice_tcp.FramedStreamTransport`` with its bounded send buffer).

Private aiortc/aioice API touched here (guarded by ``relay.ice_tcp.check_aioice_version`` and
``relay.aiortc_adapter.check_aiortc_version``):
``RTCIceTransport._connection`` (the user's aioice ``Connection``), its ``_protocols`` and
``_nominated``, and ``StunProtocol`` over a transport that is not a UDP socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Final, cast

from aioice.candidate import Candidate, candidate_foundation
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from relay.aiortc_adapter import check_aiortc_version
from relay.ice_tcp import FramedStreamTransport, IceTcpStats, check_aioice_version
from relay.ice_tcp_sdp import TCP_HOST_TYPE_PREFERENCE
from relay.rfc4571 import FrameDecoder

ACTIVE_DIRECTION_PREFERENCE: Final = 6
"""RFC 6544 section 4.2: 6 active, 4 passive, 2 simultaneous-open."""
MAX_SEND_BUFFER_BYTES: Final = 1 << 20
"""The user's side never stalls on purpose; this only bounds a relay that stopped reading."""
CONNECT_TIMEOUT_S: Final = 10.0


def active_tcp_priority(component: int = 1) -> int:
    """RFC 6544 section 4.2 priority of an active TCP host candidate."""
    local_pref = (1 << 13) * ACTIVE_DIRECTION_PREFERENCE + 8191
    return (1 << 24) * TCP_HOST_TYPE_PREFERENCE + (1 << 8) * local_pref + (256 - component)


class ActiveTcpCandidate(Candidate):
    """The local end of one active TCP connection: pairs with the passive candidate it is
    connected to and nothing else (another candidate's checks would go down the wrong stream)."""

    def __init__(self, host: str, port: int, remote: tuple[str, int]) -> None:
        super().__init__(
            foundation=candidate_foundation("host", "tcp", host),
            component=1,
            transport="tcp",
            priority=active_tcp_priority(),
            host=host,
            port=port,
            type="host",
            tcptype="active",
        )
        self.remote = remote

    def can_pair_with(self, other: Candidate) -> bool:
        return other.transport.lower() == "tcp" and (other.host, other.port) == self.remote


def passive_tcp_addresses(sdp: str) -> list[tuple[str, int]]:
    """The ``tcptype passive`` candidates' addresses in ``sdp``, once each (BUNDLE repeats them
    in every media section)."""
    found: dict[tuple[str, int], None] = {}
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            c = candidate_from_sdp(line.removeprefix("a=candidate:"))
            if c.protocol.lower() == "tcp" and c.tcpType == "passive":
                found[c.ip, c.port] = None
    return list(found)


def _udp_candidate(line: str) -> bool:
    return line.startswith("a=candidate:") and line.split()[2].lower() == "udp"


def offer_without_udp(sdp: str) -> str:
    """``sdp`` (the user's offer) without its UDP candidates and end-of-candidates."""
    lines = sdp.split("\r\n")
    return "\r\n".join(x for x in lines if not _udp_candidate(x) and x != "a=end-of-candidates")


def answer_without_udp(sdp: str) -> str:
    """``sdp`` (the relay's answer) with only its TCP candidates."""
    return "\r\n".join(x for x in sdp.split("\r\n") if not _udp_candidate(x))


def ice_connection(pc: RTCPeerConnection) -> Connection:
    """The aioice connection under ``pc`` (BUNDLE: one for every transceiver)."""
    connection: Connection = pc.getTransceivers()[0].receiver.transport.transport._connection
    return connection


def nominated_transport(pc: RTCPeerConnection) -> str | None:
    """ "udp" or "tcp": the protocol of ``pc``'s nominated ICE pair; None before nomination."""
    pair = ice_connection(pc)._nominated.get(1)
    return None if pair is None else str(pair.local_candidate.transport).lower()


class _ActiveTcpStream(asyncio.Protocol):
    """One active TCP connection: frames in, to ``stun``; ``stun`` sends frames out."""

    def __init__(self, connection: Connection, stats: IceTcpStats) -> None:
        self.stun = StunProtocol(connection)
        self._stats = stats
        self._decoder = FrameDecoder()
        self._peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's is one without subclassing it
        local = stream.get_extra_info("sockname")
        peer = stream.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1]))
        sock = stream.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stun.local_candidate = ActiveTcpCandidate(str(local[0]), int(local[1]), self._peer)
        self.stun.connection_made(FramedStreamTransport(stream, self._stats, MAX_SEND_BUFFER_BYTES))

    def data_received(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            # looked up per frame: relay.aiortc_adapter's fast path replaces it on the instance
            self.stun.datagram_received(frame, self._peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stun.connection_lost(exc)


class ActiveIceTcp:
    """One user's ICE-TCP: rewrites its offer, connects on the answer, notes what failed.

    Usage, around an aiortc offerer::

        tcp = ActiveIceTcp()
        await pc.setLocalDescription(await pc.createOffer())
        send_offer(tcp.offer(pc.localDescription.sdp))
        answer = await tcp.answer(pc, received_answer)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    """

    def __init__(self, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        check_aioice_version()
        check_aiortc_version()
        self.connect_timeout_s = connect_timeout_s
        self._stats = IceTcpStats()
        """What ``FramedStreamTransport`` counts its drops in (a user's side never stalls)."""
        self.connect_errors: list[str] = []

    def offer(self, sdp: str) -> str:
        return offer_without_udp(sdp)

    async def answer(self, pc: RTCPeerConnection, sdp: str) -> str:
        """Connect to the answer's passive candidates and list each connection in ``pc``'s ICE
        agent (before ``setRemoteDescription``, which pairs them); the answer to set, UDP-free.

        A candidate that cannot be reached is noted in :attr:`connect_errors`; with none
        reached, ICE finds no pair and fails, as it would for a browser.
        """
        connection = ice_connection(pc)
        attempts = [self._connect(connection, addr) for addr in passive_tcp_addresses(sdp)]
        for stream in await asyncio.gather(*attempts):
            if stream is not None:
                connection._protocols.append(stream.stun)
        return answer_without_udp(sdp)

    async def _connect(
        self, connection: Connection, addr: tuple[str, int]
    ) -> _ActiveTcpStream | None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, stream = await loop.create_connection(
                    lambda: _ActiveTcpStream(connection, self._stats), *addr
                )
        except (OSError, TimeoutError) as exc:
            self.connect_errors.append(f"ICE-TCP to {addr[0]}:{addr[1]}: {exc or 'timeout'}")
            return None
        return stream
