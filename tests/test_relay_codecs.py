"""Keyframe detection on payloads made by aiortc's own VP8 and H.264 packetizers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay import codecs
from tests.support.codec_params import H264, VP8
from tests.support.encoded_frames import encode


@pytest.fixture(scope="module")
def vp8_frames() -> list[list[bytes]]:
    return encode(VP8, [True, False, False, True, False])


@pytest.fixture(scope="module")
def h264_frames() -> list[list[bytes]]:
    return encode(H264, [True, False, False, True, False])


def test_vp8_real_payloads(vp8_frames: list[list[bytes]]) -> None:
    for i, payloads in enumerate(vp8_frames):
        flags = [codecs.vp8_is_keyframe_start(p) for p in payloads]
        if i in (0, 3):
            assert len(payloads) > 1, "want a multi-packet keyframe"
            assert flags == [True] + [False] * (len(payloads) - 1)
        else:
            assert not any(flags)
        assert [codecs.is_keyframe_start("video/VP8", p) for p in payloads] == flags


def test_h264_real_payloads(h264_frames: list[list[bytes]]) -> None:
    for i, payloads in enumerate(h264_frames):
        flags = [codecs.h264_is_keyframe_start(p) for p in payloads]
        if i in (0, 3):
            assert flags[0], "first packet of a forced keyframe"
            assert len(payloads) > 1
        else:
            assert not any(flags)
        assert [codecs.is_keyframe_start("H264", p) for p in payloads] == flags


def test_h264_packetization_kinds_are_exercised(h264_frames: list[list[bytes]]) -> None:
    kinds = {p[0] & 0x1F for f in h264_frames for p in f}
    assert 24 in kinds and 28 in kinds  # STAP-A (SPS+PPS) and FU-A fragments


def test_offsets_inside_a_packet(vp8_frames: list[list[bytes]]) -> None:
    header = bytes(12)
    key = header + vp8_frames[0][0] + b"\x00\x00"
    assert codecs.vp8_is_keyframe_start(key, 12, len(key) - 2)
    delta = header + vp8_frames[1][0]
    assert not codecs.vp8_is_keyframe_start(delta, 12)


def vp8_descriptor(
    s: bool, pid: int, picture_id: int | None, m: bool, tl0: bool, tk: bool
) -> bytes:
    x = picture_id is not None or tl0 or tk
    b0 = (0x80 if x else 0) | (0x10 if s else 0) | pid
    out = bytearray([b0])
    if x:
        out.append(
            (0x80 if picture_id is not None else 0) | (0x40 if tl0 else 0) | (0x30 if tk else 0)
        )
        if picture_id is not None:
            if m:
                out += bytes([0x80 | (picture_id >> 8) & 0x7F, picture_id & 0xFF])
            else:
                out.append(picture_id & 0x7F)
        if tl0:
            out.append(0x55)
        if tk:
            out.append(0xE3)
    return bytes(out)


def strip_descriptor(p: bytes) -> bytes:
    """Remove aiortc's descriptor to get the raw VP8 partition bytes."""
    i = 1
    if p[0] & 0x80:
        x = p[1]
        i = 2
        if x & 0x80:
            i += 2 if p[i] & 0x80 else 1
        if x & 0x40:
            i += 1
        if x & 0x30:
            i += 1
    return p[i:]


@given(
    st.booleans(),
    st.integers(0, 7),
    st.one_of(st.none(), st.integers(0, 0x7FFF)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_vp8_descriptor_variants(
    vp8_frames: list[list[bytes]],
    s: bool,
    pid: int,
    picture_id: int | None,
    m: bool,
    tl0: bool,
    tk: bool,
    key: bool,
) -> None:
    body = strip_descriptor(vp8_frames[0 if key else 1][0])
    payload = vp8_descriptor(s, pid, picture_id, m, tl0, tk) + body
    assert codecs.vp8_is_keyframe_start(payload) == (key and s and pid == 0)


def test_truncated_payloads_are_not_keyframes() -> None:
    for p in [b"", b"\x90", b"\x90\x80", b"\x90\x80\x80", b"\x10"]:
        assert not codecs.vp8_is_keyframe_start(p)
    for p in [b"", b"\x1c", b"\x18\x00", b"\x18\x00\x05\x65"]:
        assert not codecs.h264_is_keyframe_start(p)


def test_h264_handmade() -> None:
    assert codecs.h264_is_keyframe_start(b"\x65\x88")  # IDR
    assert codecs.h264_is_keyframe_start(b"\x67\x42")  # SPS
    assert not codecs.h264_is_keyframe_start(b"\x68\xce")  # PPS alone
    assert not codecs.h264_is_keyframe_start(b"\x41\x9a")  # non-IDR slice
    stap = b"\x18" + b"\x00\x02\x68\xce" + b"\x00\x02\x65\x88"
    assert codecs.h264_is_keyframe_start(stap)
    assert codecs.h264_is_keyframe_start(b"\x7c\x85")  # FU-A start, IDR
    assert not codecs.h264_is_keyframe_start(b"\x7c\x05")  # FU-A middle, IDR
    assert not codecs.h264_is_keyframe_start(b"\x7c\x81")  # FU-A start, non-IDR


def test_opus_never_keyframe() -> None:
    assert not codecs.is_keyframe_start("audio/opus", b"\x78\x00")
