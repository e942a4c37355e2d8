"""The relay-leg transition table: every pair it lists, and that every other pair is refused."""

from __future__ import annotations

import itertools

import pytest

from signaling.relay_leg_states import (
    TRANSITIONS,
    IllegalLegTransition,
    LegEvent,
    LegState,
    advance,
    allows,
)

S, E = LegState, LegEvent


def test_a_leg_lives_opening_answered_connected_parked_adopted_closed() -> None:
    state = S.OPENING
    for event, expected in [
        (E.ANSWERED, S.ANSWERED),
        (E.CONNECTED, S.CONNECTED),
        (E.PARKED, S.PARKED),
        (E.ADOPTED, S.CONNECTED),
        (E.CLOSED, S.CLOSED),
    ]:
        state = advance(state, event)
        assert state is expected


@pytest.mark.parametrize("state", [s for s in S if s is not S.CLOSED])
def test_every_open_leg_can_close(state: LegState) -> None:
    assert advance(state, E.CLOSED) is S.CLOSED


@pytest.mark.parametrize("event", list(E))
def test_a_closed_leg_takes_no_event(event: LegEvent) -> None:
    with pytest.raises(IllegalLegTransition, match="closed cannot be"):
        advance(S.CLOSED, event)


@pytest.mark.parametrize("state", [S.OPENING, S.ANSWERED, S.CLOSED])
def test_only_a_connected_leg_is_worth_parking(state: LegState) -> None:
    assert not allows(state, E.PARKED)
    with pytest.raises(IllegalLegTransition):
        advance(state, E.PARKED)


def test_illegal_pairs_are_exactly_those_missing_from_the_table() -> None:
    for state, event in itertools.product(S, E):
        if (state, event) in TRANSITIONS:
            assert advance(state, event) is TRANSITIONS[state, event]
        else:
            with pytest.raises(IllegalLegTransition) as info:
                advance(state, event)
            assert (info.value.state, info.value.event) == (state, event)


def test_late_worker_reports_are_refused_not_acted_on() -> None:
    """A second answer, or media connected before any answer, is a worker's mistake."""
    assert not allows(S.ANSWERED, E.ANSWERED)
    assert not allows(S.CONNECTED, E.ANSWERED)
    assert not allows(S.OPENING, E.CONNECTED)
    assert advance(S.PARKED, E.CONNECTED) is S.PARKED  # a kept leg stays kept
