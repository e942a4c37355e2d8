"""UplinkEstimate: aiortc's receive-side estimator, fed at the relay with the clock passed in."""

from __future__ import annotations

from collections.abc import Iterable

from aiortc.rate import RemoteBitrateEstimator
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.rtp import ABS_SEND_TIME_UNITS
from relay.uplink_estimate import UplinkEstimate
from tests.support.paced_video import paced_video


def assert_same_as_aiortc(packets: Iterable[tuple[int, int, int]]) -> None:
    """Fed ``(arrival ms, abs-send-time, bytes)``, both give the same estimate after every
    packet, and their filters hold the same state (the same groups and deltas went in)."""
    ours, reference = UplinkEstimate(), RemoteBitrateEstimator()
    for arrival_ms, sent_at, size in packets:
        expected = reference.add(arrival_ms, sent_at, size, 1)
        assert ours.on_packet(sent_at, size, arrival_ms / 1000) == (
            None if expected is None else expected[0]
        )
        filtered = ours._estimator
        assert filtered.num_of_deltas() == reference.estimator.num_of_deltas()
        assert filtered.offset() == reference.estimator.offset()


def test_not_ready_at_first_then_near_what_arrives() -> None:
    est = UplinkEstimate()
    updates = [
        (ms, bps)
        for ms, ast, size in paced_video(864_000, 10_000_000, 6.0)  # 3 packets a frame
        if (bps := est.on_packet(ast, size, ms / 1000)) is not None
    ]
    assert est.bps is not None and updates
    assert updates[0][0] > 3000  # the rate control waits 3 s for a measured rate
    assert 864_000 <= est.bps <= 1.5 * 864_000 + 10_000  # never far past what arrives


def test_a_bottleneck_brings_the_estimate_under_it() -> None:
    est = UplinkEstimate()
    for ms, ast, size in paced_video(1_200_000, 400_000, 12.0):
        est.on_packet(ast, size, ms / 1000)
    assert est.bps is not None and est.bps < 400_000


@settings(max_examples=20, deadline=None)
@given(
    st.integers(100_000, 3_000_000),
    st.integers(100_000, 3_000_000),
    st.integers(300, 1200),
)
def test_same_figures_as_aiortcs_own_estimator(send_bps: int, link_bps: int, size: int) -> None:
    """Only the clock's unit and the rate counter's storage differ from aiortc's wiring."""
    assert_same_as_aiortc(paced_video(send_bps, link_bps, 5.0, size))


def test_a_pause_restarts_the_rate_like_aiortcs() -> None:
    packets = list(paced_video(500_000, 5_000_000, 4.0))
    later = [(ms + 30_000, ast, n) for ms, ast, n in packets]  # 26 s without packets
    assert_same_as_aiortc(packets + later)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 0xFFFFFF),
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 60), st.integers(50, 1300)),
        min_size=1,
        max_size=600,
    ),
)
def test_same_figures_as_aiortcs_through_jitter_reordering_and_the_wrap(
    start: int, steps: list[tuple[int, int, int]]
) -> None:
    """Send gaps of 0-40 ms, network delays of 0-60 ms (so packets overtake each other), and a
    first send time anywhere in abs-send-time's 64 s cycle (so it wraps)."""
    packets, sent_ms = [], 0
    for gap, delay, size in steps:
        sent_ms += gap
        sent_at = (start + sent_ms * ABS_SEND_TIME_UNITS // 1000) & 0xFFFFFF
        packets.append((sent_ms + delay, sent_at, size))
    assert_same_as_aiortc(sorted(packets))
