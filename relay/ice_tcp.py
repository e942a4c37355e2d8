"""ICE over TCP for the relay worker: a passive listener whose connections join aioice legs.

Why: users on networks that drop UDP (schools, offices, hotels) can only reach the relay over
TCP. aioice speaks UDP only, and Chromium gathers only *active* TCP candidates, so the relay
must offer a passive candidate (RFC 6544) and accept the browser's connection itself.

How, without patching aioice: one TCP port per worker. Each accepted connection reads RFC 4571
frames; the first must be a STUN Binding request whose USERNAME (``relayufrag:browserufrag``)
names a leg registered here and whose MESSAGE-INTEGRITY checks with that leg's ICE password.
The connection then gets an ordinary aioice ``StunProtocol`` bound to that leg's
``Connection``, whose transport frames each "datagram" onto the stream. From there aioice does
what it does for UDP: answers the check, learns the browser as a peer-reflexive candidate,
sends its triggered check, accepts the nomination, and carries DTLS, SRTP and SRTCP on the
nominated pair. ``relay.aiortc_adapter`` then sends and receives on that pair without knowing
it is a stream.

A stalled reader costs its own leg only: writes never block, and once a connection has
:data:`MAX_SEND_BUFFER_BYTES` unsent, further packets for it are dropped and counted.

Private aioice API touched here (guarded by :func:`check_aioice_version`):
``Connection._protocols`` (where a new protocol must be listed for aioice to send checks,
close it with the leg and let the adapter find it), and ``StunProtocol`` used with a transport
that is not a UDP socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import aioice
from aioice import stun
from aioice.ice import Connection, StunProtocol

from relay.ice_tcp_sdp import PassiveTcpCandidate, add_candidates, passive_candidates
from relay.rfc4571 import FrameDecoder, FramingError, encode_frame

log = logging.getLogger("chatguard.relay.ice_tcp")

SUPPORTED_AIOICE: Final = ("0.13.",)
"""aioice release series whose ``Connection``/``StunProtocol`` internals this was written for."""
MAX_FRAME_BYTES: Final = 4096
"""STUN, DTLS records and SRTP packets stay under the path MTU; a longer frame is garbage."""
MAX_SEND_BUFFER_BYTES: Final = 256 * 1024
"""About one second of a relayed call's media: beyond that the reader has stalled, and newer
packets are worth more than a growing backlog."""
FIRST_MESSAGE_TIMEOUT_S: Final = 10.0
"""A connection that has not sent its first check by then is closed (it holds a socket)."""
MAX_UNATTACHED: Final = 256
"""Connections at most waiting for their first check; more are closed at once, so a flood of
idle connections costs sockets for :data:`FIRST_MESSAGE_TIMEOUT_S` at most, never all of them."""


class UnsupportedAioiceError(RuntimeError):
    """The installed aioice is not one whose private internals this module knows."""


def check_aioice_version(version: str | None = None) -> None:
    """Refuse to run against an aioice release the transport was not written for."""
    v = aioice.__version__ if version is None else version
    if not v.startswith(SUPPORTED_AIOICE):
        raise UnsupportedAioiceError(
            f"relay.ice_tcp uses aioice internals of {SUPPORTED_AIOICE}, found {v}: re-check "
            "Connection._protocols, StunProtocol and request_received, then update "
            "SUPPORTED_AIOICE"
        )


@dataclass
class IceTcpStats:
    """What the listener has seen, for logs and tests; counts only grow."""

    accepted: int = 0
    attached: int = 0
    """Connections handed to a leg after an authenticated first check."""
    not_stun: int = 0
    """First frame was not a STUN Binding request."""
    unknown_username: int = 0
    unauthenticated: int = 0
    oversize: int = 0
    first_message_timeouts: int = 0
    too_many_unattached: int = 0
    dropped_packets: int = 0
    """Packets not sent because their connection's send buffer was full."""


Refusal = Literal[
    "not_stun",
    "unknown_username",
    "unauthenticated",
    "oversize",
    "first_message_timeouts",
    "too_many_unattached",
]
"""The :class:`IceTcpStats` counter a refused connection adds to."""


CheckRefusal = Literal["not_stun", "unknown_username", "unauthenticated"]
REFUSAL_REASONS: Final[dict[CheckRefusal, str]] = {
    "not_stun": "not a STUN Binding request with a USERNAME",
    "unknown_username": "no leg has that ICE username",
    "unauthenticated": "MESSAGE-INTEGRITY does not match",
}


def authenticated_check(
    data: bytes, connection_for: Callable[[str], Connection | None]
) -> Connection | CheckRefusal:
    """The leg a first message from a new peer belongs to, or why it belongs to none: it must
    be a STUN Binding request whose USERNAME (``relayufrag:peerufrag``) names a leg (looked up
    with ``connection_for``) and whose MESSAGE-INTEGRITY checks with that leg's password."""
    try:
        message = stun.parse_message(data)
    except ValueError:
        return "not_stun"
    if (
        message.message_method != stun.Method.BINDING
        or message.message_class != stun.Class.REQUEST
        or "USERNAME" not in message.attributes
    ):
        return "not_stun"
    connection = connection_for(str(message.attributes["USERNAME"]).partition(":")[0])
    if connection is None:
        return "unknown_username"
    if not message.check_message_integrity(connection.local_password.encode("utf8")):
        return "unauthenticated"
    return connection


class FramedStreamTransport(asyncio.DatagramTransport):
    """What an aioice ``StunProtocol`` sends through: each datagram becomes one frame."""

    def __init__(self, stream: asyncio.Transport, stats: IceTcpStats, max_buffer: int) -> None:
        super().__init__()
        self._stream = stream
        self._stats = stats
        self._max_buffer = max_buffer

    def sendto(self, data: Any, addr: Any = None) -> None:
        """Write one frame; drop it (counted) when the peer has stopped reading."""
        stream = self._stream
        if stream.is_closing():
            return
        if stream.get_write_buffer_size() > self._max_buffer:
            self._stats.dropped_packets += 1
            return
        stream.write(encode_frame(data))

    def close(self) -> None:
        """Close after flushing, or at once if the peer left data unread (it may never read
        again, and aioice's ``StunProtocol.close`` waits for the connection to be lost)."""
        if self._stream.get_write_buffer_size():
            self._stream.abort()
        else:
            self._stream.close()

    def abort(self) -> None:
        self._stream.abort()

    def is_closing(self) -> bool:
        return self._stream.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._stream.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._stream.get_write_buffer_size()


def _address(addr: Any) -> tuple[str, int]:
    """IPv6 socket addresses are 4-tuples; aioice compares 2-tuples."""
    return (str(addr[0]), int(addr[1]))


class _IceTcpConnection(asyncio.Protocol):
    """One accepted TCP connection: unbound until its first check names a leg."""

    def __init__(self, listener: IceTcpListener) -> None:
        self._listener = listener
        self._decoder = FrameDecoder(MAX_FRAME_BYTES)
        self._stream: asyncio.Transport | None = None
        self._peer: tuple[str, int] = ("", 0)
        self._local: tuple[str, int] = ("", 0)
        self._stun: StunProtocol | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport does not subclass asyncio.Transport, but is one
        transport = cast(asyncio.Transport, transport)
        self._stream = transport
        self._peer = _address(transport.get_extra_info("peername"))
        self._local = _address(transport.get_extra_info("sockname"))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener = self._listener
        listener.stats.accepted += 1
        if len(listener.unattached) >= listener.max_unattached:
            self._refuse("too_many_unattached", "too many connections without a first check")
            return
        listener.unattached.add(self)
        self._timer = asyncio.get_running_loop().call_later(
            listener.first_message_timeout_s, self._first_message_overdue
        )

    def _first_message_overdue(self) -> None:
        if self._stun is None:
            self._refuse("first_message_timeouts", "no check")

    def _refuse(self, counter: Refusal, why: str) -> None:
        stats = self._listener.stats
        setattr(stats, counter, getattr(stats, counter) + 1)
        log.debug("ICE-TCP connection from %s refused: %s", self._peer, why)
        if self._stream is not None:
            self._stream.abort()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FramingError as exc:
            self._refuse("oversize", str(exc))
            return
        for frame in frames:
            if self._stun is None and not self._attach(frame):
                return
            assert self._stun is not None
            # looked up per frame: relay.aiortc_adapter replaces it on the instance
            self._stun.datagram_received(frame, self._peer)

    def _attach(self, frame: bytes) -> bool:
        """Bind this connection to the leg its first (authenticated) check names."""
        connection = authenticated_check(frame, self._listener.connection_for)
        if isinstance(connection, str):
            self._refuse(connection, REFUSAL_REASONS[connection])
            return False
        assert self._stream is not None
        self._forget_unattached()
        protocol = StunProtocol(connection)
        protocol.local_candidate = PassiveTcpCandidate(self._local[0], self._listener.port)
        protocol.connection_made(
            FramedStreamTransport(
                self._stream, self._listener.stats, self._listener.max_send_buffer
            )
        )
        connection._protocols.append(protocol)
        self._stun = protocol
        self._listener.stats.attached += 1
        return True

    def _forget_unattached(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._listener.unattached.discard(self)

    def abort(self) -> None:
        """Drop the connection now (the listener is closing)."""
        if self._stream is not None:
            self._stream.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget_unattached()
        if self._stun is not None:
            self._stun.connection_lost(exc)


class IceTcpListener:
    """A worker's passive ICE-TCP port and the legs that may be reached through it.

    Usage::

        listener = IceTcpListener(7880)
        await listener.start()
        answer_sdp = listener.offer(ice_connection, answer_sdp)  # per leg, before sending
        ...
        listener.forget(ice_connection)                          # when the leg closes
        await listener.close()
    """

    def __init__(
        self,
        port: int,
        host: str | None = None,
        max_send_buffer: int = MAX_SEND_BUFFER_BYTES,
        first_message_timeout_s: float = FIRST_MESSAGE_TIMEOUT_S,
        max_unattached: int = MAX_UNATTACHED,
    ) -> None:
        """``host`` None: every address, as aioice gathers UDP candidates on every one."""
        check_aioice_version()
        self.port = port
        self.host = host
        self.max_send_buffer = max_send_buffer
        self.first_message_timeout_s = first_message_timeout_s
        self.max_unattached = max_unattached
        self.unattached: set[_IceTcpConnection] = set()
        """Accepted connections still waiting for their first check."""
        self.stats = IceTcpStats()
        self._legs: dict[str, Connection] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; ``port`` 0 picks a free one (read ``port`` afterwards)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _IceTcpConnection(self), host=self.host, port=self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting and drop connections not yet attached; legs close their own
        (aioice closes its protocols)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for pending in list(self.unattached):
            pending.abort()

    def offer(self, connection: Connection, sdp: str) -> str:
        """Make ``connection`` (a leg's aioice ICE connection, candidates gathered) reachable
        here, and return ``sdp`` (its answer) with the passive candidates added."""
        if not hasattr(connection, "_protocols"):
            raise UnsupportedAioiceError("aioice Connection has no _protocols")
        ufrag = connection.local_username
        if self._legs.get(ufrag, connection) is not connection:
            # aioice's 4-character ufrags collide rarely; that leg stays on UDP
            log.warning("ICE ufrag %s already in use on this worker: no TCP for this leg", ufrag)
            return sdp
        self._legs[ufrag] = connection
        return add_candidates(sdp, passive_candidates(connection.local_candidates, self.port))

    def forget(self, connection: Connection) -> None:
        """The leg closed: a later connection naming its ufrag is refused."""
        if self._legs.get(connection.local_username) is connection:
            del self._legs[connection.local_username]

    def connection_for(self, local_ufrag: str) -> Connection | None:
        """The registered leg whose ICE username fragment is ``local_ufrag``."""
        return self._legs.get(local_ufrag)
