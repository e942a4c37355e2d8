"""The relay benchmark's media: one synthetic clip, encoded once, replayed by every sender.

Why: the load generator must cost little CPU so that it is the relay that saturates, so no
sender encodes. A few seconds of video (a panning texture and a moving square, so the encoder
has real work and the bitrate is realistic; 640x480 or 1280x720) are encoded once with
aiortc's own encoders (VP8, or H.264 through libx264), and a second of Opus audio (a tone)
likewise. VP8 is kept twice:

* as whole VP8 frames (``frames``), for senders that go through aiortc's pre-encoded ``pack``
  path (the naive relay's clients);
* as RTP payloads (``payloads``), packetized with the VP8 picture id set to the frame's index
  in the clip, for senders that write RTP themselves (the forwarding relay's clients). The
  forwarding relay rewrites seq/ts/SSRC but never the payload, so a receiver that never
  decodes still knows which frame arrived.

H.264 is kept as RTP payloads only (aiortc's packetization-mode 1 packer, STAP-A/FU-A): it
has no picture id, and nothing here sends it through aiortc's pre-encoded path.

Frames also carry their index as a barcode (8 black/white blocks in the top-left corner): the
naive relay decodes and re-encodes, which loses picture ids and timestamps, so its receivers
decode and read the barcode back.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import av
import numpy as np
import numpy.typing as npt
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload

WIDTH: Final = 640
HEIGHT: Final = 480
FPS: Final = 30
RTP_CLOCK: Final = 90_000
TICKS_PER_FRAME: Final = RTP_CLOCK // FPS
BARCODE_BITS: Final = 8
BARCODE_BLOCK: Final = 32
"""Side of one barcode block in pixels: large enough to survive a 1 Mbit/s re-encode."""
_TIME_BASE: Final = fractions.Fraction(1, RTP_CLOCK)
AUDIO_RATE: Final = 48_000
AUDIO_PACKET_SAMPLES: Final = 960
"""20 ms of Opus at 48 kHz: one RTP packet, the RTP timestamp's step."""
Codec = Literal["vp8", "h264"]


@dataclass(frozen=True)
class Clip:
    """A pre-encoded clip; index ``i`` of every list is the same frame."""

    frames: list[bytes]
    """Whole VP8 frames (what ``Vp8Encoder.pack`` takes); empty for H.264."""
    payloads: list[list[bytes]]
    """RTP payloads per frame (VP8: descriptor with picture id ``i`` + partition)."""
    keyframe_interval: int
    codec: Codec = "vp8"
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def bitrate(self) -> float:
        """Average bits per second of the clip's RTP payloads when played at ``FPS``."""
        return sum(len(p) for f in self.payloads for p in f) * 8 * FPS / len(self.payloads)

    @property
    def packets_per_second(self) -> float:
        """RTP packets per second one sender of this clip puts on the wire."""
        return sum(len(p) for p in self.payloads) * FPS / len(self.payloads)


class EncodedFrame:
    """What aiortc's ``Vp8Encoder.pack`` reads from a packet: bytes, ``pts``, ``time_base``.

    Why not ``av.Packet``: building one per send costs more than this, and ``pack`` needs
    nothing else.
    """

    __slots__ = ("_data", "pts", "time_base")

    def __init__(self, data: bytes, pts: int) -> None:
        self._data = data
        self.pts = pts
        self.time_base = _TIME_BASE

    def __bytes__(self) -> bytes:
        return self._data


@dataclass(frozen=True)
class AudioClip:
    """Opus RTP payloads, one per 20 ms (:data:`AUDIO_PACKET_SAMPLES` at 48 kHz)."""

    payloads: list[bytes]


def picture(index: int, width: int = WIDTH, height: int = HEIGHT) -> npt.NDArray[np.uint8]:
    """The RGB picture of frame ``index``: moving content plus its barcode."""
    y, x = np.mgrid[0:height, 0:width]
    shift = 4 * index
    r = (128 + 100 * np.sin((x + shift) / 23.0) * np.cos(y / 31.0)).astype(np.uint8)
    g = ((x * 3 + y * 2 + shift * 2) % 256).astype(np.uint8)
    b = ((x ^ (y + shift)) & 0xFF).astype(np.uint8)
    img = np.stack([r, g, b], axis=-1)
    sx = (index * 9) % (width - 120)
    top = height * 5 // 12
    img[top : top + height // 4, sx : sx + 120] = (250, 220, 30)
    stamp_barcode(img, index)
    return img


def stamp_barcode(img: npt.NDArray[np.uint8], value: int) -> None:
    """Write ``value``'s low ``BARCODE_BITS`` bits as white (1) / black (0) blocks, in place."""
    for bit in range(BARCODE_BITS):
        level = 255 if value >> bit & 1 else 0
        img[0:BARCODE_BLOCK, bit * BARCODE_BLOCK : (bit + 1) * BARCODE_BLOCK] = level


def read_barcode(luma: npt.NDArray[np.uint8]) -> int:
    """Read back :func:`stamp_barcode` from a decoded picture's luma (Y) plane.

    Only the centre of each block is read: codec ringing sits at the edges.
    """
    q = BARCODE_BLOCK // 4
    value = 0
    for bit in range(BARCODE_BITS):
        x0 = bit * BARCODE_BLOCK
        centre = luma[q : BARCODE_BLOCK - q, x0 + q : x0 + BARCODE_BLOCK - q]
        if centre.mean() > 128:
            value |= 1 << bit
    return value


def luma(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """The Y plane of a decoded yuv420p frame (PyAV stacks Y, U, V rows without converting)."""
    return np.asarray(frame.to_ndarray()[: frame.height], dtype=np.uint8)


def vp8_picture_id(payload: bytes | bytearray | memoryview, offset: int) -> int | None:
    """The picture id in the VP8 payload descriptor at ``offset`` (RFC 7741), if present."""
    if len(payload) < offset + 3 or not payload[offset] & 0x80 or not payload[offset + 1] & 0x80:
        return None
    b = payload[offset + 2]
    if b & 0x80:
        if len(payload) < offset + 4:
            return None
        return (b & 0x7F) << 8 | payload[offset + 3]
    return b & 0x7F


def encode_clip(
    seconds: float = 4.0,
    bitrate: int = 1_000_000,
    keyframe_s: float = 2.0,
    draw: Callable[[int], npt.NDArray[np.uint8]] | None = None,
    codec: Codec = "vp8",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Clip:
    """Encode the synthetic clip once (a few ms per frame; done before any timing).

    Keyframes every ``keyframe_s``: a forwarding relay gates a new receiver's video until a
    keyframe, so this bounds the wait when a sender cannot be asked for one. ``draw`` gives
    frame ``i``'s RGB picture at ``width`` x ``height`` (default :func:`picture`; the strict
    benchmark draws photographs with scene cuts instead); the VP8 picture id names the frame
    whatever is drawn.
    """
    count = round(seconds * FPS)
    interval = round(keyframe_s * FPS)
    if count < 1 or count > 1 << BARCODE_BITS or interval < 1:
        raise ValueError(f"clip of {count} frames, keyframe every {interval}: out of range")
    encoder = Vp8Encoder() if codec == "vp8" else H264Encoder()
    encoder.target_bitrate = bitrate
    encoded: list[list[bytes]] = []
    for i in range(count):
        img = draw(i) if draw is not None else picture(i, width, height)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i * TICKS_PER_FRAME
        frame.time_base = _TIME_BASE
        encoded.append(encoder.encode(frame, force_keyframe=i % interval == 0)[0])
    if codec == "h264":
        return Clip([], encoded, interval, codec, width, height)
    frames = [b"".join(vp8_depayload(p) for p in payloads) for payloads in encoded]
    packer = Vp8Encoder()
    packets: list[list[bytes]] = []
    for i, data in enumerate(frames):
        packer.picture_id = i
        packets.append(packer.pack(EncodedFrame(data, i * TICKS_PER_FRAME))[0])  # type: ignore[arg-type]
    return Clip(frames, packets, interval, codec, width, height)


def encode_audio_clip(seconds: float = 1.0, frequency: float = 440.0) -> AudioClip:
    """A tone, Opus-encoded once with aiortc's encoder: what every simulated user says."""
    encoder = OpusEncoder()
    payloads: list[bytes] = []
    for n in range(round(seconds * AUDIO_RATE / AUDIO_PACKET_SAMPLES)):
        t = (np.arange(AUDIO_PACKET_SAMPLES) + n * AUDIO_PACKET_SAMPLES) / AUDIO_RATE
        wave = (np.sin(2 * np.pi * frequency * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = n * AUDIO_PACKET_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        payloads.extend(encoder.encode(frame)[0])
    return AudioClip(payloads)
