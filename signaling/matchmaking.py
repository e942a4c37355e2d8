"""Matchmaking as a sans-I/O state machine: who waits, who is paired with whom, and when.

Only pairing rules live here: no sockets, no asyncio, no wall clock. The caller passes the
current time into every method, pulls events with ``next_event()`` and asks ``next_timer()``
when to call ``handle_timer()`` next. That keeps the rules deterministic and lets the property
tests drive any interleaving of users and time.

Invariant after every call: no two WAITING users are compatible. Compatibility is gained in
only four ways (a user starts waiting, changes interests, becomes relaxed, or a cool-down ends),
and each of them tries to pair the user concerned, so the invariant holds without ever scanning
everyone. By the same invariant the sets scanned for a partner stay small: waiting users who
could pair with each other already have.
"""

from __future__ import annotations

import enum
import heapq
import random
from dataclasses import dataclass, field
from typing import Protocol

UserId = str


class UserState(enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"
    PAIRED = "paired"


@dataclass(frozen=True, slots=True)
class Paired:
    """Two users were paired; both must be told. `first` is the one whose action paired them."""

    first: UserId
    """The user whose action (join, next, time passing) made the pair; by convention the offerer."""
    second: UserId
    """The user who was waiting."""
    pair: str = ""
    """The pair's id when a shared pool (``signaling.cluster``) named it, so that both members'
    nodes call it alike; empty: the hub names it."""
    remote_region: str = ""
    """With a shared pool, the region of a member connected to another node (both nodes must
    choose the same route); empty when both are here."""
    remote_hides_address: bool = False
    """With a shared pool, whether that member asked never to be on a direct call."""
    remote_device: str = ""
    """With a shared pool, that member's device key (``signaling.strikes.Person``): a report
    about it keys on its device, as about a member connected here."""
    remote_network: str = ""
    """With a shared pool, that member's network (for a ban's count towards its network)."""


@dataclass(frozen=True, slots=True)
class PartnerLost:
    """`user` lost its partner and is WAITING again (random chat goes on by itself)."""

    user: UserId
    """The user to tell."""
    partner: UserId
    """The partner who is gone."""
    reason: str
    """Why: "next", "report", "leave", "disconnect" or "timeout"."""


@dataclass(frozen=True, slots=True)
class Expired:
    """`user` missed its heartbeats and has been removed; the caller closes its connection."""

    user: UserId
    """The removed user."""


Event = Paired | PartnerLost | Expired


@dataclass(frozen=True, slots=True)
class MatchmakingSettings:
    repair_cooldown_s: float = 60.0
    """Two users who just parted are not paired again within this time."""
    interest_fallback_s: float = 5.0
    """A user with interests waits at most this long for a shared one, then anyone will do."""
    heartbeat_timeout_s: float = 30.0
    """A user with no activity for this long is expired."""


class MatchmakingError(ValueError):
    """A call that the user's current state does not allow; the message says why."""


class Matchmaking(Protocol):
    """What the hub drives: the in-memory ``Matchmaker`` below, or, when many processes share
    one pool, a node's view of it (``signaling.cluster.node``), which obeys the same rules."""

    def connect(self, user: UserId, now: float) -> None: ...
    def join(self, user: UserId, now: float, interests: frozenset[str] = frozenset()) -> None: ...
    def next(self, user: UserId, now: float) -> None: ...
    def report(self, user: UserId, now: float) -> None: ...
    def leave(self, user: UserId, now: float) -> None: ...
    def disconnect(self, user: UserId, now: float) -> None: ...
    def heartbeat(self, user: UserId, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_timer(self) -> float | None: ...
    def next_event(self) -> Event | None: ...
    def state_of(self, user: UserId) -> UserState | None: ...
    def waiting_since(self, user: UserId) -> float: ...
    def waiting_count(self) -> int: ...
    def pair_count(self) -> int: ...


@dataclass(slots=True)
class _User:
    state: UserState
    last_active: float
    interests: frozenset[str] = frozenset()
    partner: UserId | None = None
    waiting_since: float = 0.0
    relaxed: bool = False
    """Waiting with no interests, or for longer than the interest fallback."""
    timer_generation: int = 0
    """Bumped whenever the user starts waiting, so stale fallback timers can be recognised."""


@dataclass(order=True, slots=True)
class _Timer:
    at: float
    user: UserId = field(compare=False)
    generation: int = field(compare=False)


class Matchmaker:
    """Random 1:1 pairing with cool-downs, interest tags and heartbeat expiry."""

    def __init__(self, settings: MatchmakingSettings, rng: random.Random) -> None:
        self._settings = settings
        self._rng = rng
        self._users: dict[UserId, _User] = {}
        self._by_interest: dict[str, set[UserId]] = {}
        self._relaxed: set[UserId] = set()
        self._waiting = 0
        self._pairs = 0
        self._cooldowns: dict[frozenset[UserId], float] = {}
        self._cooldown_heap: list[tuple[float, frozenset[UserId]]] = []
        self._heartbeats: list[_Timer] = []
        self._fallbacks: list[_Timer] = []
        self._events: list[Event] = []
        self._event_index = 0

    # -- inputs ---------------------------------------------------------------------------

    def connect(self, user: UserId, now: float) -> None:
        if user in self._users:
            raise MatchmakingError(f"user {user!r} is already connected")
        self._users[user] = _User(state=UserState.IDLE, last_active=now)
        heapq.heappush(self._heartbeats, _Timer(now + self._settings.heartbeat_timeout_s, user, 0))

    def join(self, user: UserId, now: float, interests: frozenset[str] = frozenset()) -> None:
        record = self._touch(user, now)
        if record.state is UserState.PAIRED:
            raise MatchmakingError("you are in a call; use next to change partner")
        if record.state is UserState.WAITING:
            self._stop_waiting(user, record)
        record.interests = interests
        self._start_waiting(user, record, now)

    def next(self, user: UserId, now: float) -> None:
        self._part(user, now, "next")

    def report(self, user: UserId, now: float) -> None:
        record = self._touch(user, now)
        if record.state is not UserState.PAIRED:
            raise MatchmakingError("you have no partner to report")
        self._part(user, now, "report")

    def leave(self, user: UserId, now: float) -> None:
        record = self._touch(user, now)
        self._remove_from_play(user, record, now, "leave")
        record.state = UserState.IDLE

    def disconnect(self, user: UserId, now: float) -> None:
        record = self._users.get(user)
        if record is None:
            return
        self._remove_from_play(user, record, now, "disconnect")
        del self._users[user]

    def heartbeat(self, user: UserId, now: float) -> None:
        self._touch(user, now)

    def handle_timer(self, now: float) -> None:
        self._expire_silent_users(now)
        self._relax_waiting_users(now)
        self._end_cooldowns(now)

    # -- outputs and queries ----------------------------------------------------------------

    def next_timer(self) -> float | None:
        """No later than the earliest moment handle_timer could change something.

        Timers are invalidated lazily, so this may be early (a harmless extra call), never late.
        """
        candidates = [heap[0].at for heap in (self._heartbeats, self._fallbacks) if heap]
        if self._cooldown_heap:
            candidates.append(self._cooldown_heap[0][0])
        return min(candidates, default=None)

    def next_event(self) -> Event | None:
        if self._event_index >= len(self._events):
            if self._events:
                self._events.clear()
                self._event_index = 0
            return None
        event = self._events[self._event_index]
        self._event_index += 1
        return event

    def state_of(self, user: UserId) -> UserState | None:
        record = self._users.get(user)
        return None if record is None else record.state

    def partner_of(self, user: UserId) -> UserId | None:
        record = self._users.get(user)
        return None if record is None else record.partner

    def waiting_since(self, user: UserId) -> float:
        """When `user` last started waiting (still set once paired: how long it waited)."""
        return self._users[user].waiting_since

    def waiting_count(self) -> int:
        return self._waiting

    def pair_count(self) -> int:
        return self._pairs

    def user_count(self) -> int:
        return len(self._users)

    # -- transitions ----------------------------------------------------------------------

    def _touch(self, user: UserId, now: float) -> _User:
        record = self._users.get(user)
        if record is None:
            raise MatchmakingError(f"unknown user {user!r}")
        record.last_active = max(record.last_active, now)
        return record

    def _part(self, user: UserId, now: float, reason: str) -> None:
        """Next and report: leave the partner (if any) and look again, presser first."""
        record = self._touch(user, now)
        if record.state is UserState.WAITING:
            return
        partner = record.partner
        if partner is not None:
            self._unpair(user, partner, now)
        self._start_waiting(user, record, now)
        if partner is not None:
            self._events.append(PartnerLost(partner, user, reason))
            self._start_waiting(partner, self._users[partner], now)

    def _remove_from_play(self, user: UserId, record: _User, now: float, reason: str) -> None:
        """Take `user` out of the queue or its pair; a partner is told and re-queued."""
        if record.state is UserState.WAITING:
            self._stop_waiting(user, record)
        elif record.state is UserState.PAIRED and record.partner is not None:
            partner = record.partner
            self._unpair(user, partner, now, cooldown=reason == "leave")
            self._events.append(PartnerLost(partner, user, reason))
            self._start_waiting(partner, self._users[partner], now)
        record.state = UserState.IDLE

    def _unpair(self, a: UserId, b: UserId, now: float, cooldown: bool = True) -> None:
        """`cooldown`: keep the two apart for a while; pointless when one of them is gone."""
        for user in (a, b):
            record = self._users[user]
            record.partner = None
            record.state = UserState.IDLE
        self._pairs -= 1
        if cooldown and self._settings.repair_cooldown_s > 0:
            key = frozenset((a, b))
            until = now + self._settings.repair_cooldown_s
            self._cooldowns[key] = until
            heapq.heappush(self._cooldown_heap, (until, key))

    def _start_waiting(self, user: UserId, record: _User, now: float) -> None:
        record.state = UserState.WAITING
        record.waiting_since = now
        record.timer_generation += 1
        record.relaxed = not record.interests or self._settings.interest_fallback_s <= 0
        self._waiting += 1
        for tag in record.interests:
            self._by_interest.setdefault(tag, set()).add(user)
        if record.relaxed:
            self._relaxed.add(user)
        else:
            heapq.heappush(
                self._fallbacks,
                _Timer(now + self._settings.interest_fallback_s, user, record.timer_generation),
            )
        self._try_pair(user, record, now)

    def _stop_waiting(self, user: UserId, record: _User) -> None:
        self._waiting -= 1
        for tag in record.interests:
            members = self._by_interest[tag]
            members.discard(user)
            if not members:
                del self._by_interest[tag]
        self._relaxed.discard(user)
        record.state = UserState.IDLE

    def _try_pair(self, user: UserId, record: _User, now: float) -> None:
        partner = self._pick_partner(user, record, now)
        if partner is None:
            return
        partner_record = self._users[partner]
        self._stop_waiting(user, record)
        self._stop_waiting(partner, partner_record)
        record.state = partner_record.state = UserState.PAIRED
        record.partner, partner_record.partner = partner, user
        self._pairs += 1
        self._events.append(Paired(user, partner))

    def _pick_partner(self, user: UserId, record: _User, now: float) -> UserId | None:
        """A uniformly random compatible waiting user; shared interests are preferred."""
        shared: set[UserId] = set()
        for tag in record.interests:
            shared |= self._by_interest.get(tag, set())
        choice = self._random_allowed(user, shared, now)
        if choice is None and record.relaxed:
            choice = self._random_allowed(user, self._relaxed, now)
        return choice

    def _random_allowed(self, user: UserId, candidates: set[UserId], now: float) -> UserId | None:
        allowed = [
            other
            for other in candidates
            if other != user and not self._in_cooldown(user, other, now)
        ]
        if not allowed:
            return None
        allowed.sort()  # set order varies between runs; sorting keeps a seeded rng reproducible
        return self._rng.choice(allowed)

    def _in_cooldown(self, a: UserId, b: UserId, now: float) -> bool:
        until = self._cooldowns.get(frozenset((a, b)))
        return until is not None and until > now

    # -- timers ---------------------------------------------------------------------------

    def _expire_silent_users(self, now: float) -> None:
        """Remove every user that is due at `now` before re-queueing any partner, so that a
        partner is never paired with someone who expires in the same instant."""
        timeout = self._settings.heartbeat_timeout_s
        due: list[UserId] = []
        while self._heartbeats and self._heartbeats[0].at <= now:
            timer = heapq.heappop(self._heartbeats)
            record = self._users.get(timer.user)
            if record is None or timer.user in due:
                continue
            deadline = record.last_active + timeout
            if deadline > now:  # active since this timer was set: look again later
                heapq.heappush(self._heartbeats, _Timer(deadline, timer.user, 0))
            else:
                due.append(timer.user)
        orphans: list[UserId] = []
        for user in due:
            record = self._users[user]
            if record.state is UserState.WAITING:
                self._stop_waiting(user, record)
            elif record.state is UserState.PAIRED and record.partner is not None:
                partner = record.partner
                self._unpair(user, partner, now, cooldown=False)
                if partner not in due:
                    self._events.append(PartnerLost(partner, user, "timeout"))
                    orphans.append(partner)
        for user in due:
            del self._users[user]
            self._events.append(Expired(user))
        for partner in orphans:
            self._start_waiting(partner, self._users[partner], now)

    def _relax_waiting_users(self, now: float) -> None:
        while self._fallbacks and self._fallbacks[0].at <= now:
            timer = heapq.heappop(self._fallbacks)
            record = self._users.get(timer.user)
            if (
                record is None
                or record.state is not UserState.WAITING
                or record.timer_generation != timer.generation
            ):
                continue
            record.relaxed = True
            self._relaxed.add(timer.user)
            self._try_pair(timer.user, record, now)

    def _end_cooldowns(self, now: float) -> None:
        while self._cooldown_heap and self._cooldown_heap[0][0] <= now:
            until, key = heapq.heappop(self._cooldown_heap)
            if self._cooldowns.get(key) != until:
                continue  # superseded by a later cool-down for the same two users
            del self._cooldowns[key]
            for user in key:
                record = self._users.get(user)
                if record is not None and record.state is UserState.WAITING:
                    self._try_pair(user, record, now)
                    break
