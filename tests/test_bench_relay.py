"""Relay benchmark: the measuring arithmetic, and a tiny smoke run. Never asserts timings."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from bench import relay_bench
from bench.relay_bench import (
    Tally,
    added_latency_ms,
    bottleneck,
    cpu_pressure_us_from_psi,
    cpu_seconds_from_stat,
    fps_summary,
    packet_loss,
    percent_of_core,
    rss_kib_from_status,
    run_delay_s_from_schedstat,
)
from bench.relay_clip import read_barcode, stamp_barcode, vp8_picture_id
from bench.relay_procs import FrameTracker, frame_latency


def test_cpu_seconds_reads_utime_and_stime_after_the_command_name() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    stat = "4242 (python (relay) x) S 1 2 3 4 5 6 7 8 9 10 250 150 7 7 20 0 3"
    assert cpu_seconds_from_stat(stat, 100) == pytest.approx(4.0)
    assert percent_of_core(4.0, 4.5, 2.0) == pytest.approx(25.0)
    assert math.isnan(percent_of_core(1.0, 2.0, 0.0))


def test_rss_is_read_from_status() -> None:
    status = "Name:\tpython\nVmPeak:\t  9000 kB\nVmRSS:\t  51234 kB\nThreads:\t3\n"
    assert rss_kib_from_status(status) == 51234
    with pytest.raises(ValueError):
        rss_kib_from_status("Name:\tx\n")


def test_cpu_pressure_is_read_from_psi() -> None:
    psi = (
        "some avg10=69.64 avg60=53.58 avg300=33.70 total=372617454\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    assert cpu_pressure_us_from_psi(psi) == 372617454
    assert run_delay_s_from_schedstat("310073393 3131923000 45\n") == pytest.approx(3.131923)
    with pytest.raises(ValueError):
        cpu_pressure_us_from_psi("full avg10=0.00 total=0\n")


def test_added_latency_is_relayed_minus_direct_per_percentile() -> None:
    relayed = {"p50_ms": 1.5, "p90_ms": 2.0, "p99_ms": 4.0}
    direct = {"p50_ms": 0.5, "p90_ms": 0.75, "p99_ms": 1.0}
    assert added_latency_ms(relayed, direct) == {"p50_ms": 1.0, "p90_ms": 1.25, "p99_ms": 3.0}


def test_frame_tracker_counts_only_gapless_frames() -> None:
    t = FrameTracker()
    # first frame: its start may have been missed, not counted
    assert not t.on_packet(65534, False)
    assert not t.on_packet(65535, True)
    # a whole frame across the sequence number wrap
    assert not t.on_packet(0, False)
    assert t.on_packet(1, True)
    # a frame with a lost packet (seq 3)
    assert not t.on_packet(2, False)
    assert not t.on_packet(4, True)
    # the next one is whole again
    assert t.on_packet(5, True)
    assert (t.frames, t.incomplete) == (2, 2)


def _rtp(payload: bytes, csrcs: int = 0, extension: bool = False) -> bytes:
    b0 = 0x80 | csrcs | (0x10 if extension else 0)
    header = struct.pack("!BBHII", b0, 0x80 | 96, 7, 9000, 0x1234) + bytes(4 * csrcs)
    if extension:
        header += struct.pack("!HH", 0xBEDE, 1) + bytes([0x32, 1, 2, 3])
    return header + payload


def test_picture_id_and_frame_latency() -> None:
    short = bytes([0x90, 0x80, 0x05]) + b"vp8"  # X, I; 7-bit picture id 5
    long = bytes([0x90, 0x80, 0x80 | 0x01, 0x02]) + b"vp8"  # 15-bit picture id 258
    assert vp8_picture_id(short, 0) == 5
    assert vp8_picture_id(long, 0) == 258
    assert vp8_picture_id(bytes([0x10, 0x00, 0x05]), 0) is None  # no extension byte
    sent_at = [0.0] * 300
    sent_at[5] = 10.0
    sent_at[258] = 20.0
    assert frame_latency(_rtp(short, csrcs=2, extension=True), sent_at, 10.25) == 0.25
    assert frame_latency(_rtp(long), sent_at, 20.5) == 0.5
    sent_at[5] = 0.0  # never sent
    assert frame_latency(_rtp(short), sent_at, 11.0) is None
    assert frame_latency(_rtp(short), None, 11.0) is None


def test_barcode_round_trip() -> None:
    img = np.full((480, 640, 3), 90, dtype=np.uint8)
    for value in (0, 1, 77, 255):
        stamp_barcode(img, value)
        assert read_barcode(img[:, :, 0]) == value


def test_tally_gives_frame_rate_per_stream_over_each_workers_time() -> None:
    t = Tally()
    report = {
        "interval_s": 1.0,
        "relayed": {"frames": [30, 15], "packets": 200, "sent": 210, "latency_s": [0.001]},
        "direct": {"frames": [30], "packets": 100, "sent": 100, "latency_s": [0.0005]},
        "send_lag_s": [0.0],
        "receive_errors": 0,
    }
    t.add(0, report)
    t.add(0, report | {"interval_s": 0.5})
    t.add(1, report | {"interval_s": 2.0})
    assert t.fps("relayed") == [40.0, 20.0, 15.0, 7.5]
    summary = fps_summary(t.fps("relayed"))
    assert summary["streams_at_full_rate"] == 1 and summary["min"] == 7.5
    assert len(t.latency_s["relayed"]) == 3 and t.packets == {"relayed": 600, "direct": 300}
    assert t.sent == {"relayed": 630, "direct": 300}


def test_packet_loss_is_the_share_of_sent_packets_that_never_arrived() -> None:
    assert packet_loss(630, 600) == pytest.approx(30 / 630)
    assert packet_loss(300, 300) == 0.0
    assert packet_loss(300, 301) == 0.0  # in flight at the span's edges, not a gain
    assert packet_loss(0, 0) is None  # naive relay: aiortc's sender is not counted


def test_bottleneck_names_the_saturated_side() -> None:
    assert bottleneck(95.0, [40.0], 1.0, 0.0) == "relay"
    assert bottleneck(50.0, [97.0], 1.0, 0.0) == "load generator"
    assert bottleneck(50.0, [40.0], 8.0, 0.0) == "machine"
    assert bottleneck(50.0, [40.0], 1.0, 30.0) == "machine"
    assert bottleneck(50.0, [40.0, 30.0], 1.0, 5.0) == "none"


@pytest.mark.timeout(180)
def test_smoke_run_measures_both_relays_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "relay.json"
    args = ["--pairs", "1", "--naive-pairs", "1", "--duration", "2", "--warmup", "2"]
    args += ["--clip-seconds", "2", "--micro", "--profile", "--json", str(out)]
    assert relay_bench.main(args) == 0
    result = json.loads(out.read_text())
    assert result["versions"]["aiortc"].startswith("1.16")
    assert result["clip"]["bitrate_bps"] > 0 and result["micro_hub_us_per_packet"] > 0
    forward, naive = result["cases"]
    assert (forward["relay"], naive["relay"]) == ("forward", "naive")
    for case in (forward, naive):
        assert case["delivered_fps"]["streams"] == 2 and case["delivered_fps"]["mean"] > 0
        assert case["direct_fps"]["mean"] > 0
        latency = case["latency_ms"]
        assert latency["relayed"]["count"] > 0 and latency["direct"]["count"] > 0
        assert latency["relayed"]["p50_ms"] > 0 and not math.isnan(latency["added"]["p99_ms"])
        assert case["relay_cpu_percent_of_core"] > 0 and case["relay_cpu_percent_per_stream"] > 0
        assert case["relay_rss_kib"]["loaded"] > 0 and case["relay_runqueue_wait_percent"] >= 0
        assert "memory_per_session_kib" in case and case["loadgen_srtp_errors"] == 0
        assert case["peers_connected"] == "4/4"
    assert forward["packets_sent"]["relayed"] > 0 and forward["packet_loss"]["relayed"] < 0.5
    assert naive["packet_loss"]["relayed"] is None
    assert forward["relay_counters"]["forwarded"] > 0
    assert forward["relay_counters"]["fast_path_legs"] == 2
    assert forward["profile"] and forward["profile"][0]["tottime_s"] > 0
    assert "profile" not in naive
