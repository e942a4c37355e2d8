"""Stand-in legs for driving ``ForwardingHub`` without a network, and the RTP they send."""

from __future__ import annotations

from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from relay import rtp
from relay.legs import NegotiatedMedia
from relay.negotiation import ABS_SEND_TIME
from tests.support.codec_params import VP8

RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
KEY = b"\x10\x00\x9d\x01\x2a"
"""A VP8 payload starting a keyframe (descriptor S bit, frame tag P bit clear)."""
DELTA = b"\x10\x01"
ABS_SEND_TIME_ID = 3
ABS_SEND_TIME_EXTENSION = RTCRtpHeaderExtensionParameters(id=ABS_SEND_TIME_ID, uri=ABS_SEND_TIME)


class FakeLeg:
    """A :class:`relay.legs.Leg` with VP8 (+ RTX) video and Opus audio that records what the
    hub sends it; with ``abs_send_time``, its video negotiated that extension."""

    def __init__(self, ssrc_base: int, abs_send_time: bool = False) -> None:
        extensions = (ABS_SEND_TIME_EXTENSION,) if abs_send_time else ()
        self.media = {
            "video": NegotiatedMedia("video", (VP8, RTX), extensions, ssrc_base + 1),
            "audio": NegotiatedMedia("audio", (OPUS,), (), ssrc_base + 2),
        }
        self.kind_by_pt = {96: "video", 97: "video", 111: "audio"}
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> bool:
        self.sent.append(data)
        return True

    def rtp_sent(self, pt: int) -> list[bytes]:
        return [p for p in self.sent if not rtp.is_rtcp(p) and rtp.payload_type(p) == pt]


def pkt(
    pt: int, seq: int, ts: int, payload: bytes, ssrc: int = 0xA1, abs_send_time: int | None = None
) -> bytes:
    """One single-packet frame (marker set), with abs-send-time (``ABS_SEND_TIME_ID``) if given."""
    packet = RtpPacket(
        payload_type=pt, marker=1, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload
    )
    packet.extensions.abs_send_time = abs_send_time
    return packet.serialize(_EXTENSIONS)


_EXTENSIONS = HeaderExtensionsMap()
_EXTENSIONS.configure(RTCRtpParameters(headerExtensions=[ABS_SEND_TIME_EXTENSION]))
