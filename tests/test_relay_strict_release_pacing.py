"""ReleasePacer: a burst of released frames goes out at twice their pace, a lone frame at once."""

from __future__ import annotations

import pytest

from relay.strict.release_pacing import ReleasePacer


def test_a_frame_released_alone_goes_at_once() -> None:
    pacer = ReleasePacer()
    assert pacer.due(arrival=1.0, now=1.08) == 1.08
    assert pacer.due(arrival=1.033, now=1.12) == 1.12  # its gap has passed already


def test_a_burst_goes_out_at_twice_the_pace_it_came_in() -> None:
    pacer = ReleasePacer()
    arrivals = [1.0 + i / 30 for i in range(6)]  # 6 frames held for one verdict at 1.3
    due = [pacer.due(a, 1.3) for a in arrivals]
    assert due == pytest.approx([1.3 + i / 60 for i in range(6)])
    assert pacer.due(1.0 + 6 / 30, 1.31) == pytest.approx(1.3 + 6 / 60)  # the queue goes on
    assert pacer.due(3.0, 3.0) == 3.0  # and is gone once it drained


def test_never_earlier_than_released() -> None:
    pacer = ReleasePacer(speedup=4.0)
    for i, now in enumerate([0.5, 0.5, 2.0, 2.0, 2.01]):
        assert pacer.due(i * 0.1, now) >= now
