"""The independent model the matchmaking rules are checked against, for every implementation:
the in-memory ``Matchmaker`` and the shared pool in Redis (``signaling.cluster``).

A subclass says which implementation to drive by overriding ``make_matchmaker``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
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


def drain(mm: Any) -> list[Event]:
    events = []
    while (event := mm.next_event()) is not None:
        events.append(event)
    return events


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
        self.mm = self.make_matchmaker()
        self.now = 0.0
        self.known: set[str] = set()
        self.interests: dict[str, frozenset[str]] = {}
        self.waiting_since: dict[str, float] = {}
        self.last_active: dict[str, float] = {}
        self.parted_at: dict[frozenset[str], float] = {}

    def make_matchmaker(self) -> Any:
        """The implementation under test: anything with the ``Matchmaker`` interface."""
        return Matchmaker(SETTINGS, random.Random(7))

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
