"""SenderBitrate: the receiver's REMB plus what the relay withheld, never less than the REMB."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.sender_bitrate import SenderBitrate


def test_nothing_withheld_passes_the_receivers_remb_unchanged() -> None:
    b = SenderBitrate()
    assert b.on_remb(500_000, 0, 0, 0, 0.0) == 500_000
    assert b.on_remb(450_000, 100, 125_000, 100, 1.0) == 450_000  # relay route: all forwarded


def test_the_withheld_rate_is_added_so_the_gate_never_squeezes_the_sender() -> None:
    b = SenderBitrate()
    b.on_remb(100_000, 0, 0, 0, 0.0)
    # 1 s: 100 packets, 100 kB (800 kbit/s) in, 10 forwarded: 720 kbit/s withheld
    assert b.on_remb(120_000, 100, 100_000, 10, 1.0) == 120_000 + 720_000
    assert b.withheld_bps == 720_000
    # a REMB 0.1 s later (a receiver's prompt decrease) reuses the last interval's rate
    assert b.on_remb(60_000, 110, 110_000, 11, 1.1) == 60_000 + 720_000
    # 2 s without packets (the sender paused): nothing was withheld
    assert b.on_remb(60_000, 100, 100_000, 10, 3.0) == 60_000 + 720_000 - 720_000


@given(
    st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 50), st.integers(0, 50)), max_size=30)
)
def test_never_less_than_the_receivers_remb(steps: list[tuple[int, int, int]]) -> None:
    b = SenderBitrate()
    received = forwarded = 0
    for i, (remb, got, passed) in enumerate(steps):
        received += got
        forwarded += min(passed, got)
        assert b.on_remb(remb, received, received * 1000, forwarded, i * 0.5) >= remb
