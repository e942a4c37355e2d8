"""Stand-in legs for driving ``ForwardingHub`` without a network, and the RTP they send."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from relay import rtp
from relay.legs import NegotiatedMedia
from tests.support.codec_params import VP8

RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
KEY = b"\x10\x00\x9d\x01\x2a"
"""A VP8 payload starting a keyframe (descriptor S bit, frame tag P bit clear)."""
DELTA = b"\x10\x01"


class FakeLeg:
    """A :class:`relay.legs.Leg` with VP8 (+ RTX) video and Opus audio that records what the
    hub sends it."""

    def __init__(self, ssrc_base: int) -> None:
        self.media = {
            "video": NegotiatedMedia("video", (VP8, RTX), (), ssrc_base + 1),
            "audio": NegotiatedMedia("audio", (OPUS,), (), ssrc_base + 2),
        }
        self.kind_by_pt = {96: "video", 97: "video", 111: "audio"}
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> bool:
        self.sent.append(data)
        return True

    def rtp_sent(self, pt: int) -> list[bytes]:
        return [p for p in self.sent if not rtp.is_rtcp(p) and rtp.payload_type(p) == pt]


def pkt(pt: int, seq: int, ts: int, payload: bytes, ssrc: int = 0xA1) -> bytes:
    """One single-packet frame (marker set)."""
    return RtpPacket(
        payload_type=pt, marker=1, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload
    ).serialize()
