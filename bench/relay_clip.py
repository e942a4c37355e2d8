"""The relay benchmark's media: one synthetic clip, encoded once, replayed by every sender.

Why: the load generator must cost little CPU so that it is the relay that saturates, so no
sender encodes. A few seconds of video (a panning texture and a moving square, so the encoder
has real work and the bitrate is realistic) are encoded once with aiortc's own encoder for the
codec, VP8 (``Vp8Encoder``) or H.264 (``H264Encoder``, libx264, packetization-mode 1), at the
size and bitrate the caller picks (640x480 at about 1 Mbit/s by default), and kept twice:

* as whole encoded frames (``frames``: VP8 frames, or H.264 Annex B access units), for senders
  that go through aiortc's pre-encoded ``pack`` path (the naive relay's clients);
* as RTP payloads (``payloads``), packetized by the same encoder's ``pack``, for senders that
  write RTP themselves (the forwarding relay's clients). For VP8 the picture id is the frame's
  index in the clip: the forwarding relay rewrites seq/ts/SSRC but never the payload, so a
  receiver that never decodes still knows which frame arrived. H.264 has no such field.

Frames also carry their index as a barcode (8 black/white blocks in the top-left corner): the
naive relay decodes and re-encodes, which loses picture ids and timestamps, so its receivers
decode and read the barcode back.

Audio (:func:`encode_audio_clip`) is a tone encoded once with aiortc's ``OpusEncoder``, one
RTP payload per 20 ms, for senders that add a voice-like stream to the load.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal

import av
import numpy as np
import numpy.typing as npt
from aiortc.codecs import h264, vpx
from aiortc.codecs.opus import OpusEncoder

Codec = Literal["vp8", "h264"]
WIDTH: Final = 640
HEIGHT: Final = 480
FPS: Final = 30
RTP_CLOCK: Final = 90_000
TICKS_PER_FRAME: Final = RTP_CLOCK // FPS
BARCODE_BITS: Final = 8
BARCODE_BLOCK: Final = 32
"""Side of one barcode block in pixels: large enough to survive a 1 Mbit/s re-encode."""
AUDIO_RTP_CLOCK: Final = 48_000
"""Opus's RTP clock (RFC 7587), whatever the sample rate the tone was drawn at."""
AUDIO_PACKET_S: Final = 0.020
"""Duration of one Opus payload: aiortc's ``OpusEncoder`` frames audio in 20 ms."""
AUDIO_TICKS_PER_PACKET: Final = round(AUDIO_RTP_CLOCK * AUDIO_PACKET_S)
"""RTP timestamp step between consecutive audio payloads (960)."""
_TIME_BASE: Final = fractions.Fraction(1, RTP_CLOCK)
_AUDIO_TIME_BASE: Final = fractions.Fraction(1, AUDIO_RTP_CLOCK)
_TONE_AMPLITUDE: Final = 8_000
"""Peak of the s16 tone: loud enough to be coded as sound, far from clipping."""


@dataclass(frozen=True)
class _CodecKit:
    """What :func:`encode_clip` needs of one aiortc codec module."""

    encoder: Callable[[], vpx.Vp8Encoder | h264.H264Encoder]
    depayload: Callable[[bytes], bytes]
    min_bitrate: int
    max_bitrate: int


_KITS: Final[dict[Codec, _CodecKit]] = {
    "vp8": _CodecKit(vpx.Vp8Encoder, vpx.vp8_depayload, vpx.MIN_BITRATE, vpx.MAX_BITRATE),
    "h264": _CodecKit(h264.H264Encoder, h264.h264_depayload, h264.MIN_BITRATE, h264.MAX_BITRATE),
}


@dataclass(frozen=True)
class Clip:
    """A pre-encoded clip; index ``i`` of every list is the same frame."""

    frames: list[bytes]
    """Whole encoded frames: VP8 frames, or H.264 Annex B access units (SPS/PPS with IDRs)."""
    payloads: list[list[bytes]]
    """RTP payloads per frame (VP8: descriptor with picture id ``i`` + partition; H.264:
    single NAL, STAP-A or FU-A packets)."""
    keyframe_interval: int
    codec: Codec
    width: int
    height: int

    @property
    def bitrate(self) -> float:
        """Average bits per second of the encoded clip when played at ``FPS``."""
        return sum(len(f) for f in self.frames) * 8 * FPS / len(self.frames)

    @property
    def packets_per_second(self) -> float:
        """RTP packets per second one sender of this clip puts on the wire."""
        return sum(len(p) for p in self.payloads) * FPS / len(self.payloads)


@dataclass(frozen=True)
class AudioClip:
    """A pre-encoded Opus tone: send ``payloads`` in order, one per ``AUDIO_PACKET_S``,
    advancing the RTP timestamp by ``AUDIO_TICKS_PER_PACKET`` each."""

    payloads: list[bytes]
    frequency: float


class EncodedFrame:
    """What aiortc's ``Vp8Encoder.pack`` reads from a packet: bytes, ``pts``, ``time_base``.

    Why not ``av.Packet``: building one per send costs more than this, and ``pack`` needs
    nothing else. (``H264Encoder.pack`` insists on a real ``av.Packet``.)
    """

    __slots__ = ("_data", "pts", "time_base")

    def __init__(self, data: bytes, pts: int) -> None:
        self._data = data
        self.pts = pts
        self.time_base = _TIME_BASE

    def __bytes__(self) -> bytes:
        return self._data


def picture(index: int, width: int = WIDTH, height: int = HEIGHT) -> npt.NDArray[np.uint8]:
    """The RGB picture of frame ``index``: moving content plus its barcode.

    Built from broadcast row and column vectors, not full coordinate grids, so that drawing
    a 720p clip stays cheap next to encoding it.
    """
    y, x = np.ogrid[0:height, 0:width]
    shift = 4 * index
    r = (128 + 100 * np.sin((x + shift) / 23.0) * np.cos(y / 31.0)).astype(np.uint8)
    g = ((x * 3 + y * 2 + shift * 2) % 256).astype(np.uint8)
    b = ((x ^ (y + shift)) & 0xFF).astype(np.uint8)
    img = np.stack([r, g, b], axis=-1)
    side = height // 4
    sx = (index * 9) % (width - side)
    img[(height - side) // 2 : (height + side) // 2, sx : sx + side] = (250, 220, 30)
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


def _packet(data: bytes, index: int) -> av.Packet[Any]:
    """Frame ``index`` as the ``av.Packet`` aiortc's ``pack`` takes (H.264's insists on one)."""
    packet = av.Packet(data)
    packet.pts = index * TICKS_PER_FRAME
    packet.time_base = _TIME_BASE
    return packet


def encode_clip(
    seconds: float = 4.0,
    bitrate: int = 1_000_000,
    keyframe_s: float = 2.0,
    draw: Callable[[int], npt.NDArray[np.uint8]] | None = None,
    codec: Codec = "vp8",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Clip:
    """Encode the synthetic clip once, before any timing (4 s take 1 to 5 s to encode).

    Keyframes every ``keyframe_s``: a forwarding relay gates a new receiver's video until a
    keyframe, and these senders do not answer PLIs, so this bounds the warm-up. ``draw`` gives
    frame ``i``'s RGB picture of ``height`` x ``width`` (default :func:`picture` at that size;
    the strict benchmark draws photographs with scene cuts instead); for VP8 the picture id
    names the frame whatever is drawn.

    ``bitrate`` must lie within what aiortc's encoder for ``codec`` accepts (VP8 250 kbit/s to
    1.5 Mbit/s, H.264 500 kbit/s to 3 Mbit/s): it clamps silently, and a clip quietly encoded
    at another rate than asked would mislabel every result measured with it.
    """
    kit = _KITS[codec]
    count = round(seconds * FPS)
    interval = round(keyframe_s * FPS)
    if count < 1 or count > 1 << BARCODE_BITS or interval < 1:
        raise ValueError(f"clip of {count} frames, keyframe every {interval}: out of range")
    if not kit.min_bitrate <= bitrate <= kit.max_bitrate:
        raise ValueError(
            f"{codec} bitrate {bitrate} outside aiortc's {kit.min_bitrate}..{kit.max_bitrate}"
        )
    if (
        width % 2
        or height % 2
        or width < BARCODE_BITS * BARCODE_BLOCK
        or height < 2 * BARCODE_BLOCK
    ):
        raise ValueError(f"{width}x{height}: yuv420p needs even sides, the barcode 256x64")
    draw = draw or partial(picture, width=width, height=height)
    encoder = kit.encoder()
    encoder.target_bitrate = bitrate
    frames: list[bytes] = []
    for i in range(count):
        img = draw(i)
        if img.shape != (height, width, 3):
            raise ValueError(f"frame {i} drawn as {img.shape}, not {width}x{height} RGB")
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i * TICKS_PER_FRAME
        frame.time_base = _TIME_BASE
        payloads, _ = encoder.encode(frame, force_keyframe=i % interval == 0)
        if not payloads:
            raise RuntimeError(f"{codec} encoder held back frame {i}: clip would be misaligned")
        frames.append(b"".join(kit.depayload(p) for p in payloads))
    packer = kit.encoder()
    if isinstance(packer, vpx.Vp8Encoder):
        packer.picture_id = 0  # pack() counts up from here: picture id = clip index
    packets = [packer.pack(_packet(data, i))[0] for i, data in enumerate(frames)]
    return Clip(
        frames=frames,
        payloads=packets,
        keyframe_interval=interval,
        codec=codec,
        width=width,
        height=height,
    )


def encode_audio_clip(seconds: float = 1.0, frequency: float = 440.0) -> AudioClip:
    """Encode ``seconds`` of a sine tone at ``frequency`` Hz once, as Opus RTP payloads.

    A tone, not silence: Opus codes digital silence in 3 bytes a packet, which would
    understate what a talking sender puts on the wire. The tone is drawn mono at 48 kHz, 20 ms
    at a time with continuous phase; aiortc's ``OpusEncoder`` (stereo, 96 kbit/s, as aiortc
    sends) returns exactly one payload per 20 ms frame.
    """
    count = round(seconds / AUDIO_PACKET_S)
    if count < 1 or not 0 < frequency < AUDIO_RTP_CLOCK / 2:
        raise ValueError(f"{count} packets of a {frequency} Hz tone: out of range")
    encoder = OpusEncoder()
    t = np.arange(count * AUDIO_TICKS_PER_PACKET) / AUDIO_RTP_CLOCK
    tone = (_TONE_AMPLITUDE * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    payloads: list[bytes] = []
    for k, samples in enumerate(np.split(tone, count)):
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = AUDIO_RTP_CLOCK
        frame.pts = k * AUDIO_TICKS_PER_PACKET
        frame.time_base = _AUDIO_TIME_BASE
        encoded, _ = encoder.encode(frame)
        payloads.extend(encoded)
    if len(payloads) != count:
        raise RuntimeError(f"Opus encoder gave {len(payloads)} payloads for {count} frames")
    return AudioClip(payloads=payloads, frequency=frequency)
