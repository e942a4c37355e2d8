"""Shared helpers for the strict-route tests: real photographs, a real VP8 sender, recognition."""

from __future__ import annotations

import fractions
from dataclasses import dataclass, field
from functools import cache

import av
import cv2
import numpy as np
from aiortc.codecs import get_encoder
from aiortc.rtp import RtpPacket
from numpy.typing import NDArray

from relay.strict.block_policy import ModerationPolicy
from tests.support.codec_params import VP8
from tests.support.model_photos import photo
from tests.support.tracks import PictureTrack

WIDTH, HEIGHT = 640, 480
SAFE, UNSAFE = "rocket", "astronaut"
"""NudeNet 320n finds nothing in ``rocket``; ``astronaut`` is FACE_FEMALE ~0.8."""
FACE_POLICY = ModerationPolicy(thresholds={"FACE_FEMALE": 0.5})
"""Blocks only FACE_FEMALE: lets the tests use harmless photographs as "unsafe" content."""


@cache
def picture(name: str) -> NDArray[np.uint8]:
    """A skimage photograph as a 640x480 RGB frame."""
    return cv2.resize(photo(name), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


@cache
def _thumb_of(name: str) -> NDArray[np.float32]:
    return thumb(picture(name))


def thumb(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (80, 60), interpolation=cv2.INTER_AREA).astype(np.float32)


def difference(rgb: NDArray[np.uint8], name: str) -> float:
    """Mean absolute grey difference (0-255) of a decoded frame from a source photograph."""
    return float(np.abs(thumb(rgb) - _thumb_of(name)).mean())


def shows(rgb: NDArray[np.uint8]) -> str:
    """Which photograph a decoded frame shows: ``rocket``, ``astronaut`` or ``mixed``."""
    safe, unsafe = difference(rgb, SAFE), difference(rgb, UNSAFE)
    if safe < 20 and safe < unsafe / 2:
        return SAFE
    if unsafe < 20 and unsafe < safe / 2:
        return UNSAFE
    return "mixed"


def video_frame(name: str, index: int) -> av.VideoFrame:
    f = av.VideoFrame.from_ndarray(picture(name), format="rgb24")
    f.pts = index * 3000
    f.time_base = fractions.Fraction(1, 90000)
    return f


@dataclass
class Vp8Sender:
    """aiortc's own VP8 encoder and packetizer: keyframes only when asked (as in aiortc)."""

    ssrc: int = 4321
    seq: int = 1000
    index: int = 0
    keyframe_requested: bool = True
    keyframes: list[int] = field(default_factory=list)
    """Indexes of the frames sent as keyframes."""

    def __post_init__(self) -> None:
        self._enc = get_encoder(VP8)

    def frame(self, name: str) -> list[bytes]:
        """Encode one picture of ``name`` into the RTP packets aiortc would send."""
        force, self.keyframe_requested = self.keyframe_requested, False
        payloads, ts = self._enc.encode(video_frame(name, self.index), force_keyframe=force)
        if payloads[0][0] & 0x10 and not payloads[0][_vp8_header_len(payloads[0])] & 1:
            self.keyframes.append(self.index)
        self.index += 1
        out = []
        for j, payload in enumerate(payloads):
            p = RtpPacket(
                payload_type=VP8.payloadType,
                marker=int(j == len(payloads) - 1),
                sequence_number=self.seq & 0xFFFF,
                timestamp=ts,
                ssrc=self.ssrc,
                payload=payload,
            )
            self.seq += 1
            out.append(p.serialize())
        return out


def _vp8_header_len(payload: bytes) -> int:
    """aiortc always writes X=1, I=1 with a 15-bit PictureID: 4 descriptor bytes."""
    assert payload[0] & 0x80 and payload[1] == 0x80 and payload[2] & 0x80
    return 4


@dataclass
class VP8Receiver:
    """Decodes forwarded packets as a receiving client would (in order, per timestamp)."""

    pictures: list[NDArray[np.uint8]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ctx = av.CodecContext.create("vp8", "r")
        self._parts: list[bytes] = []

    def packet(self, data: bytes) -> None:
        rtp = RtpPacket.parse(data)
        from aiortc.codecs.vpx import vp8_depayload

        self._parts.append(vp8_depayload(rtp.payload))
        if rtp.marker:
            for f in self._ctx.decode(av.Packet(b"".join(self._parts))):
                self.pictures.append(f.to_ndarray(format="rgb24"))
            self._parts = []


class PhotoTrack(PictureTrack):
    """Shows whichever photograph ``name`` says, at 30 fps."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def picture(self) -> np.ndarray:
        return picture(self.name)
