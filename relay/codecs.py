"""Keyframe detection from an RTP payload, without depacketising or decoding.

Why: the relay must know where a decodable picture starts (to start a new partner's video
at once, to fill the last-keyframe cache, and to stop dropping after a PLI) while never
running a decoder. Both checks read a handful of bytes at the start of the payload.

Only VP8 (RFC 7741) and H.264 (RFC 6184) need this; Opus has no keyframes.
"""

from __future__ import annotations

from typing import Final

from relay.rtp import Buffer

H264_NAL_IDR: Final = 5
H264_NAL_SPS: Final = 7
H264_NAL_STAP_A: Final = 24
H264_NAL_FU_A: Final = 28
_H264_KEY_NALS: Final = frozenset((H264_NAL_IDR, H264_NAL_SPS))


def vp8_is_keyframe_start(payload: Buffer, start: int = 0, end: int | None = None) -> bool:
    """True if this VP8 RTP payload is the first packet of a keyframe.

    Walks the RFC 7741 payload descriptor (X, then I/L/T/K extensions, a 7 or 15 bit
    PictureID), requires S=1 and PID=0 (start of partition 0, where the frame header lives),
    then reads the VP8 frame tag: bit 0 (P, "inverse keyframe flag") is 0 for a keyframe.
    ``start``/``end`` let the caller pass the whole packet and the payload bounds, saving a copy.
    """
    if end is None:
        end = len(payload)
    i = start
    if i >= end:
        return False
    b = payload[i]
    if not (b & 0x10) or (b & 0x0F) != 0:  # S bit, partition index 0
        return False
    i += 1
    if b & 0x80:  # X: extension byte follows
        if i >= end:
            return False
        x = payload[i]
        i += 1
        if x & 0x80:  # I: PictureID present
            if i >= end:
                return False
            i += 2 if payload[i] & 0x80 else 1  # M bit: 15-bit PictureID
        if x & 0x40:  # L: TL0PICIDX present
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX byte present
            i += 1
    if i >= end:
        return False
    return not (payload[i] & 0x01)


def h264_is_keyframe_start(payload: Buffer, start: int = 0, end: int | None = None) -> bool:
    """True if this H.264 RTP payload carries (the start of) an IDR slice or an SPS.

    Handles single NAL unit packets (types 1-23), STAP-A aggregates (24; every aggregated
    NAL is inspected, as browsers send SPS+PPS+IDR in one) and FU-A (28) start fragments.
    An SPS counts because encoders put it immediately before the IDR it belongs to, and a
    decoder cannot start without it.
    """
    if end is None:
        end = len(payload)
    if start >= end:
        return False
    nal = payload[start] & 0x1F
    if nal in _H264_KEY_NALS:
        return True
    if nal == H264_NAL_STAP_A:
        i = start + 1
        while i + 2 < end:
            size = (payload[i] << 8) | payload[i + 1]
            if size == 0 or i + 2 + size > end:
                return False
            if payload[i + 2] & 0x1F in _H264_KEY_NALS:
                return True
            i += 2 + size
        return False
    if nal == H264_NAL_FU_A:
        if start + 1 >= end:
            return False
        fu = payload[start + 1]
        return bool(fu & 0x80) and (fu & 0x1F) in _H264_KEY_NALS
    return False


def is_keyframe_start(codec: str, payload: Buffer, start: int = 0, end: int | None = None) -> bool:
    """Dispatch by codec name as negotiated in SDP (``video/VP8``, ``H264``, case-insensitive).

    Audio and unknown codecs return False. Per-stream code should bind the specific function
    once instead of calling this per packet.
    """
    name = codec.rsplit("/", 1)[-1].upper()
    if name == "VP8":
        return vp8_is_keyframe_start(payload, start, end)
    if name == "H264":
        return h264_is_keyframe_start(payload, start, end)
    return False
