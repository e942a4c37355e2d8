"""Strict benchmark: its measuring helpers, its clip, and a short smoke run (no timing asserts)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from bench import strict_bench as sb
from bench.relay_clip import FPS
from fastpath.scene import luma_signature, signature_distance
from relay.strict.gate import GateConfig
from relay.strict.moderation import SIGNATURE_GRID


def rtp_with_picture_id(picture_id: int | None, ts: int = 0) -> bytes:
    """An RTP packet whose VP8 descriptor carries a 15-bit picture id (or none)."""
    if picture_id is None:
        descriptor = bytes([0x10])
    else:
        descriptor = bytes([0x90, 0x80, 0x80 | picture_id >> 8, picture_id & 0xFF])
    pkt = RtpPacket(payload_type=96, timestamp=ts, payload=descriptor + b"\x00" * 10)
    return pkt.serialize()


def test_frame_index_reads_the_picture_id_of_the_released_packet() -> None:
    assert sb.frame_index(rtp_with_picture_id(137)) == 137
    assert sb.frame_index(rtp_with_picture_id(3)) == 3
    with pytest.raises(ValueError):
        sb.frame_index(rtp_with_picture_id(None))


def test_leaks_are_released_frames_of_unsafe_segments_only() -> None:
    unsafe = frozenset(range(110, 140))
    assert sb.count_leaks([0, 109, 140, 239], unsafe) == 0
    assert sb.count_leaks([109, 110, 139, 139, 140], unsafe) == 3  # repeats count: each a frame
    assert frozenset(range(110, 140)) == sb.UNSAFE  # the astronaut segment of the clip


def test_latency_is_release_minus_arrival_of_the_same_frame() -> None:
    arrived = {0: 1.0, 3000: 1.033, 6000: 1.066}
    got = sb.latencies(arrived, [(0, 1.002), (6000, 1.1), (3000, 1.1)])
    assert got == pytest.approx([0.002, 0.034, 0.067])
    with pytest.raises(KeyError):
        sb.latencies(arrived, [(9000, 1.2)])


def test_stream_phases_are_random_within_a_frame_and_the_clip() -> None:
    phases = sb.stream_phases(16, 240, random.Random(7))
    assert phases == sb.stream_phases(16, 240, random.Random(7))  # reproducible from the seed
    assert all(0 <= d < 1 / FPS and 0 <= i < 240 for d, i in phases)
    assert len({i for _, i in phases}) > 8 and len({d for d, _ in phases}) == 16  # not in step


def test_a_keyframe_request_moves_the_sender_to_the_nearest_keyframe() -> None:
    packetizer = sb.Packetizer(sb.strict_clip(), ssrc=1, offset=29)
    packetizer.keyframe_wanted = True
    assert packetizer.next_frame()[0] == 0  # 29 is nearer 0 than 60
    assert packetizer.next_frame()[0] == 1  # and it goes on from there


def test_cuts_change_the_scene_and_the_camera_motion_does_not() -> None:
    """Each cut must be a scene change for the gate, and a frame-to-frame step within a
    segment must not: otherwise the benchmark tests a different path than it claims."""
    threshold = GateConfig().scene_threshold
    assert all(d > 4 * threshold for d in sb.cut_distances())
    sig = [np.empty(SIGNATURE_GRID, np.float32) for _ in range(2)]
    for i in (1, 30, 112, 200):
        for k, j in enumerate((i, i + 1)):
            y = np.asarray(cv2.cvtColor(sb.draw(j), cv2.COLOR_RGB2GRAY), np.uint8)
            luma_signature(y, sig[k])
        assert signature_distance(sig[0], sig[1]) < threshold / 2


@pytest.mark.timeout(120)
def test_smoke_run_counts_no_leak_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "strict.json"
    argv = ["--streams", "2", "--seconds", "1", "--warmup", "1"]
    assert sb.main([*argv, "--fastpath-frames", "10", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (run,) = data["runs"]
    assert run["streams"] == 2 and run["leaked_unsafe_frames"] == 0
    assert run["sent_fps_per_stream"] > 0 and run["gate_latency"]["count"] > 0
    assert data["fastpath_640x480"]["speedup_vs_opencv"] > 0


def _strict_run(fps: list[float], p99_ms: float, leaked: int = 0) -> dict[str, object]:
    return {
        "decided_fps_by_stream": fps,
        "gate_latency": {"p99_ms": p99_ms},
        "leaked_unsafe_frames": leaked,
    }


def test_strict_levels_need_every_stream_at_rate_p99_under_target_and_no_leak() -> None:
    levels = sb.StrictLevels(min_fps=29.0, max_gate_p99_ms=50.0)
    assert levels.failures(_strict_run([30.1, 29.0], 49.0)) == []
    (slow,) = levels.failures(_strict_run([30.0, 30.0, 28.9], 10.0))
    assert slow == "slowest stream decided 28.9 fps < 29 fps"  # one slow stream is enough
    (latency,) = levels.failures(_strict_run([30.0], 50.0))
    assert latency == "gate latency p99 50.0 ms >= 50 ms"
    assert levels.failures(_strict_run([30.0], float("nan"))) != []  # nothing released
    (leak,) = levels.failures(_strict_run([30.0], 1.0, leaked=1))
    assert leak == "1 unsafe frames leaked"  # a leak fails the best load
    assert len(levels.failures(_strict_run([], 70.0, leaked=2))) == 3


@pytest.mark.timeout(180)
def test_through_the_service_no_unsafe_frame_reaches_a_receiver(tmp_path: Path) -> None:
    """Two users on the strict route of a `chatguard serve` it starts, one whole clip loop.

    The direct pair in the same run is not moderated, so it must see the unsafe segment: that
    shows the leak counter counts, and the relayed receivers' zero means something.
    """
    out = tmp_path / "strict-service.json"
    argv = ["--service", "--pairs", "2", "--duration", "9", "--warmup", "0.5"]
    assert sb.main([*argv, "--next-after", "off", "--no-audio", "--json", str(out)]) == 0
    (case,) = json.loads(out.read_text())["cases"]
    assert case["relay"] == "strict" and case["pairs"] == 1
    assert case["unsafe_frames_received"] == 0
    assert case["packets"]["direct"]["unsafe_frames"] > 0
    assert case["moderation_notices"].get("partner:blocked", 0) >= 1
    assert case["delivered_fps"]["streams"] == 2 and case["errors"] == []
    assert case["latency_ms"]["relayed"]["count"] > 0
    # the worker's own figures, read from the service's /stats
    moderation = case["worker_moderation"]
    assert moderation["classified_per_s"] > 0 and moderation["gate_p99_ms_worst_second"] > 0
