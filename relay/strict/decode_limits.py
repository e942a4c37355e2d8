"""What one moderated stream may cost the worker's shared decoder: a picture size and a time.

Why: the strict route decodes every sender's video on one decode thread per worker. A sender at
8192x8192 costs ~170 ms of that thread per keyframe and ~100 MB of memory, so one stream could
starve every other moderated call on the worker. Two limits stop it, both failing closed (the
stream's frames are withheld, never forwarded unjudged):

* a maximum picture size, read from the keyframe's own header before anything is decoded (VP8's
  frame header, H.264's sequence parameter set); the decoder also gets it as FFmpeg's
  ``max_pixels``, so a header this parser misreads still cannot allocate a huge picture;
* a decode-time budget per stream, a token bucket in seconds of decoder time per second of
  wall time: an over-budget stream skips decoding until its bucket refills and its next keyframe.

Sans-I/O: the caller passes the clock and the decode times it measured.
"""

from __future__ import annotations

from typing import Final

from relay.strict.depacketize import START_CODE, Codec

_VP8_START: Final = b"\x9d\x01\x2a"
_H264_SPS: Final = 7
_HIGH_PROFILES: Final = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
"""Profiles whose SPS carries chroma format, bit depths and scaling lists (H.264 7.3.2.1.1)."""


def picture_size(codec: Codec, data: bytes) -> tuple[int, int] | None:
    """Width and height a keyframe announces, or None when its header does not say (not a
    keyframe, no SPS in this access unit, a header too short to read)."""
    if codec == "vp8":
        return _vp8_size(data)
    for nal in data.split(START_CODE):
        if nal and nal[0] & 0x1F == _H264_SPS:
            return _h264_sps_size(nal)
    return None


def _vp8_size(data: bytes) -> tuple[int, int] | None:
    # RFC 6386 9.1: a 3-byte frame tag (bit 0 clear on a key frame), the start code, then
    # 14-bit width and height, little-endian, each with 2 bits of scaling above
    if len(data) < 10 or data[0] & 1 or data[3:6] != _VP8_START:
        return None
    return (data[6] | data[7] << 8) & 0x3FFF, (data[8] | data[9] << 8) & 0x3FFF


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation prevention bytes already removed)."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def bit(self) -> int:
        byte = self._pos >> 3
        if byte >= len(self._data):
            raise IndexError("SPS ends early")
        value = (self._data[byte] >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _h264_sps_size(nal: bytes) -> tuple[int, int] | None:
    """Upper bound of the picture an SPS describes (cropping ignored: it only makes it smaller)."""
    rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
    r = _Bits(rbsp)
    try:
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        if profile in _HIGH_PROFILES:
            chroma_format = r.ue()
            if chroma_format == 3:
                r.bit()  # separate_colour_plane_flag
            r.ue()  # bit_depth_luma_minus8
            r.ue()  # bit_depth_chroma_minus8
            r.bit()  # qpprime_y_zero_transform_bypass_flag
            if r.bit():  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma_format != 3 else 12):
                    if r.bit():
                        _skip_scaling_list(r, 16 if i < 6 else 64)
        r.ue()  # log2_max_frame_num_minus4
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bit()
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.bit()  # gaps_in_frame_num_value_allowed_flag
        width_mbs = r.ue() + 1
        height_units = r.ue() + 1
        frame_mbs_only = r.bit()
    except (IndexError, ValueError):
        return None
    return width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last, next_ = 8, 8
    for _ in range(size):
        if next_:
            next_ = (last + r.se() + 256) % 256
        last = next_ or last


class DecodeBudget:
    """Seconds of decoder time one stream may use: ``rate`` per second, up to ``burst`` saved.

    A keyframe after a pause costs more than a delta frame, hence a burst; a stream that keeps
    costing more than ``rate`` (a fraction of the worker's one decode thread) runs dry."""

    __slots__ = ("_at", "_level", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._at = now

    def allows(self, now: float) -> bool:
        """Whether a frame may be decoded now (the budget is not overdrawn)."""
        self._level = min(self.burst, self._level + (now - self._at) * self.rate)
        self._at = now
        return self._level > 0

    def spend(self, seconds: float) -> None:
        """Charge one decode's measured time (it may overdraw: the next frames then wait)."""
        self._level -= seconds
