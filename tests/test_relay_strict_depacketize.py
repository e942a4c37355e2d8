"""Frame assembly on the exact wire payloads of aiortc's VP8 and H.264 packetizers."""

from __future__ import annotations

import fractions
from collections.abc import Collection

import av
import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtp import RtpPacket

from relay.strict.depacketize import Codec, Depacketizer, EncodedFrame
from tests.support.codec_params import H264, VP8

PARAMS = {"vp8": VP8, "h264": H264}


def pictures(n: int, width: int = 320, height: int = 240) -> list[av.VideoFrame]:
    """Fresh noise every picture: every frame spans several packets (FU-A, VP8 continuations)."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = i * 3000
        f.time_base = fractions.Fraction(1, 90000)
        out.append(f)
    return out


def rtp_stream(codec: Codec, n: int, keyframes: Collection[int] = (0,)) -> list[list[bytes]]:
    """Per picture, the RTP packets aiortc would send (marker on the last of each frame)."""
    enc = get_encoder(PARAMS[codec])
    seq = 65530  # wraps during the stream
    out = []
    for i, pic in enumerate(pictures(n)):
        payloads, ts = enc.encode(pic, force_keyframe=i in keyframes)
        pkts = []
        for j, payload in enumerate(payloads):
            p = RtpPacket(
                payload_type=PARAMS[codec].payloadType,
                marker=int(j == len(payloads) - 1),
                sequence_number=seq & 0xFFFF,
                timestamp=ts,
                ssrc=1234,
                payload=payload,
            )
            pkts.append(p.serialize())
            seq += 1
        out.append(pkts)
    return out


def decode_all(codec: Codec, frames: list[EncodedFrame]) -> list[np.ndarray]:
    ctx = av.CodecContext.create(codec, "r")
    out = []
    for f in frames:
        for pic in ctx.decode(av.Packet(f.data)):
            out.append(pic.to_ndarray(format="gray"))
    return out


def reference_decode(codec: Codec, stream: list[list[bytes]]) -> list[np.ndarray]:
    """What aiortc's own depayloader + PyAV make of the same packets."""
    from aiortc.codecs import depayload

    ctx = av.CodecContext.create(codec, "r")
    out = []
    for pkts in stream:
        data = b"".join(depayload(PARAMS[codec], RtpPacket.parse(p).payload) for p in pkts)
        for pic in ctx.decode(av.Packet(data)):
            out.append(pic.to_ndarray(format="gray"))
    return out


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_reassembled_frames_decode_to_the_same_pictures(codec: Codec) -> None:
    stream = rtp_stream(codec, 8, keyframes={0, 5})
    assert max(len(p) for p in stream) > 3  # fragmented frames are exercised
    d = Depacketizer(codec)
    frames = [f for pkts in stream for p in pkts for f in d.push(p)]
    assert len(frames) == 8
    assert [f.keyframe for f in frames] == [i in (0, 5) for i in range(8)]
    assert all(f.complete for f in frames)
    assert [f.packets for f in frames] == stream  # the original packets, untouched
    ours, ref = decode_all(codec, frames), reference_decode(codec, stream)
    assert len(ours) == len(ref) >= 7
    for a, b in zip(ours, ref, strict=True):
        assert np.array_equal(a, b)
    assert not d.dropped


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_a_lost_packet_makes_its_frame_incomplete_and_keeps_the_rest(codec: Codec) -> None:
    stream = rtp_stream(codec, 4)
    d = Depacketizer(codec)
    frames: list[EncodedFrame] = []
    lost = stream[1][0]  # first packet of the first delta frame
    for pkts in stream:
        for p in pkts:
            if p is not lost:
                frames.extend(d.push(p))
    assert [f.complete for f in frames] == [True, False, True, True]
    assert frames[1].data == b"" and frames[1].packets == stream[1][1:]


def test_lost_marker_packet_is_noticed_when_the_next_frame_starts() -> None:
    stream = rtp_stream("vp8", 3)
    d = Depacketizer("vp8")
    frames: list[EncodedFrame] = []
    for i, pkts in enumerate(stream):
        for p in pkts[:-1] if i == 1 else pkts:
            frames.extend(d.push(p))
    assert [f.complete for f in frames] == [True, False, False]  # frame 2 follows a gap


def test_late_and_duplicate_packets_are_discarded() -> None:
    stream = rtp_stream("vp8", 3)
    d = Depacketizer("vp8")
    flat = [p for pkts in stream for p in pkts]
    frames = []
    for i, p in enumerate(flat):
        frames += d.push(p)
        frames += d.push(p)  # duplicate
        if i > 2:
            frames += d.push(flat[i - 2])  # late
    assert [f.complete for f in frames] == [True, True, True]
    assert d.dropped["late"] == len(flat) + len(flat) - 3


def test_malformed_payload_is_incomplete_not_an_error() -> None:
    d = Depacketizer("h264")
    bad = RtpPacket(payload_type=102, marker=1, sequence_number=1, timestamp=1, payload=b"\x1e")
    (frame,) = d.push(bad.serialize())  # NAL type 30 is not supported
    assert not frame.complete and d.dropped["malformed"] == 1
    assert d.push(b"\x80\x66\x00\x02" + bytes(4)) == []  # truncated header: counted, ignored
    assert d.dropped["malformed"] == 1 and sum(d.dropped.values()) == 2


def test_a_restarted_sender_is_a_new_start_not_late_packets() -> None:
    stream = rtp_stream("vp8", 3)
    d = Depacketizer("vp8")
    frames = [f for p in stream[0] for f in d.push(p)]
    # the sender restarts: new sequence numbers far behind the old ones
    restarted = [RtpPacket.parse(p) for pkts in rtp_stream("vp8", 2) for p in pkts]
    for p in restarted:
        p.sequence_number = (p.sequence_number - 20000) & 0xFFFF
        frames += d.push(p.serialize())
    # the restarted stream begins with a keyframe: decodable at once
    assert [(f.complete, f.keyframe) for f in frames] == [(True, True), (True, True), (True, False)]
    assert d.dropped["late"] == 0


def test_a_jump_into_a_delta_frame_is_a_gap() -> None:
    stream = rtp_stream("vp8", 3)
    d = Depacketizer("vp8")
    frames = [f for p in stream[0] for f in d.push(p)]
    for p in stream[2]:  # 4000 packets later, mid-stream: the decoder lacks a reference
        q = RtpPacket.parse(p)
        q.sequence_number = (q.sequence_number + 4000) & 0xFFFF
        frames += d.push(q.serialize())
    assert [f.complete for f in frames] == [True, False]
