"""The strict workload's load: frames identified by their picture id, leaks and latency counted
per frame, senders out of step, keyframe requests answered."""

from __future__ import annotations

import random

import pytest
from aiortc.rtp import RtpPacket

from bench import strict_load as sl
from bench.relay_clip import FPS
from bench.strict_clip import UNSAFE, strict_clip


def rtp_with_picture_id(picture_id: int | None, ts: int = 0) -> bytes:
    """An RTP packet whose VP8 descriptor carries a 15-bit picture id (or none)."""
    if picture_id is None:
        descriptor = bytes([0x10])
    else:
        descriptor = bytes([0x90, 0x80, 0x80 | picture_id >> 8, picture_id & 0xFF])
    pkt = RtpPacket(payload_type=96, timestamp=ts, payload=descriptor + b"\x00" * 10)
    return pkt.serialize()


def test_frame_index_reads_the_picture_id_of_the_released_packet() -> None:
    assert sl.frame_index(rtp_with_picture_id(137)) == 137
    assert sl.frame_index(rtp_with_picture_id(3)) == 3
    with pytest.raises(ValueError):
        sl.frame_index(rtp_with_picture_id(None))


def test_leaks_are_released_frames_of_unsafe_segments_only() -> None:
    unsafe = frozenset(range(110, 140))
    assert sl.count_leaks([0, 109, 140, 239], unsafe) == 0
    assert sl.count_leaks([109, 110, 139, 139, 140], unsafe) == 3  # repeats count: each a frame
    assert frozenset(range(110, 140)) == UNSAFE  # the astronaut segment of the clip


def test_latency_is_release_minus_arrival_of_the_same_frame() -> None:
    arrived = {0: 1.0, 3000: 1.033, 6000: 1.066}
    got = sl.latencies(arrived, [(0, 1.002), (6000, 1.1), (3000, 1.1)])
    assert got == pytest.approx([0.002, 0.034, 0.067])
    with pytest.raises(KeyError):
        sl.latencies(arrived, [(9000, 1.2)])


def test_stream_phases_are_random_within_a_frame_and_the_clip() -> None:
    phases = sl.stream_phases(16, 240, random.Random(7))
    assert phases == sl.stream_phases(16, 240, random.Random(7))  # reproducible from the seed
    assert all(0 <= d < 1 / FPS and 0 <= i < 240 for d, i in phases)
    assert len({i for _, i in phases}) > 8 and len({d for d, _ in phases}) == 16  # not in step


@pytest.mark.slow
def test_a_keyframe_request_moves_the_sender_on_to_the_next_keyframe() -> None:
    packetizer = sl.Packetizer(strict_clip(), ssrc=1, offset=29)
    packetizer.keyframe_wanted = True
    assert packetizer.next_frame()[0] == 60  # never back in time, though 0 is nearer
    assert packetizer.next_frame()[0] == 61  # and it goes on from there
