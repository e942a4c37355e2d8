"""The one place that reaches into aiortc's private API: taking the media path away.

Why: aiortc gives us ICE, DTLS and SRTP per client, which we want, but its receiver puts
every packet through a jitter buffer (~33 ms per hop: a frame is released only when the next
one starts) and a decoder thread, and its sender wants to (re-)encode. A forwarding relay
needs neither. This adapter keeps a normally negotiated ``RTCPeerConnection`` per client and
hooks its ``RTCDtlsTransport`` right after SRTP:

* incoming: ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data`` (called with
  SRTP-decrypted bytes) are replaced on the instance by callbacks into the relay, so aiortc's
  ``RtpRouter``, ``RTCRtpReceiver``, jitter buffer and decoder never see relayed media;
* outgoing: the relay SRTP-protects with the DTLS-negotiated session and ``sendto``s on the
  nominated ICE pair itself (what ``RTCDtlsTransport._send_rtp`` does, minus two awaits);
* optionally (default) incoming SRTP media is taken straight from the ICE socket's
  ``datagram_received`` once DTLS is up, skipping aioice's queue and the DTLS task;
* the receivers' idle decoder threads are stopped as soon as aiortc starts them, and each
  sender gets a :class:`ParkedTrack` so its RTP task waits forever instead of polling at
  50 Hz, and no encoder is ever built;
* aiortc's own sender reports (SR with zero NTP/RTP time and counts, since it never sends)
  are filtered out: the relay sends SRs translated from the source instead.

Everything private is touched in :class:`AiortcLeg` only, guarded by
:func:`check_aiortc_version`. If aiortc changes, this file is what needs porting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

import aiortc
import pylibsrtp
from aiortc import MediaStreamTrack, RTCPeerConnection

from relay import rtcp
from relay.legs import NegotiatedMedia

SUPPORTED_AIORTC: Final = ("1.16.",)
"""aiortc release series whose private internals this adapter was written against."""

_DTLS_ATTRS: Final = (
    "_handle_rtp_data",
    "_handle_rtcp_data",
    "_send_rtp",
    "_rx_srtp",
    "_tx_srtp",
    "transport",
)
_ICE_CONNECTION_ATTRS: Final = ("_nominated", "_protocols")
_RECEIVER_STOP_DECODER: Final = "_RTCRtpReceiver__stop_decoder"
_RECEIVER_DECODER_THREAD: Final = "_RTCRtpReceiver__decoder_thread"


class UnsupportedAiortcError(RuntimeError):
    """The installed aiortc is not one whose private internals this adapter knows."""


def check_aiortc_version(version: str | None = None) -> None:
    """Refuse to run against an aiortc release the hooks were not written for."""
    v = aiortc.__version__ if version is None else version
    if not v.startswith(SUPPORTED_AIORTC):
        raise UnsupportedAiortcError(
            f"relay.aiortc_adapter hooks aiortc internals of {SUPPORTED_AIORTC}, found {v}: "
            "re-check RTCDtlsTransport._handle_rtp_data/_handle_rtcp_data/_send_rtp and "
            "RTCRtpReceiver decoder thread handling, then update SUPPORTED_AIORTC"
        )


class ParkedTrack(MediaStreamTrack):
    """A track that never yields a frame.

    Why: with no track, aiortc's ``RTCRtpSender._run_rtp`` polls every 20 ms; with a track it
    awaits ``recv()``. Parking it there costs nothing and guarantees no encoder is built,
    while the sender still owns the SSRC announced in SDP, which the relay then uses.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        """Wait until cancelled (the sender stops)."""
        await asyncio.Future()


FaultCallback = Callable[["AiortcLeg", Exception], None]
"""``(leg, what a packet callback raised)``: told the first time only (later faults are
counted in ``AiortcLeg.faults``), so that the owner closes the leg once."""

PacketCallback = Callable[["AiortcLeg", bytes, float], None]
"""``(leg, decrypted RTP or RTCP bytes, arrival time on the monotonic clock)``.

Synchronous on purpose: the relay decides and sends without awaiting, so a packet never
waits behind a task switch, and the fast receive path can call it from
``datagram_received``."""


class AiortcLeg:
    """One client's ``RTCPeerConnection`` with the media path handed to the relay: the
    :class:`relay.legs.Leg` a worker's hub forwards between.

    Usage (relay answering a client's offer)::

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[...]))
        await pc.setRemoteDescription(offer)
        AiortcLeg.prepare_transceivers(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        leg = AiortcLeg(pc, on_rtp, on_rtcp)  # before DTLS completes
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        on_rtp: PacketCallback,
        on_rtcp: PacketCallback,
        clock: Callable[[], float] = time.monotonic,
        fast_receive: bool = True,
        on_fault: FaultCallback | None = None,
    ) -> None:
        """Hook ``pc`` (after both descriptions are set, before DTLS completes).

        ``fast_receive``: once DTLS is up, take SRTP packets straight from the ICE socket's
        ``datagram_received`` (see :meth:`_install_fast_receive`); otherwise they come
        through aiortc's queue and DTLS task as usual, only diverted after decryption.
        ``on_fault``: where an exception from ``on_rtp``/``on_rtcp`` goes (the leg's fault
        boundary), instead of up into aiortc's or asyncio's machinery.
        """
        check_aiortc_version()
        self.pc = pc
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._clock = clock
        self._fast_receive = fast_receive
        self._on_fault = on_fault
        self.faults = 0
        self._dtls: Any = None
        self._protect: Callable[[bytes], bytes] | None = None
        self._protect_rtcp: Callable[[bytes], bytes] | None = None
        self._sendto: Callable[[bytes, Any], None] | None = None
        self._remote_addr: Any = None
        self._own_ssrcs: frozenset[int] = frozenset()
        self.srtp_errors = 0
        self.fast_path_active = False
        self.media: dict[str, NegotiatedMedia] = {}
        self.kind_by_pt: dict[int, str] = {}
        self.suppressed_reports = 0
        self.decoders_stopped = 0
        self._attach()

    @staticmethod
    def prepare_transceivers(pc: RTCPeerConnection) -> None:
        """Make every transceiver sendrecv with a parked track (call before createAnswer)."""
        for t in pc.getTransceivers():
            t.direction = "sendrecv"
            if t.sender.track is None:
                t.sender.replaceTrack(ParkedTrack(t.kind))

    def _attach(self) -> None:
        transceivers = self.pc.getTransceivers()
        if not transceivers:
            raise ValueError("attach after setRemoteDescription/setLocalDescription")
        dtls_set = {id(t.receiver.transport): t.receiver.transport for t in transceivers}
        if len(dtls_set) != 1:
            raise ValueError("the relay requires BUNDLE: one DTLS transport per client")
        (dtls,) = dtls_set.values()
        for attr in _DTLS_ATTRS:
            if not hasattr(dtls, attr):
                raise UnsupportedAiortcError(f"RTCDtlsTransport has no {attr}")
        conn = getattr(dtls.transport, "_connection", None)
        for attr in _ICE_CONNECTION_ATTRS:
            if not hasattr(conn, attr):
                raise UnsupportedAiortcError(f"aioice Connection has no {attr}")
        own: set[int] = set()
        for t in transceivers:
            own.add(t.sender._ssrc)
            self.media[t.kind] = NegotiatedMedia(
                kind=t.kind,
                codecs=tuple(t._codecs),
                header_extensions=tuple(t._headerExtensions),
                out_ssrc=t.sender._ssrc,
            )
            for c in t._codecs:
                if c.payloadType is not None:
                    self.kind_by_pt[c.payloadType] = t.kind
            self._wrap_receive(t.receiver)
        self._own_ssrcs = frozenset(own)

        self._dtls = dtls
        self._aiortc_send_rtp: Callable[[bytes], Any] = dtls._send_rtp
        dtls.on("statechange", self._on_dtls_state)
        # Instance attributes shadow the class's methods; aiortc calls them via self.
        setattr(dtls, "_handle_rtp_data", self._handle_rtp_data)  # noqa: B010
        setattr(dtls, "_handle_rtcp_data", self._handle_rtcp_data)  # noqa: B010
        setattr(dtls, "_send_rtp", self._filter_aiortc_send)  # noqa: B010

    def _wrap_receive(self, receiver: Any) -> None:
        """Stop the decoder thread aiortc starts in ``receive()``: it would only sit idle."""
        if not hasattr(receiver, _RECEIVER_STOP_DECODER):
            raise UnsupportedAiortcError("RTCRtpReceiver decoder internals changed")
        original = receiver.receive

        async def receive(parameters: Any) -> None:
            await original(parameters)
            getattr(receiver, _RECEIVER_STOP_DECODER)()
            self.decoders_stopped += 1

        receiver.receive = receive

    @property
    def ice_connection(self) -> Any:
        """This leg's aioice ``Connection`` (for ``relay.ice_tcp``, which hands it TCP
        connections)."""
        return self._dtls.transport._connection

    @staticmethod
    def decoder_running(receiver: Any) -> bool:
        """True if aiortc's decoder thread of this receiver exists (tests and health checks)."""
        return getattr(receiver, _RECEIVER_DECODER_THREAD) is not None

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        try:
            self._on_rtp(self, data, self._clock())
        except Exception as exc:
            self._fault(exc)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        try:
            self._on_rtcp(self, data, self._clock())
        except Exception as exc:
            self._fault(exc)

    def _fault(self, exc: Exception) -> None:
        """A packet callback raised: count it, tell the owner the first time."""
        self.faults += 1
        if self.faults == 1 and self._on_fault is not None:
            self._on_fault(self, exc)
        elif self._on_fault is None:
            raise exc

    async def _filter_aiortc_send(self, data: bytes) -> None:
        """aiortc's own RTCP goes through here; drop its meaningless sender reports."""
        if (
            len(data) >= 8
            and data[1] == rtcp.RTCP_SR
            and int.from_bytes(data[4:8], "big") in self._own_ssrcs
        ):
            self.suppressed_reports += 1
            return
        await self._aiortc_send_rtp(data)

    # -- the packet path once connected -----------------------------------------------

    def _on_dtls_state(self) -> None:
        dtls = self._dtls
        if dtls.state != "connected":
            self._sendto = None
            return
        conn = dtls.transport._connection
        pair = conn._nominated.get(1)
        if pair is None or dtls._tx_srtp is None:
            return
        self._protect = dtls._tx_srtp.protect
        self._protect_rtcp = dtls._tx_srtp.protect_rtcp
        self._remote_addr = pair.remote_addr
        self._sendto = pair.protocol.transport.sendto
        if self._fast_receive:
            self._install_fast_receive(conn._protocols, dtls._rx_srtp)

    def _install_fast_receive(self, protocols: list[Any], rx_srtp: Any) -> None:
        """Take SRTP media straight off the ICE sockets, skipping aiortc's per-packet layers.

        aioice hands every datagram to ``Connection.data_received`` (after a failed STUN
        parse, i.e. a raised exception per packet), which queues it for the DTLS task to
        ``await``; that costs a STUN parse attempt, an asyncio.Queue round trip and a task
        switch per packet. Here RTP (first byte 128-191, second byte not an RTCP type) is
        unprotected with the session DTLS negotiated and handed to the relay synchronously.
        STUN (consent checks), DTLS and SRTCP keep their normal route.
        """
        unprotect = rx_srtp.unprotect
        on_rtp = self._on_rtp
        clock = self._clock
        srtp_error = pylibsrtp.Error

        for proto in protocols:
            original = proto.datagram_received

            def datagram_received(
                data: bytes, addr: Any, original: Callable[[bytes, Any], None] = original
            ) -> None:
                if len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
                    try:
                        plain = unprotect(data)
                    except srtp_error:
                        self.srtp_errors += 1
                        return
                    try:
                        on_rtp(self, plain, clock())
                    except Exception as exc:  # free until raised (zero-cost try, 3.11)
                        self._fault(exc)
                    return
                original(data, addr)

            proto.datagram_received = datagram_received
        self.fast_path_active = True

    def send(self, data: bytes) -> bool:
        """SRTP-protect and send one RTP or RTCP packet to this client, synchronously.

        Same work as ``RTCDtlsTransport._send_rtp`` (protect, ``sendto`` on the nominated
        ICE pair) without its two awaits. False if the leg is not connected (yet/any more).
        """
        sendto = self._sendto
        if sendto is None:
            return False
        assert self._protect is not None and self._protect_rtcp is not None
        if 191 < data[1] < 224:
            sendto(self._protect_rtcp(data), self._remote_addr)
        else:
            sendto(self._protect(data), self._remote_addr)
        return True
