"""The one place that reaches into aiortc's private API: taking the media path away.

Why: aiortc gives us ICE, DTLS and SRTP per client, which we want, but its receiver puts
every packet through a jitter buffer (~33 ms per hop: a frame is released only when the next
one starts) and a decoder thread, and its sender wants to (re-)encode. A forwarding relay
needs neither. This adapter keeps a normally negotiated ``RTCPeerConnection`` per client and
hooks its ``RTCDtlsTransport`` right after SRTP:

* incoming: ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data`` (called with
  SRTP-decrypted bytes) are replaced on the instance by callbacks into the relay, so aiortc's
  ``RtpRouter``, ``RTCRtpReceiver``, jitter buffer and decoder never see relayed media;
* outgoing: the relay calls the original ``RTCDtlsTransport._send_rtp`` (SRTP protect + ICE
  send) with bytes it rewrote itself;
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiortc
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

from relay import rtcp

SUPPORTED_AIORTC: Final = ("1.16.",)
"""aiortc release series whose private internals this adapter was written against."""

_DTLS_ATTRS: Final = ("_handle_rtp_data", "_handle_rtcp_data", "_send_rtp", "_rtp_router")
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


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What one leg negotiated for one media kind, as the forwarding tables need it."""

    kind: str
    codecs: tuple[RTCRtpCodecParameters, ...]
    header_extensions: tuple[RTCRtpHeaderExtensionParameters, ...]
    out_ssrc: int
    """SSRC of the relay's sender on this leg (announced in the relay's SDP)."""


RtpCallback = Callable[["AiortcLeg", bytes, float], Awaitable[None]]
"""``(leg, decrypted RTP or RTCP bytes, arrival time on the monotonic clock)``."""


class AiortcLeg:
    """One client's ``RTCPeerConnection`` with the media path handed to the relay.

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
        on_rtp: RtpCallback,
        on_rtcp: RtpCallback,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_aiortc_version()
        self.pc = pc
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._clock = clock
        self._send: Callable[[bytes], Awaitable[None]] | None = None
        self._own_ssrcs: frozenset[int] = frozenset()
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

        original_send = dtls._send_rtp
        self._send = original_send
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

    @staticmethod
    def decoder_running(receiver: Any) -> bool:
        """True if aiortc's decoder thread of this receiver exists (tests and health checks)."""
        return getattr(receiver, _RECEIVER_DECODER_THREAD) is not None

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        await self._on_rtp(self, data, self._clock())

    async def _handle_rtcp_data(self, data: bytes) -> None:
        await self._on_rtcp(self, data, self._clock())

    async def _filter_aiortc_send(self, data: bytes) -> None:
        """aiortc's own RTCP goes through here; drop its meaningless sender reports."""
        if (
            len(data) >= 8
            and data[1] == rtcp.RTCP_SR
            and int.from_bytes(data[4:8], "big") in self._own_ssrcs
        ):
            self.suppressed_reports += 1
            return
        await self.send(data)

    async def send(self, data: bytes) -> None:
        """SRTP-protect and send one RTP or RTCP packet to this client.

        Raises ``ConnectionError`` when the leg is not (or no longer) connected.
        """
        assert self._send is not None
        await self._send(data)
