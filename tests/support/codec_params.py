"""The codec parameters test peers and packetizers use, as aiortc negotiates them."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264 = RTCRtpCodecParameters(
    mimeType="video/H264",
    clockRate=90000,
    payloadType=102,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
)
