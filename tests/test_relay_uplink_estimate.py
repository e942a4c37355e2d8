"""UplinkEstimate: aiortc's receive-side estimator, fed at the relay with the clock passed in."""

from __future__ import annotations

from collections.abc import Iterator

from aiortc.rate import RemoteBitrateEstimator
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.rtp import ABS_SEND_TIME_UNITS
from relay.uplink_estimate import UplinkEstimate


def paced_video(
    send_bps: int, link_bps: int, seconds: float, packet: int = 1200, fps: int = 30
) -> Iterator[tuple[int, int, int]]:
    """``(arrival ms, abs-send-time, payload bytes)`` of a sender at ``send_bps`` whose packets
    queue behind a ``link_bps`` bottleneck (a frame's packets leave together)."""
    per_frame = max(1, send_bps // fps // 8 // packet)
    free_at = 0.0
    for frame in range(int(seconds * fps)):
        sent = frame / fps
        for _ in range(per_frame):
            free_at = max(free_at, sent) + packet * 8 / link_bps
            yield int(free_at * 1000), round(sent * ABS_SEND_TIME_UNITS) & 0xFFFFFF, packet


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
