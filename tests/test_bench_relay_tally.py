"""The relay workload's measurement windows: frame rate per stream over its call time, loss,
added latency, and which side saturated."""

from __future__ import annotations

import pytest

from bench.relay_tally import Tally, added_latency_ms, bottleneck, fps_summary, packet_loss
from bench.results import AddedLatency, FpsSummary
from bench.stats import Percentiles


def test_added_latency_is_relayed_minus_direct_per_percentile() -> None:
    relayed = Percentiles(10, 1.5, 2.0, 4.0, 5.0)
    direct = Percentiles(10, 0.5, 0.75, 1.0, 1.0)
    assert added_latency_ms(relayed, direct) == AddedLatency(1.0, 1.25, 3.0)
    nothing = Percentiles(0, None, None, None, None)  # no direct frame: nothing to subtract
    assert added_latency_ms(relayed, nothing) == AddedLatency(None, None, None)


def _group(frames: list[int], media_s: list[float], packets: int, sent: int) -> dict[str, object]:
    return {
        "frames": frames,
        "media_s": media_s,
        "packets": packets,
        "sent": sent,
        "audio_packets": packets // 2,
        "audio_sent": sent // 2,
        "latency_s": [0.001],
        "unsafe_frames": 0,
        "replayed_frames": 0,
    }


def test_tally_gives_frame_rate_per_stream_over_its_call_time() -> None:
    t = Tally()
    report = {
        "relayed": _group([30, 15], [1.0, 1.0], 200, 210),
        "direct": _group([30], [1.0], 100, 100),
        "send_lag_s": [0.0],
        "receive_errors": 0,
        "calls": {
            "started": 2,
            "reused": 1,
            "nexts": 1,
            "ended": 1,
            "without_media": 0,
            "error_count": 0,
            "switch_s": [0.2],
            "routes": {"relay": 2},
            "moderation": {},
            "errors": [],
        },
    }
    t.add(0, report)
    # the second stream was between calls for half of the next second
    t.add(0, report | {"relayed": _group([30, 15], [1.0, 0.5], 200, 210)})
    t.add(1, report | {"relayed": _group([60, 0], [2.0, 0.5], 200, 210)})
    assert t.fps("relayed") == [30.0, 20.0, 30.0]  # (1, 1) had 0.5 s in a call: not judged
    summary = fps_summary(t.fps("relayed"))
    assert summary.streams_at_full_rate == 2 and summary.min == 20.0
    assert fps_summary([]) == FpsSummary(0, None, None, None, 0)  # no stream: no figure
    assert t.packets("relayed").sent == 630 and t.call_counts().started == 6
    assert len(t.latency_s["relayed"]) == 3 and t.counts["relayed"]["packets"] == 600
    assert t.counts["relayed"]["sent"] == 630 and t.counts["direct"]["audio_sent"] == 150
    assert t.calls["started"] == 6 and t.routes == {"relay": 6} and t.switch_s == [0.2] * 3
    assert t.legs_by_transport() == {}  # the naive relay's reports say nothing of it


def test_legs_by_transport_are_the_last_seen_per_load_generator_summed() -> None:
    t = Tally()
    empty = _group([], [], 0, 0)
    report = {"relayed": empty, "direct": empty, "send_lag_s": [], "receive_errors": 0}
    t.add(0, report | {"leg_transports": {"tcp": 1}})
    t.add(0, report | {"leg_transports": {"tcp": 3}})
    t.add(1, report | {"leg_transports": {"tcp": 2, "udp": 1}})
    assert t.legs_by_transport() == {"tcp": 5, "udp": 1}


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
    assert bottleneck(None, [40.0], None, 0.0) == "none"  # a remote relay that said nothing
