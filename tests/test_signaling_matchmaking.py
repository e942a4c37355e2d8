"""Matchmaking: unit tests of the rules, and a stateful property test of the invariants."""

from __future__ import annotations

import random

import pytest
from hypothesis import settings

from signaling.matchmaking import (
    Expired,
    Matchmaker,
    MatchmakingError,
    Paired,
    PartnerLost,
    UserState,
)
from tests.support.matchmaking_model import SETTINGS, MatchmakingMachine, drain


def connected(*users: str, now: float = 0.0) -> Matchmaker:
    mm = Matchmaker(SETTINGS, random.Random(0))
    for user in users:
        mm.connect(user, now)
    return mm


def test_two_joiners_are_paired_and_nobody_with_themselves() -> None:
    mm = connected("a", "b")
    mm.join("a", 0)
    assert mm.state_of("a") is UserState.WAITING and drain(mm) == []
    mm.join("b", 0)
    assert drain(mm) == [Paired("b", "a")]
    assert mm.partner_of("a") == "b" and mm.partner_of("b") == "a"
    assert mm.pair_count() == 1 and mm.waiting_count() == 0


def test_next_pairs_the_presser_with_a_third_and_respects_cooldown() -> None:
    mm = connected("a", "b", "c")
    mm.join("a", 0)
    mm.join("b", 0)
    mm.join("c", 0)
    drain(mm)
    mm.next("b", 1)
    assert drain(mm) == [Paired("b", "c"), PartnerLost("a", "b", "next")]
    assert mm.state_of("a") is UserState.WAITING
    mm.next("c", 2)  # b and c part; a is waiting but was with b a moment ago
    events = drain(mm)
    assert events[0] == Paired("c", "a")
    assert mm.state_of("b") is UserState.WAITING
    # b is in cool-down with both a and c; only when a's cool-down with b ends...
    mm.next("a", 3)
    drain(mm)
    assert mm.state_of("a") is UserState.WAITING and mm.state_of("b") is UserState.WAITING
    assert mm.next_timer() == 11  # a-b cool-down started at 1
    mm.handle_timer(11)
    (paired,) = drain(mm)
    assert isinstance(paired, Paired) and {paired.first, paired.second} == {"a", "b"}


def test_interests_pair_first_then_fall_back_to_anyone() -> None:
    mm = connected("chess1", "music", "chess2")
    mm.join("chess1", 0, frozenset({"chess"}))
    mm.join("music", 0, frozenset({"music"}))
    assert mm.waiting_count() == 2
    mm.join("chess2", 1, frozenset({"chess", "go"}))
    assert drain(mm) == [Paired("chess2", "chess1")]
    assert mm.next_timer() == 3  # music's fallback
    mm.connect("plain", 2)
    mm.join("plain", 2)  # no interests: relaxed, but music is not relaxed yet
    assert mm.state_of("plain") is UserState.WAITING
    mm.handle_timer(3)
    assert drain(mm) == [Paired("music", "plain")]


def test_leave_disconnect_and_timeout_tell_the_partner() -> None:
    mm = connected("a", "b")
    mm.join("a", 0)
    mm.join("b", 0)
    drain(mm)
    mm.leave("a", 1)
    assert drain(mm) == [PartnerLost("b", "a", "leave")]
    assert mm.state_of("a") is UserState.IDLE and mm.state_of("b") is UserState.WAITING
    mm.connect("c", 1)
    mm.join("c", 1)
    drain(mm)
    mm.disconnect("c", 2)
    assert drain(mm) == [PartnerLost("b", "c", "disconnect")]
    assert mm.state_of("c") is None
    mm.disconnect("c", 2)  # idempotent
    mm.join("a", 3)
    drain(mm)
    mm.handle_timer(11)  # cool-down a-b over: paired again
    (paired,) = drain(mm)
    assert isinstance(paired, Paired) and {paired.first, paired.second} == {"a", "b"}
    mm.heartbeat("b", 40)
    mm.handle_timer(40)  # a was last active at 3: expired, b told
    assert drain(mm) == [PartnerLost("b", "a", "timeout"), Expired("a")]
    assert mm.state_of("a") is None and mm.state_of("b") is UserState.WAITING


def test_heartbeat_keeps_a_user_alive() -> None:
    mm = connected("a")
    for now in range(0, 100, 20):
        mm.heartbeat("a", now)
        mm.handle_timer(now)
    assert mm.state_of("a") is UserState.IDLE and drain(mm) == []
    timer = mm.next_timer()
    assert timer is not None and timer <= 80 + 30


def test_misuse_is_refused_with_a_reason() -> None:
    mm = connected("a", "b")
    with pytest.raises(MatchmakingError, match="already connected"):
        mm.connect("a", 0)
    with pytest.raises(MatchmakingError, match="unknown user"):
        mm.join("zed", 0)
    with pytest.raises(MatchmakingError, match="no partner"):
        mm.report("a", 0)
    mm.join("a", 0)
    mm.join("b", 0)
    with pytest.raises(MatchmakingError, match="use next"):
        mm.join("a", 0)


TestMatchmakingProperties = MatchmakingMachine.TestCase
TestMatchmakingProperties.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
