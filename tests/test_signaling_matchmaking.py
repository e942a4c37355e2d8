"""Matchmaking: unit tests of the rules, and a stateful property test of the invariants."""

from __future__ import annotations

import random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from signaling.matchmaking import (
    Event,
    Expired,
    Matchmaker,
    MatchmakingError,
    MatchmakingSettings,
    Paired,
    PartnerLost,
    UserState,
)

SETTINGS = MatchmakingSettings(repair_cooldown_s=10, interest_fallback_s=3, heartbeat_timeout_s=30)


def drain(mm: Matchmaker) -> list[Event]:
    events = []
    while (event := mm.next_event()) is not None:
        events.append(event)
    return events


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


USERS = [f"u{i}" for i in range(6)]
TAGS = st.frozensets(st.sampled_from(["chess", "music", "go"]), max_size=2)


class MatchmakingMachine(RuleBasedStateMachine):
    """Random interleavings of every input and of time, checked against an independent model.

    The model records what the rules depend on (interests, when each user began waiting,
    cool-downs, last activity) from the inputs and the events, and from that decides on its
    own whether any two waiting users could have been paired.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mm = Matchmaker(SETTINGS, random.Random(7))
        self.now = 0.0
        self.known: set[str] = set()
        self.interests: dict[str, frozenset[str]] = {}
        self.waiting_since: dict[str, float] = {}
        self.last_active: dict[str, float] = {}
        self.parted_at: dict[frozenset[str], float] = {}

    # -- inputs -----------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, tuple[UserState | None, str | None]]:
        return {u: (self.mm.state_of(u), self.mm.partner_of(u)) for u in self.known}

    def _apply(
        self,
        before: dict[str, tuple[UserState | None, str | None]],
        action: str,
        user: str | None = None,
    ) -> None:
        if user is not None:
            self.last_active[user] = self.now
        events = drain(self.mm)
        lost_partner = {e.user for e in events if isinstance(e, PartnerLost)}
        for u in self.known:
            if (
                u not in before
                or before[u][0] is not UserState.WAITING
                or u in lost_partner
                or (u == user and action == "join")
            ):
                self.waiting_since[u] = self.now
        self._check_events(before, events, action, user)

    @rule(user=st.sampled_from(USERS))
    def connect(self, user: str) -> None:
        if user in self.known:
            with pytest.raises(MatchmakingError):
                self.mm.connect(user, self.now)
            return
        before = self._snapshot()
        self.mm.connect(user, self.now)
        self.known.add(user)
        self.interests[user] = frozenset()
        self._apply(before, "connect", user)

    @precondition(lambda self: self.known)
    @rule(data=st.data(), tags=TAGS)
    def join(self, data: st.DataObject, tags: frozenset[str]) -> None:
        user = data.draw(st.sampled_from(sorted(self.known)))
        if self.mm.state_of(user) is UserState.PAIRED:
            with pytest.raises(MatchmakingError):
                self.mm.join(user, self.now, tags)
            self.last_active[user] = self.now
            return
        before = self._snapshot()
        self.mm.join(user, self.now, tags)
        self.interests[user] = tags
        self._apply(before, "join", user)

    @precondition(lambda self: self.known)
    @rule(data=st.data(), action=st.sampled_from(["next", "report", "leave", "heartbeat"]))
    def act(self, data: st.DataObject, action: str) -> None:
        user = data.draw(st.sampled_from(sorted(self.known)))
        if action == "report" and self.mm.state_of(user) is not UserState.PAIRED:
            with pytest.raises(MatchmakingError):
                self.mm.report(user, self.now)
            self.last_active[user] = self.now
            return
        before = self._snapshot()
        getattr(self.mm, action)(user, self.now)
        self._apply(before, action, user)

    @precondition(lambda self: self.known)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        user = data.draw(st.sampled_from(sorted(self.known)))
        before = self._snapshot()
        self.mm.disconnect(user, self.now)
        self.known.discard(user)
        self._apply(before, "disconnect", None)

    @rule(dt=st.floats(min_value=0.0, max_value=40.0))
    def time_passes(self, dt: float) -> None:
        """Call handle_timer only at the times next_timer() names: if it ever named a time too
        late, a pairing or expiry would be missed and the invariants below would catch it."""
        target = self.now + dt
        while (deadline := self.mm.next_timer()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            before = self._snapshot()
            self.mm.handle_timer(self.now)
            self._apply(before, "timer")
        self.now = target

    # -- checks -----------------------------------------------------------------------------

    def _check_events(
        self,
        before: dict[str, tuple[UserState | None, str | None]],
        events: list[Event],
        action: str,
        actor: str | None,
    ) -> None:
        lost: dict[str, int] = {}
        expired = {e.user for e in events if isinstance(e, Expired)}
        for event in events:
            # the gone (disconnect, timeout) get no cool-down
            if isinstance(event, PartnerLost) and event.reason in ("next", "report", "leave"):
                self.parted_at[frozenset((event.user, event.partner))] = self.now
        for event in events:
            match event:
                case Paired(first=a, second=b):
                    assert a != b
                    assert self.mm.partner_of(a) == b and self.mm.partner_of(b) == a
                    assert self._compatible(a, b), f"{a} and {b} paired against the rules"
                case PartnerLost(user=u, partner=v):
                    assert before[u][1] == v, f"{u} was not with {v}"
                    lost[u] = lost.get(u, 0) + 1
                case Expired(user=u):
                    assert self.last_active[u] + SETTINGS.heartbeat_timeout_s <= self.now
                    self.known.discard(u)
        assert all(count == 1 for count in lost.values())
        # every pair that broke up told exactly the side that did not cause it
        for u, (state, partner) in before.items():
            if state is UserState.PAIRED and partner is not None and u < partner:
                still = self.mm.partner_of(u) == partner
                if not still:
                    told = (u in lost) + (partner in lost)
                    both_gone = u in expired and partner in expired
                    assert told == (0 if both_gone else 1), (
                        f"pair {u}-{partner} ended after {action} by {actor}"
                    )

    def _relaxed(self, user: str) -> bool:
        return (
            not self.interests[user]
            or self.now >= self.waiting_since[user] + SETTINGS.interest_fallback_s
        )

    def _compatible(self, a: str, b: str) -> bool:
        parted = self.parted_at.get(frozenset((a, b)))
        if parted is not None and self.now < parted + SETTINGS.repair_cooldown_s:
            return False
        shared = bool(self.interests[a] & self.interests[b])
        return shared or (self._relaxed(a) and self._relaxed(b))

    @invariant()
    def nobody_lost_and_pairs_are_symmetric(self) -> None:
        for user in USERS:
            state = self.mm.state_of(user)
            assert (state is not None) == (user in self.known), user
            if state is UserState.PAIRED:
                partner = self.mm.partner_of(user)
                assert partner is not None and partner != user
                assert self.mm.partner_of(partner) == user
                assert self.mm.state_of(partner) is UserState.PAIRED
            else:
                assert self.mm.partner_of(user) is None
        states = [self.mm.state_of(u) for u in self.known]
        assert self.mm.waiting_count() == states.count(UserState.WAITING)
        assert self.mm.pair_count() * 2 == states.count(UserState.PAIRED)
        assert self.mm.user_count() == len(self.known)

    @invariant()
    def nobody_waits_while_a_compatible_user_waits(self) -> None:
        waiting = sorted(u for u in self.known if self.mm.state_of(u) is UserState.WAITING)
        for i, a in enumerate(waiting):
            for b in waiting[i + 1 :]:
                assert not self._compatible(a, b), f"{a} and {b} both wait at {self.now}"

    @invariant()
    def nobody_silent_is_kept(self) -> None:
        for user in self.known:
            assert self.now < self.last_active[user] + SETTINGS.heartbeat_timeout_s or (
                self.mm.next_timer() is not None
            )


TestMatchmakingProperties = MatchmakingMachine.TestCase
TestMatchmakingProperties.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
