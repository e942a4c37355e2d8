"""RFC 4571 framing: any split of the stream gives back the datagrams that were framed."""

from __future__ import annotations

import random

import pytest

from relay.rfc4571 import MAX_FRAME_BYTES, FrameDecoder, FramingError, encode_frame

PACKETS = [b"\x00\x01stun", bytes(range(256)) * 4, b"\x80" + b"r" * 1199, b"d"]


def test_a_frame_is_its_length_then_its_bytes() -> None:
    assert encode_frame(b"abc") == b"\x00\x03abc"
    assert encode_frame(b"x" * 300)[:2] == b"\x01\x2c"
    assert len(encode_frame(b"y" * MAX_FRAME_BYTES)) == MAX_FRAME_BYTES + 2
    with pytest.raises(ValueError):
        encode_frame(b"z" * (MAX_FRAME_BYTES + 1))


def test_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    stream = b"".join(encode_frame(p) for p in PACKETS)
    out: list[bytes] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == PACKETS
    assert decoder.pending_bytes == 0


def test_several_frames_in_one_read_and_a_partial_one_kept() -> None:
    decoder = FrameDecoder()
    stream = b"".join(encode_frame(p) for p in PACKETS)
    assert decoder.feed(stream + b"\x00\x05ab") == PACKETS
    assert decoder.pending_bytes == 4
    assert decoder.feed(b"cde" + encode_frame(b"next")) == [b"abcde", b"next"]


def test_random_splits_of_a_long_stream() -> None:
    rng = random.Random(4571)
    packets = [rng.randbytes(rng.randrange(1, 1500)) for _ in range(200)]
    stream = b"".join(encode_frame(p) for p in packets)
    decoder = FrameDecoder()
    out: list[bytes] = []
    position = 0
    while position < len(stream):
        step = rng.randrange(1, 3000)
        out += decoder.feed(stream[position : position + step])
        position += step
    assert out == packets


def test_zero_length_frames_are_skipped() -> None:
    assert FrameDecoder().feed(b"\x00\x00" + encode_frame(b"a") + b"\x00\x00") == [b"a"]


def test_an_oversize_frame_is_refused_as_soon_as_its_length_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=1500)
    assert decoder.feed(encode_frame(b"q" * 1500)) == [b"q" * 1500]
    with pytest.raises(FramingError, match="1501"):
        decoder.feed(b"\x05\xdd")  # 1501: refused before any of its body is buffered
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_bytes=0)
