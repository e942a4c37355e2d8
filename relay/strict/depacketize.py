"""RTP packets of one incoming video stream -> encoded frames a decoder accepts, sans-I/O.

Why the relay assembles frames at all: on the strict route a frame may only be forwarded once a
classifier has seen its picture, so the relay must decode what it forwards. Each frame keeps
the original packets (as received, still to be rewritten by ``forwarder``) so that the gate can
release exactly those packets, untouched, once a safe verdict covers the frame.

Fail closed: packets must arrive in sequence order. A sequence gap, a missing marker or a first
packet that cannot start a frame marks the frame *incomplete*; it is emitted (so the gate can
drop it in order) but never decoded, and the decoder then needs a keyframe. Late, reordered
and duplicate packets are discarded (counted): their frame was already emitted. A jump beyond
``rewriter``'s limits (a sender restart, new SSRC) is a gap, not a flood of late packets.

VP8 (RFC 7741): strip the payload descriptor; a frame is the packets of one timestamp, its
first packet has S=1 and partition index 0, the marker ends it. H.264 (RFC 6184): single NAL
units, STAP-A and FU-A become an Annex-B access unit (start code before every NAL unit).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final, Literal

from relay import rtp
from relay.codecs import (
    H264_NAL_FU_A,
    H264_NAL_STAP_A,
    h264_is_keyframe_start,
    vp8_is_keyframe_start,
)
from relay.rewriter import MAX_DROPOUT, MAX_MISORDER, seq_diff

Codec = Literal["vp8", "h264"]
START_CODE: Final = b"\x00\x00\x00\x01"
MAX_FRAME_PACKETS: Final = 1024
"""A frame with more packets (~1.2 MB) is given up as incomplete: bounded memory per stream."""


@dataclass(slots=True)
class EncodedFrame:
    """One frame of the incoming stream, in arrival order."""

    timestamp: int
    """RTP timestamp of all its packets."""
    packets: list[bytes]
    """The original RTP packets, in sequence order, as the relay received them."""
    complete: bool
    """All packets present (no gap, marker seen): only then is ``data`` a decodable frame."""
    keyframe: bool
    """The first packet starts a keyframe (VP8 key frame, H.264 IDR/SPS)."""
    data: bytes
    """The bitstream for the decoder (empty when incomplete)."""


class Depacketizer:
    """Assembles frames of one stream; feed every packet of the stream to :meth:`push`."""

    __slots__ = ("_broken", "_codec", "_last_seq", "_packets", "_ts", "dropped")

    def __init__(self, codec: Codec) -> None:
        if codec not in ("vp8", "h264"):
            raise ValueError(f"no depacketizer for {codec!r}")
        self._codec: Codec = codec
        self._last_seq: int | None = None
        self._packets: list[bytes] = []
        self._ts = 0
        self._broken = False
        self.dropped: Counter[str] = Counter()
        """Packets discarded by reason (late, malformed)."""

    def push(self, packet: bytes) -> list[EncodedFrame]:
        """Take one packet; returns the frames it finished (0, 1, or 2 when it also ended an
        incomplete one)."""
        off = rtp.check_rtp(packet)
        if not isinstance(off, int):
            self.dropped[off.value] += 1
            return []
        seq = rtp.sequence_number(packet)
        gap = restart = False
        if self._last_seq is not None:
            d = seq_diff(seq, self._last_seq)
            restart = d < -MAX_MISORDER or d > MAX_DROPOUT  # the sender restarted its stream
            if d <= 0 and not restart:
                self.dropped["late"] += 1
                return []
            # a restarted stream owes nothing to the old one if it starts with a keyframe
            gap = not self._keyframe_start(packet, off) if restart else d > 1
        self._last_seq = seq
        out: list[EncodedFrame] = []
        ts = rtp.timestamp(packet)
        if self._packets and (ts != self._ts or restart):
            out.append(self._finish(complete=False))  # its marker never came
        if not self._packets:
            self._ts = ts
            self._broken = gap or not self._starts_frame(packet, off)
        elif gap:
            self._broken = True
        self._packets.append(packet)
        if rtp.marker(packet) or len(self._packets) >= MAX_FRAME_PACKETS:
            out.append(self._finish(complete=rtp.marker(packet)))
        return out

    def _keyframe_start(self, packet: bytes, off: int) -> bool:
        check = vp8_is_keyframe_start if self._codec == "vp8" else h264_is_keyframe_start
        return check(packet, off, rtp.payload_end(packet))

    def _starts_frame(self, packet: bytes, off: int) -> bool:
        if self._codec == "vp8":
            end = rtp.payload_end(packet)
            return off < end and packet[off] & 0x1F == 0x10  # S=1, partition index 0
        return True  # H.264 has no frame-start flag; the sequence check covers it

    def _finish(self, complete: bool) -> EncodedFrame:
        packets = self._packets
        self._packets = []
        first = packets[0]
        off = rtp.check_rtp(first)
        assert isinstance(off, int)
        end = rtp.payload_end(first)
        if self._codec == "vp8":
            keyframe = vp8_is_keyframe_start(first, off, end)
        else:
            keyframe = any(_h264_key(p) for p in packets)
        data = b""
        if complete and not self._broken:
            assembled = _vp8_frame(packets) if self._codec == "vp8" else _h264_access_unit(packets)
            if assembled is None:
                self.dropped["malformed"] += 1
            else:
                data = assembled
        return EncodedFrame(self._ts, packets, bool(data), keyframe, data)


def _payload(packet: bytes) -> memoryview:
    off = rtp.check_rtp(packet)
    assert isinstance(off, int)
    return memoryview(packet)[off : rtp.payload_end(packet)]


def _vp8_descriptor_len(p: memoryview) -> int:
    """Length of the RFC 7741 payload descriptor, or 0 when truncated."""
    n = len(p)
    if n < 1:
        return 0
    i = 1
    if p[0] & 0x80:
        if n < 2:
            return 0
        x = p[1]
        i = 2
        if x & 0x80:
            if n <= i:
                return 0
            i += 2 if p[i] & 0x80 else 1
        if x & 0x40:
            i += 1
        if x & 0x30:
            i += 1
    return i if i < n else 0


def _vp8_frame(packets: list[bytes]) -> bytes | None:
    parts = []
    for pkt in packets:
        p = _payload(pkt)
        i = _vp8_descriptor_len(p)
        if i == 0:
            return None
        parts.append(p[i:])
    return b"".join(parts)


def _h264_key(packet: bytes) -> bool:
    off = rtp.check_rtp(packet)
    return isinstance(off, int) and h264_is_keyframe_start(packet, off, rtp.payload_end(packet))


def _h264_access_unit(packets: list[bytes]) -> bytes | None:
    """Annex-B access unit from single NAL, STAP-A and FU-A payloads; None if malformed."""
    parts: list[bytes | memoryview] = []
    in_fu = False
    for pkt in packets:
        p = _payload(pkt)
        if len(p) < 1:
            return None
        nal = p[0] & 0x1F
        if nal == H264_NAL_FU_A:
            if len(p) < 3:
                return None
            fu = p[1]
            if fu & 0x80:  # start: rebuild the fragmented unit's NAL header
                if in_fu:
                    return None
                parts += (START_CODE, bytes(((p[0] & 0xE0) | (fu & 0x1F),)))
                in_fu = True
            elif not in_fu:
                return None
            parts.append(p[2:])
            if fu & 0x40:  # end
                in_fu = False
            continue
        if in_fu:
            return None
        if nal == H264_NAL_STAP_A:
            i = 1
            while i < len(p):
                if i + 2 > len(p):
                    return None
                size = (p[i] << 8) | p[i + 1]
                if size == 0 or i + 2 + size > len(p):
                    return None
                parts += (START_CODE, p[i + 2 : i + 2 + size])
                i += 2 + size
        elif 1 <= nal <= 23:
            parts += (START_CODE, p)
        else:
            return None
    if in_fu:
        return None
    return b"".join(parts)
