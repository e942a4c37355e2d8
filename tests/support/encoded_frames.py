"""Real VP8 and H.264 payloads from aiortc's own encoders, for packetizer and keyframe tests."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters


def frames(n: int, width: int = 320, height: int = 240) -> list[av.VideoFrame]:
    """Noisy frames, so a keyframe spans several packets (FU-A / VP8 continuation)."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        img = np.roll(base, 4 * i, axis=1)
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = i * 3000
        f.time_base = fractions.Fraction(1, 90000)
        out.append(f)
    return out


def encode(codec: RTCRtpCodecParameters, pattern: list[bool]) -> list[list[bytes]]:
    enc = get_encoder(codec)
    return [
        enc.encode(f, force_keyframe=k)[0]
        for f, k in zip(frames(len(pattern)), pattern, strict=True)
    ]
