"""Stateful property test of the hub's relay bookkeeping: no leg is ever leaked or shared.

Random interleavings of clients (join, next, leave, report, disconnect, offers), workers
(answers, connected/failed legs, joining and dying) and time, checked after every step:
every leg signaling counts on a worker belongs to exactly one live call member or one parked
client; the worker is told to close every leg signaling forgets; nothing is left once all
clients are gone.
"""

from __future__ import annotations

import itertools
import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from relay import control as rc
from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.config import config_from_mapping
from signaling.matchmaking import Matchmaker
from signaling.relay_leg_states import LegState
from signaling.route_policy import Route

WORKERS = ["w1", "w2"]


class HubMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        config = config_from_mapping(
            {"matchmaking": {"repair_cooldown_s": 0, "heartbeat_timeout_s": 100}}
        )
        counter = itertools.count()
        self.hub = SignalingHub(
            config,
            _RotatingRoutes(),  # type: ignore[arg-type]  # duck-typed RoutePolicy
            Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(3)),
            new_id=lambda: f"id{next(counter)}",
        )
        self.now = 0.0
        self.users: list[str] = []
        self.pairs: dict[str, str] = {}
        """User -> pair id of its current call (from the messages it was sent)."""
        self.open_legs: dict[str, str] = {}
        """Leg -> worker, as the workers see them (opened and not closed)."""
        self.live_workers: set[str] = set()
        self.links: dict[str, str] = {}
        """Leg -> leg it forwards to, as the workers see it."""

    # -- helpers ------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Deliver what the hub sent; workers answer every offer at once, as real ones do."""
        while self._deliver():
            pass

    def _deliver(self) -> bool:
        opened: list[tuple[str, str]] = []
        for user, message in self.hub.drain_outbox():
            if isinstance(message, p.Paired | p.Reroute):
                self.pairs[user] = message.pair
            elif isinstance(message, p.PartnerLeft | p.CallEnded):
                self.pairs.pop(user, None)
        for worker, command in self.hub.drain_worker_outbox():
            assert worker in self.live_workers, f"{command} sent to dead worker {worker}"
            match command:
                case rc.OpenLeg(leg=leg):
                    assert leg not in self.open_legs, f"leg {leg} opened twice"
                    self.open_legs[leg] = worker
                    opened.append((worker, leg))
                case rc.CloseLeg(leg=leg):
                    assert self.open_legs.pop(leg, None) == worker, f"closing unknown {leg}"
                    self._unlink(leg)
                case rc.Unlink(leg=leg):
                    self._unlink(leg)
                case rc.Link(first=a, second=b):
                    assert self.open_legs.get(a) == worker and self.open_legs.get(b) == worker
                    self._unlink(a)  # like ForwardingHub.pair: earlier partners are dropped
                    self._unlink(b)
                    self.links[a], self.links[b] = b, a
        for user, _code in self.hub.drain_closes():
            self.users.remove(user)
            self.pairs.pop(user, None)
        for worker, leg in opened:
            answer = rc.Answer(leg=leg, sdp="v=0 answer")
            self.hub.worker_message(worker, answer, self.now, self.now)
        return bool(opened)

    def _unlink(self, leg: str) -> None:
        other = self.links.pop(leg, None)
        if other is not None:
            self.links.pop(other, None)

    # -- rules ---------------------------------------------------------------------------------

    @initialize()
    def a_worker_and_two_waiting_users(self) -> None:
        """Start where calls can happen at once, so most steps exercise legs."""
        self.worker_joins("w1")
        for _ in range(2):
            self.connect()
            self.hub.receive(self.users[-1], p.Join(), self.now, self.now)
            self._pump()

    @rule()
    def connect(self) -> None:
        if len(self.users) < 6:
            self.users.append(self.hub.connect("default", self.now, self.now))
            self._pump()

    @precondition(lambda self: self.users)
    @rule(
        data=st.data(),
        kind=st.sampled_from(
            ["join", "join", "offer", "offer", "offer", "next", "leave", "report"]
        ),
    )
    def act(self, data: st.DataObject, kind: str) -> None:
        user = data.draw(st.sampled_from(self.users))
        message: p.ClientMessage
        if kind == "offer":
            message = p.Offer(pair=self.pairs.get(user, "none"), sdp="v=0")
        else:
            message = {"join": p.Join(), "next": p.Next(), "leave": p.Leave(),
                       "report": p.Report()}[kind]  # fmt: skip
        self.hub.receive(user, message, self.now, self.now)
        self._pump()

    @precondition(lambda self: self.users)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        user = data.draw(st.sampled_from(self.users))
        self.users.remove(user)
        self.pairs.pop(user, None)
        self.hub.disconnect(user, self.now)
        self._pump()

    @precondition(lambda self: self.open_legs)
    @rule(
        data=st.data(),
        event=st.sampled_from(["connected", "connected", "connected", "failed", "refused"]),
    )
    def worker_event(self, data: st.DataObject, event: str) -> None:
        leg = data.draw(st.sampled_from(sorted(self.open_legs)))
        worker = self.open_legs[leg]
        message: rc.WorkerMessage
        if event == "refused":
            message = rc.Refused(leg=leg, reason="no")
        else:
            message = rc.LegState(leg=leg, state="connected" if event == "connected" else "failed")
        self.hub.worker_message(worker, message, self.now, self.now)
        self._pump()

    @precondition(lambda self: self.users)
    @rule(data=st.data())
    def direct_call_fails(self, data: st.DataObject) -> None:
        user = data.draw(st.sampled_from(self.users))
        pair = self.pairs.get(user, "none")
        failed = p.CallState(pair=pair, state="failed", route="direct")
        self.hub.receive(user, failed, self.now, self.now)
        self._pump()

    @rule(worker=st.sampled_from(WORKERS))
    def worker_joins(self, worker: str) -> None:
        if worker not in self.live_workers:
            self.live_workers.add(worker)
            self.hub.worker_joined(rc.Hello(worker_id=worker, token="t", pid=1, max_sessions=6))
            ready = rc.Load(legs=0, cpu_percent=0, rss_bytes=0, moderation_ready=True)
            self.hub.worker_message(worker, ready, self.now, self.now)

    @precondition(lambda self: len(self.live_workers) >= 2)  # losing the last: tests/test_hub.py
    @rule(data=st.data())
    def worker_dies(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(sorted(self.live_workers)))
        self.live_workers.discard(worker)
        for leg in [leg for leg, w in self.open_legs.items() if w == worker]:
            del self.open_legs[leg]  # gone with the process
            self._unlink(leg)
        self.hub.worker_lost(worker)
        self._pump()

    @rule(dt=st.floats(0, 40))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.hub.handle_timer(self.now)
        self._pump()

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def legs_agree_between_signaling_and_workers(self) -> None:
        counted = {str(leg) for info in self.hub.relays._workers.values() for leg in info.legs}
        assert counted == set(self.open_legs), (counted, self.open_legs)
        assert set(self.hub._legs) == counted  # white-box: the hub's own books

    @invariant()
    def every_leg_is_where_its_state_says(self) -> None:
        clients = self.hub._clients
        for leg in self.hub._legs.values():
            if leg.state is LegState.PARKED:
                assert leg.call is None and clients[leg.member].parked is leg
            else:
                assert leg.state is not LegState.CLOSED and leg.call is not None
                assert leg.call.legs[leg.member] is leg

    @invariant()
    def media_flows_only_between_partners_of_a_live_call(self) -> None:
        live = {leg_id: leg for leg_id, leg in self.hub._legs.items() if leg.call is not None}
        for a, b in self.links.items():
            assert a in live and b in live, f"{a} -> {b} forwards outside a live call"
            assert live[a].call is live[b].call and live[a].member != live[b].member

    @invariant()
    def nothing_left_without_clients(self) -> None:
        if not self.users:
            assert not self.open_legs


class _RotatingRoutes:
    """Pairs take each route in turn, so direct calls, their fallback and both relayed routes
    all get exercised."""

    def __init__(self) -> None:
        self._routes = itertools.cycle([Route.RELAY, Route.DIRECT, Route.STRICT])

    def route_for_pair(self, region_a: str, region_b: str) -> Route:
        return next(self._routes)

    def region_from_headers(self, headers: object) -> str:
        return "default"


TestHubProperties = HubMachine.TestCase
TestHubProperties.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
