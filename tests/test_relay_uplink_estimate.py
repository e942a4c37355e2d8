"""UplinkEstimate: aiortc's receive-side estimator, fed at the relay with the clock passed in."""

from __future__ import annotations

from aiortc.rate import RemoteBitrateEstimator
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.uplink_estimate import UplinkEstimate
from tests.support.paced_video import paced_video


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
    ours, reference = UplinkEstimate(), RemoteBitrateEstimator()
    for ms, ast, n in paced_video(send_bps, link_bps, 5.0, size):
        expected = reference.add(ms, ast, n, 1)
        assert ours.on_packet(ast, n, ms / 1000) == (None if expected is None else expected[0])


def test_a_pause_restarts_the_rate_like_aiortcs() -> None:
    ours, reference = UplinkEstimate(), RemoteBitrateEstimator()
    packets = list(paced_video(500_000, 5_000_000, 4.0))
    later = [(ms + 30_000, ast, n) for ms, ast, n in packets]  # 26 s without packets
    for ms, ast, n in packets + later:
        expected = reference.add(ms, ast, n, 1)
        assert ours.on_packet(ast, n, ms / 1000) == (None if expected is None else expected[0])
