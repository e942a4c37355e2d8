"""SenderBitrate: the lower of the relay's own estimate and the receiver's REMB plus what the
relay withheld; the own estimate alone, once a second, when the receiver sends none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.sender_bitrate import (
    LOSS_MEMORY_S,
    OWN_REMB_INTERVAL_S,
    RECEIVER_REMB_STALE_S,
    Remb,
    SenderBitrate,
)


def test_nothing_withheld_passes_the_receivers_remb_unchanged() -> None:
    b = SenderBitrate()
    assert b.on_remb(500_000, 0, 0, 0, 0.0).bps == 500_000
    assert b.on_remb(450_000, 100, 125_000, 100, 1.0).bps == 450_000  # relay route: all forwarded


def test_the_withheld_rate_is_added_so_the_gate_never_squeezes_the_sender() -> None:
    b = SenderBitrate()
    b.on_remb(100_000, 0, 0, 0, 0.0)
    # 1 s: 100 packets, 100 kB (800 kbit/s) in, 10 forwarded: 720 kbit/s withheld
    assert b.on_remb(120_000, 100, 100_000, 10, 1.0).bps == 120_000 + 720_000
    assert b.withheld_bps == 720_000
    # a REMB 0.1 s later (a receiver's prompt decrease) reuses the last interval's rate
    assert b.on_remb(60_000, 110, 110_000, 11, 1.1).bps == 60_000 + 720_000
    # 2 s without packets (the sender paused): nothing was withheld
    assert b.on_remb(60_000, 100, 100_000, 10, 3.0).bps == 60_000 + 720_000 - 720_000


@pytest.mark.parametrize(
    ("receiver_bps", "withheld", "own_bps", "told"),
    [
        # both present: the lower wins, the withheld rate counting on the receiver's side
        (900_000, False, 600_000, Remb(600_000, "own")),
        (400_000, False, 600_000, Remb(400_000, "receiver")),
        (100_000, True, 600_000, Remb(600_000, "own")),  # 100k + 720k withheld > own
        (50_000_000, False, 600_000, Remb(600_000, "own")),  # a huge REMB: the uplink bounds it
        # the own estimate not ready yet: the receiver's figure, as before
        (900_000, False, None, Remb(900_000, "receiver")),
        (100_000, True, None, Remb(820_000, "receiver")),
    ],
)
def test_a_receivers_remb_tells_the_lower_of_the_two(
    receiver_bps: int, withheld: bool, own_bps: int | None, told: Remb
) -> None:
    b = SenderBitrate()
    b.on_remb(receiver_bps, 0, 0, 0, 0.0, own_bps)
    forwarded = 10 if withheld else 100  # of 100 packets, 800 kbit/s
    assert b.on_remb(receiver_bps, 100, 100_000, forwarded, 1.0, own_bps) == told


def test_a_gated_streams_receiver_bounds_the_sender_only_after_reporting_loss() -> None:
    b = SenderBitrate()
    assert b.on_remb(150_000, 0, 0, 0, 0.0, 700_000, gated=True) == Remb(700_000, "own_gated")
    assert b.on_remb(150_000, 0, 0, 0, 0.0, 700_000) == Remb(150_000, "receiver")  # relay route
    b.on_receiver_loss(4, 1.0)  # 1.6 %: not congestion
    assert b.on_remb(150_000, 0, 0, 0, 1.5, 700_000, gated=True).bound == "own_gated"
    b.on_receiver_loss(6, 2.0)  # 2.3 %
    assert b.on_remb(150_000, 0, 0, 0, 2.5, 700_000, gated=True) == Remb(150_000, "receiver")
    assert b.on_remb(150_000, 0, 0, 0, 2.0 + LOSS_MEMORY_S, 700_000, gated=True).bound == (
        "own_gated"
    )
    # the own estimate not ready: the receiver's figure, gated or not
    assert b.on_remb(150_000, 0, 0, 0, 9.0, None, gated=True) == Remb(150_000, "receiver")


def test_without_receiver_rembs_the_own_estimate_goes_alone_once_a_second() -> None:
    b = SenderBitrate()
    assert b.on_own_estimate(700_000, 0.0) == Remb(700_000, "own_alone")
    assert b.on_own_estimate(750_000, 0.5) is None  # a rise waits for the second
    assert b.on_own_estimate(760_000, OWN_REMB_INTERVAL_S) == Remb(760_000, "own_alone")
    assert b.on_own_estimate(500_000, 1.2) == Remb(500_000, "own_alone")  # a fall: at once
    assert b.on_own_estimate(495_000, 1.4) is None  # under 3 %: not a fall worth a REMB


def test_a_recent_receivers_remb_leaves_the_own_estimate_to_falls_under_it() -> None:
    b = SenderBitrate()
    assert b.on_remb(300_000, 0, 0, 0, 0.0, 900_000) == Remb(300_000, "receiver")
    assert b.on_own_estimate(950_000, 1.0) is None  # the receiver's bound stands
    assert b.on_own_estimate(295_000, 1.5) is None  # under 3 % below what was sent
    assert b.on_own_estimate(200_000, 2.0) == Remb(200_000, "own")  # the uplink fell under it
    # the receiver went quiet: the own estimate alone, bounded by nothing else
    assert b.on_own_estimate(260_000, 2.5) is None
    assert b.on_own_estimate(260_000, RECEIVER_REMB_STALE_S) is None  # the REMB is 2.5 s old
    assert b.on_own_estimate(260_000, 3.0) == Remb(260_000, "own_alone")


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**7),
            st.integers(0, 50),
            st.integers(0, 50),
            st.one_of(st.none(), st.integers(0, 10**7)),
        ),
        max_size=30,
    )
)
def test_never_more_than_the_own_estimate_nor_less_than_the_lower_of_both(
    steps: list[tuple[int, int, int, int | None]],
) -> None:
    b = SenderBitrate()
    received = forwarded = 0
    for i, (remb, got, passed, own) in enumerate(steps):
        received += got
        forwarded += min(passed, got)
        told = b.on_remb(remb, received, received * 1000, forwarded, i * 0.5, own)
        assert told.bps >= (remb if own is None else min(remb, own))
        if own is not None:
            assert told.bps <= own
