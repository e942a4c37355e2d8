"""The signaling core: connections, calls, relay placement and message routing, without I/O.

The WebSocket layer (``signaling.app``) feeds it validated messages from clients and relay
workers together with the current time, and sends whatever it leaves in the outboxes; the hub
never touches a socket or a clock. This keeps the rules (who may talk to whom, which route a
call takes, what each side is told and when) testable in plain Python, and the asyncio code
thin. Pairing itself is delegated to ``signaling.matchmaking``, worker bookkeeping to
``signaling.relays``.

Relayed calls: each member's offer opens a *leg* on the call's relay worker, which answers in
the member's place; once both legs exist the worker is told to link them. A direct call that
fails to connect, and a relayed call whose worker dies, are re-routed onto a live worker and
both members are asked to offer again.

With a shared pool (``signaling.cluster``) a call's members may be connected to two nodes. The
node of the pairing's first member *hosts* the call: it chooses the route's worker (on any
node), holds both legs and hears the worker; the other member's node is the *guest*: it hands
its member's offers, answers, candidates and call states to the host
(``drain_partner_node_outbox``), and the host's word reaches that member through the pool's
messages. One place decides, so the two nodes never place one call twice.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from relay import control as rc
from signaling import protocol as p
from signaling import readiness
from signaling.chat import ChatGate
from signaling.config import Config
from signaling.drain import CallView
from signaling.events import Decision, Ground, OperatorEvent, iso_utc
from signaling.ice import stun_servers
from signaling.matchmaking import (
    Expired,
    Matchmaking,
    MatchmakingError,
    MatchmakingSettings,
    Paired,
    PartnerLost,
    UserState,
)
from signaling.relay_leg_states import (
    ANSWER_RECEIVED,
    IllegalLegTransition,
    LegEvent,
    LegState,
    advance,
    allows,
)
from signaling.relays import RelayDirectory
from signaling.reports import OpenReport, ReportLog, ReportRecord
from signaling.route_policy import Route, RoutePolicy
from signaling.strikes import NOBODY, Person, StrikeBook, strikes_reason

log = logging.getLogger("chatguard.signaling")


@dataclass(slots=True, eq=False)
class _Call:
    """One pair's call, shared by both members' records."""

    pair_id: str
    offerer: str
    answerer: str
    route: Route
    paired_at: float
    worker: str | None = None
    legs: dict[str, _RelayLeg] = field(default_factory=dict)
    """Member -> its leg on `worker` (relayed routes only)."""
    connected_at: float | None = None
    """When a member first reported media connected on the current route."""
    guest: str | None = None
    """The member connected to another node while this node hosts the call."""
    hosted_elsewhere: bool = False
    """This node's member is the guest: the partner's node hosts the call."""
    remote_who: Person = NOBODY
    """The device and network of a member connected to another node: reports key on them."""

    def partner_of(self, user: str) -> str:
        return self.answerer if user == self.offerer else self.offerer

    def answered(self) -> bool:
        """Both members hold the relay's answer: their legs can be linked."""
        return all(
            (leg := self.legs.get(member)) is not None and leg.state in ANSWER_RECEIVED
            for member in (self.offerer, self.answerer)
        )


@dataclass(slots=True, eq=False)
class _RelayLeg:
    """One member's connection with a relay worker. `state` moves only through the table in
    ``signaling.relay_leg_states``; while parked (kept between partners, so that Next costs no
    new WebRTC handshake) the leg belongs to no call."""

    leg_id: str
    worker: str
    member: str
    moderated: bool
    call: _Call | None
    state: LegState = LegState.OPENING


@dataclass(slots=True)
class _Client:
    region: str
    who: Person
    """Device and network, as strike, ban and report keys."""
    call: _Call | None = None
    parked: _RelayLeg | None = None
    hide_address: bool = False
    """Asked on its last ``join`` never to be on a direct call."""
    remote: bool = False
    """A partner connected to another node of a shared pool (``signaling.cluster``): that
    node tells it everything; here it stands in the call only for the route's choice."""
    address: str = ""
    """Its IP address, kept only for operator events that opt in (``[events]
    include_addresses``); strikes and bans use `who`."""


PAIRING_WAIT_BOUNDS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class HubStats:
    """Counters kept as the hub decides; ``/stats`` and ``signaling.metrics`` read them when
    asked, so the hot path pays one increment and no metrics library."""

    pairs_made: int = 0
    messages_relayed: int = 0
    messages_received: Counter[str] = field(default_factory=Counter)
    """Valid client messages by protocol type."""
    errors_sent: Counter[str] = field(default_factory=Counter)
    """Error replies by code."""
    calls_connected: int = 0
    """Members' reports that their media connected (two per connected call)."""
    call_outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(route, "connected" | "failed"): once per call and route it was on."""
    fallbacks_to_relay: int = 0
    calls_rerouted_after_worker_loss: int = 0
    moderation: Counter[str] = field(default_factory=Counter)
    """Strict route decisions reported by relay workers: "blocked", "resumed"."""
    strikes: int = 0
    bans: Counter[str] = field(default_factory=Counter)
    """Bans by ground: "moderation" (strikes), "reports"."""
    refused_banned: int = 0
    """Connections refused at the door because the device or address is banned."""
    refused: Counter[str] = field(default_factory=Counter)
    """WebSockets refused at the handshake or hello, by reason: "origin" (``/ws`` from
    another site's page), "relay_hello" (no hello with the token), "relay_throttled" (an
    address whose hellos kept failing), "relay_origin" (a browser on ``/relay``)."""
    pairing_wait: rc.Histogram = field(
        default_factory=lambda: rc.Histogram.empty(PAIRING_WAIT_BOUNDS_S)
    )
    """How long each member of a new pair had waited."""

    @property
    def calls_failed(self) -> int:
        return sum(n for (_, outcome), n in self.call_outcomes.items() if outcome == "failed")


CallMessage = p.Offer | p.Answer | p.Candidate | p.CallState
"""What a guest's node hands to the call's host."""
PartnerNodeMessage = CallMessage | rc.Moderation
"""Between the two nodes of a call: a guest's call message, or the worker's moderation report
about the guest (its node holds the person to strike)."""


def _new_token() -> str:
    return secrets.token_urlsafe(9)


def _notice(
    call: _Call,
    state: Literal["blocked", "resumed"],
    who: Literal["you", "partner"],
    label: str,
    strikes: int,
) -> p.ModerationNotice:
    return p.ModerationNotice(pair=call.pair_id, state=state, who=who, label=label, strikes=strikes)


class SignalingHub:
    """Owns every connected client's state; pure logic, driven by the I/O layer."""

    def __init__(
        self,
        config: Config,
        policy: RoutePolicy,
        matchmaker: Matchmaking,
        new_id: Callable[[], str] = _new_token,
        strikes: StrikeBook | None = None,
        reports: ReportLog | None = None,
    ) -> None:
        """`strikes` and `reports`: a book and a log shared with other nodes
        (``signaling.cluster``); by default the hub keeps its own."""
        self._config = config
        self._policy = policy
        self._matchmaker = matchmaker
        self._new_id = new_id
        self._clients: dict[str, _Client] = {}
        self._legs: dict[str, _RelayLeg] = {}
        """Every leg not closed, live or parked; parked ones last, in the order parked."""
        self._outbox: list[tuple[str, p.ServerMessage]] = []
        self._worker_outbox: list[tuple[str, rc.SignalingMessage]] = []
        self._partner_node_outbox: list[tuple[str, str, PartnerNodeMessage]] = []
        self._to_close: list[tuple[str, int]] = []
        self._events: list[OperatorEvent] = []
        self._reports: list[OpenReport] = []
        self._now = 0.0
        """The time of the input being handled: what the matchmaker reports meanwhile (a
        pairing, a partner gone) happened then; call durations in the log are read from it."""
        mod = config.moderation
        self.strikes = strikes or StrikeBook(
            mod.strikes_to_ban, mod.strike_window_s, mod.ban_s, mod.devices_to_ban_network
        )
        self.relays = RelayDirectory()
        self.reports = reports or ReportLog(
            config.reports.reporters_to_ban, config.reports.window_s
        )
        chat = config.chat
        self.chat = ChatGate(chat.max_chars, chat.burst, chat.per_s)
        self.stats = HubStats()

    @staticmethod
    def matchmaking_settings(config: Config) -> MatchmakingSettings:
        mm = config.matchmaking
        return MatchmakingSettings(
            repair_cooldown_s=mm.repair_cooldown_s,
            interest_fallback_s=mm.interest_fallback_s,
            heartbeat_timeout_s=mm.heartbeat_timeout_s,
        )

    # -- client inputs --------------------------------------------------------------------

    def banned_until(self, address: str, device: str, now: float) -> float | None:
        """Checked before `connect`: a banned device or address is refused at the door."""
        return self.strikes.banned_until(Person.of(address, device), now)

    def refuse_banned(
        self, banned_until: float, now: float, now_unix: float, address: str = ""
    ) -> float:
        """A banned device or address was turned away: counted, and an operator event.
        Returns when the ban ends, in Unix time, for the client's notice."""
        self.stats.refused_banned += 1
        ban_s = banned_until - now
        self._event("ban_refused", Ground(), now_unix, ban_s=ban_s, address=address)
        return now_unix + banned_until - now

    def connect(
        self, region: str, now: float, now_unix: float, address: str = "", device: str = ""
    ) -> str:
        """Register a new connection; returns its id and queues its welcome."""
        self._now = now
        user = self._new_id()
        kept_address = address if self._config.events.include_addresses else ""
        self._clients[user] = _Client(region, Person.of(address, device), address=kept_address)
        self._matchmaker.connect(user, now)
        mm = self._config.matchmaking
        self._send(
            user,
            p.Welcome(
                id=user,
                region=region,
                ice_servers=stun_servers(self._config.ice),
                heartbeat_interval_s=mm.heartbeat_interval_s,
                connect_timeout_s=mm.connect_timeout_s,
                fallback_after_s=self._config.relay.fallback_after_s,
                repair_cooldown_s=mm.repair_cooldown_s,
                chat_max_chars=self._config.chat.max_chars,
            ),
        )
        return user

    def receive(self, user: str, message: p.ClientMessage, now: float, now_unix: float) -> None:
        """Apply one validated message; a refusal is queued as an error reply to `user`."""
        if user not in self._clients:
            return
        self._now = now
        self.stats.messages_received[str(message.__struct_config__.tag)] += 1
        try:
            self._matchmaker.heartbeat(user, now)
            self._dispatch(user, message, now, now_unix)
        except p.ProtocolError as exc:
            self.send_error(user, exc)
        except MatchmakingError as exc:
            self.send_error(user, p.ProtocolError("bad_state", str(exc)))
        self._drain_matchmaker()

    def disconnect(self, user: str, now: float) -> None:
        client = self._clients.pop(user, None)
        if client is None:
            return
        self._now = now
        self.chat.forget(user)
        self._matchmaker.disconnect(user, now)
        self._drain_matchmaker()
        if client.call is not None:  # the partner was told via PartnerLost; free the legs
            self._end_call(client.call)
        self._close_parked(client)

    def handle_timer(self, now: float) -> None:
        self._now = now
        self._matchmaker.handle_timer(now)
        self._drain_matchmaker()

    def next_timer(self) -> float | None:
        return self._matchmaker.next_timer()

    def send_error(self, user: str, error: p.ProtocolError) -> None:
        self.stats.errors_sent[error.code] += 1
        self._send(
            user,
            p.Error(
                code=error.code,
                message=error.message,
                kind=error.kind,
                retry_after_s=error.retry_after_s,
            ),
        )

    # -- relay worker inputs --------------------------------------------------------------

    def worker_joined(self, hello: rc.Hello) -> None:
        self.relays.add_worker(hello.worker_id, hello.max_sessions, hello.pid)
        log.info("relay worker %s joined (pid %d)", hello.worker_id, hello.pid)

    def worker_configuration(self) -> rc.Configure:
        mod = self._config.moderation
        return rc.Configure(
            block=mod.block,
            verdict_ttl_s=mod.verdict_ttl_s,
            min_classifications_per_s=mod.min_classifications_per_s,
            mute_audio_while_blocked=mod.mute_audio_while_blocked,
            reference_margin=mod.reference_margin,
            resume_after_safe=mod.resume_after_safe,
            alert_s=mod.alert_s,
            alert_classifications_per_s=mod.alert_classifications_per_s,
            scene_peak_cells=mod.scene_peak_cells,
            scene_peak_threshold=mod.scene_peak_threshold,
            detail_growth=mod.detail_growth,
            settle_s=mod.settle_s,
            max_decoded_pixels=mod.max_decoded_pixels,
            decode_budget=mod.decode_budget,
            decision_log=mod.decision_log,
            stun_url=self._config.relay.stun_url,
            strict=Route.STRICT in self._policy.routes_in_force(),
        )

    def worker_message(
        self, worker: str, message: rc.WorkerMessage, now: float, now_unix: float
    ) -> None:
        self._now = now
        match message:
            case rc.Load():
                self.relays.report_load(worker, message)
            case rc.Answer(leg=leg_id, sdp=sdp):
                self._on_leg_answer(worker, leg_id, sdp)
            case rc.LegState(leg=leg_id, state=state, detail=detail):
                self._on_leg_state(leg_id, state, detail)
            case rc.Refused(leg=leg_id, reason=reason):
                if (leg := self._legs.get(leg_id)) is not None and leg.call is not None:
                    log.warning("relay worker %s refused leg %s: %s", worker, leg_id, reason)
                    self._fail_call(leg.call, "the relay refused the call")
            case rc.Moderation(leg=leg_id):
                if (leg := self._legs.get(leg_id)) is not None and leg.call is not None:
                    self._on_moderation(leg.call, leg.member, message, now, now_unix)
            case rc.Hello():
                pass  # only valid as the first message; the I/O layer consumes it

    def worker_lost(self, worker: str) -> None:
        """A worker's control connection closed: its calls move to a live worker, if any."""
        self.relays.remove_worker(worker)
        for leg in [leg for leg in self._legs.values() if leg.worker == worker]:
            self._close_leg(leg)  # gone with the worker: nothing to tell it
        # every call placed there, including those whose members have not offered yet
        calls = {
            client.call
            for client in self._clients.values()
            if client.call is not None and client.call.worker == worker
        }
        # a worker leaving without calls (a restart, a shutdown) is no cause for alarm
        level = logging.WARNING if calls else logging.INFO
        log.log(level, "relay worker %s is gone; %d calls affected", worker, len(calls))
        for call in calls:
            call.worker = None
            self.stats.calls_rerouted_after_worker_loss += 1
            self._reroute(call, call.route, "the relay server restarted")

    # -- outputs --------------------------------------------------------------------------

    def drain_outbox(self) -> list[tuple[str, p.ServerMessage]]:
        out, self._outbox = self._outbox, []
        return out

    def drain_worker_outbox(self) -> list[tuple[str, rc.SignalingMessage]]:
        out, self._worker_outbox = self._worker_outbox, []
        return out

    def has_worker_messages(self) -> bool:
        return bool(self._worker_outbox) or bool(self._partner_node_outbox)

    def drain_partner_node_outbox(self) -> list[tuple[str, str, PartnerNodeMessage]]:
        """(a member connected to another node, the member here it is about, message): for
        that member's node (``from_partner_node`` there)."""
        out, self._partner_node_outbox = self._partner_node_outbox, []
        return out

    def from_partner_node(
        self, user: str, partner: str, message: PartnerNodeMessage, now: float, now_unix: float
    ) -> None:
        """What the other node of `user`'s call sent: `partner`'s call message for the call
        hosted here, or the worker's moderation report about `user`, the guest here. One about
        a call that has ended meanwhile is dropped."""
        client = self._clients.get(user)
        call = None if client is None else client.call
        if call is None or call.partner_of(user) != partner:
            return
        self._now = now
        match message:
            case rc.Moderation():
                if call.hosted_elsewhere:
                    self._on_moderation(call, user, message, now, now_unix)
            case _ if call.guest == partner and message.pair == call.pair_id:
                try:
                    self._on_call_message(partner, call, message, now)
                except p.ProtocolError as exc:
                    self.send_error(partner, exc)

    def drain_closes(self) -> list[tuple[str, int]]:
        out, self._to_close = self._to_close, []
        return out

    def drain_events(self) -> list[OperatorEvent]:
        """Moderation decisions for the operator's log and webhook (``signaling.events``)."""
        out, self._events = self._events, []
        return out

    def drain_reports(self) -> list[OpenReport]:
        """Reports filed since the last call, for the admin listener's list."""
        out, self._reports = self._reports, []
        return out

    # -- queries --------------------------------------------------------------------------

    def unready_reasons(self) -> list[str]:
        """Why the routes in force cannot be carried now (``/readyz``); empty: ready. Workers
        of other nodes count: a call placed here may be carried there."""
        return readiness.unready_reasons(self._policy.routes_in_force(), self.relays.everywhere())

    def route_facts(self, user: str) -> tuple[str, bool, Person] | None:
        """A connected client's region and whether it hides its address: what a shared pool
        hands to a partner's node, which must choose the same route for the pair; and its
        device and network, by which that partner may report it."""
        client = self._clients.get(user)
        return None if client is None else (client.region, client.hide_address, client.who)

    def pair_of(self, user: str) -> str | None:
        """The id of `user`'s current call: a partner's message for another one is stale."""
        client = self._clients.get(user)
        return None if client is None or client.call is None else client.call.pair_id

    def client_count(self) -> int:
        return len(self._clients)

    def waiting_count(self) -> int:
        return self._matchmaker.waiting_count()

    def pair_count(self) -> int:
        return self._matchmaker.pair_count()

    def calls_for_drain(self) -> tuple[list[str], list[CallView]]:
        """Who is out of a call (waiting or idle), and each call as a drain sees it
        (``signaling.drain``)."""
        out_of_call = [user for user, client in self._clients.items() if client.call is None]
        calls = dict.fromkeys(c.call for c in self._clients.values() if c.call is not None)
        return out_of_call, [
            CallView((call.offerer, call.answerer), call.route, call.connected_at is not None)
            for call in calls
        ]

    def snapshot(self) -> dict[str, object]:
        return {
            "clients": len(self._clients),
            "waiting": self.waiting_count(),
            "pairs": self.pair_count(),
            "pairs_made": self.stats.pairs_made,
            "messages_relayed": self.stats.messages_relayed,
            "errors_sent": self.stats.errors_sent.total(),
            "refused": dict(self.stats.refused),
            "calls_connected": self.stats.calls_connected,
            "calls_failed": self.stats.calls_failed,
            "fallbacks_to_relay": self.stats.fallbacks_to_relay,
            "calls_rerouted_after_worker_loss": self.stats.calls_rerouted_after_worker_loss,
            "relay_legs": sum(1 for leg in self._legs.values() if leg.call is not None),
            "relay_legs_parked": sum(1 for leg in self._legs.values() if leg.call is None),
            "relay_workers": self.relays.snapshot(),
            **({"relay_workers_elsewhere": e} if (e := self.relays.snapshot_elsewhere()) else {}),
            "reports": self.reports.total,
        }

    # -- client message handling ----------------------------------------------------------

    def _dispatch(self, user: str, message: p.ClientMessage, now: float, now_unix: float) -> None:
        mm = self._matchmaker
        match message:
            case p.Ping():
                self._send(user, p.Pong())
            case p.Join(interests=interests, hide_address=hide_address):
                mm.join(user, now, frozenset(tag.lower() for tag in interests))
                self._clients[user].hide_address = hide_address
                self._announce_waiting(user)
            case p.Next():
                mm.next(user, now)
                self._leave_call(user, park=True)
                self._announce_waiting(user)
            case p.Leave():
                mm.leave(user, now)
                self._leave_call(user, park=False)
                self._close_parked(self._clients[user])
                self._send(user, p.Idle())
            case p.Report(reason=reason):
                call = self._require_call(user)
                reported = call.partner_of(user)
                if self._report(user, reported, reason, now, now_unix):
                    mm.leave(reported, now)  # banned: out of play before anyone meets them
                else:
                    mm.report(user, now)
                self._leave_call(user, park=True)
                self._announce_waiting(user)
            case p.Chat(pair=pair_id, text=text):
                call = self._require_call(user, pair_id)
                self.chat.admit(user, text, now)  # the text is neither kept nor logged
                self._send(call.partner_of(user), p.RelayedChat(pair=pair_id, text=text))
            case p.Offer() | p.Answer() | p.Candidate() | p.CallState():
                call = self._require_call(user, message.pair)
                if call.hosted_elsewhere:  # the partner's node decides
                    self._partner_node_outbox.append((call.partner_of(user), user, message))
                else:
                    self._on_call_message(user, call, message, now)

    def _on_call_message(self, user: str, call: _Call, message: CallMessage, now: float) -> None:
        """A member's signal or call state, for a call hosted here."""
        match message:
            case p.Offer() | p.Answer() | p.Candidate():
                if call.route is Route.DIRECT:
                    self._relay_to_partner(user, call, message)
                else:
                    self._signal_to_worker(user, call, message)
            case p.CallState(pair=pair_id, state=state, route=route):
                if route is not None and route != call.route.value:
                    return  # about a route this call has already left
                if state == "failed":
                    self._on_call_failed(call)
                    return
                if state == "connected":
                    self.stats.calls_connected += 1
                    if call.connected_at is None:
                        call.connected_at = now
                        self.stats.call_outcomes[call.route.value, "connected"] += 1
                        log.info(
                            "call %s: connected, route %s, %.1f s after pairing",
                            call.pair_id, call.route.value, now - call.paired_at,
                        )  # fmt: skip
                if state == "reconnecting":  # TURN credentials are added where it is sent
                    self._send(user, p.IceServers(pair=pair_id))
                partner_state = p.PartnerState(pair=pair_id, state=state)
                self._send(call.partner_of(user), partner_state)

    def _require_call(self, user: str, pair_id: str | None = None) -> _Call:
        call = self._clients[user].call
        if call is None:
            raise p.ProtocolError("not_paired", "you have no partner right now")
        if pair_id is not None and pair_id != call.pair_id:
            raise p.ProtocolError(
                "stale_pair", f"pair {pair_id!r} is over; your current pair is {call.pair_id!r}"
            )
        return call

    def _report(self, user: str, reported: str, reason: str, now: float, now_unix: float) -> bool:
        """Record a report (metadata only) and ban the reported device once enough distinct
        reporters agree; the ban refuses it at the door like a moderation ban. True: banned."""
        call = self._require_call(user)
        reported_client = self._clients.get(reported)  # None: on another node of a pool
        reported_who = call.remote_who if reported_client is None else reported_client.who
        outcome = self.reports.record(
            ReportRecord(user, reported, now_unix, reason),
            self._clients[user].who.device or user,
            reported_who,
            now,
        )
        reporters = Ground(report_reason=reason, reporters=outcome.reporters)
        self._reports.append(
            OpenReport(
                id=self._new_id(),
                time=iso_utc(now_unix),
                reporter=user,
                reported=reported,
                call=call.pair_id,
                reason=reason,
                reporters=outcome.reporters,
                counted=outcome.counted,
                ban=outcome.ban,
            )
        )
        self._event("report", reporters, now_unix, reported, call, automated=False)
        log.info(  # session ids only: the person's key may be an address (Privacy, README)
            "report: %s reported %s (reason %r): %d distinct reporters in the window%s",
            user, reported, reason, outcome.reporters,
            "" if outcome.counted else "; a repeat from this reporter, not counted",
        )  # fmt: skip
        if outcome.ban:
            self._ban_for_reports(reported, reported_who, reporters, call, now, now_unix)
        return outcome.ban

    def banned_by_reports(
        self, reported: str, who: Person, reporters: int, now: float, now_unix: float
    ) -> None:
        """Reports filed here brought `who` (last seen as session `reported`) to a ban in the
        shared pool's count where this node's own had not (the other reporters filed theirs
        through other nodes; see ``signaling.cluster.reports``): banned as if counted here."""
        if not who.device or self.strikes.banned_until(Person(who.device, ""), now) is not None:
            return
        self._now = now
        ground = Ground(reporters=reporters)
        self._ban_for_reports(reported, who, ground, None, now, now_unix)

    def _ban_for_reports(
        self,
        reported: str,
        who: Person,
        reporters: Ground,
        call: _Call | None,
        now: float,
        now_unix: float,
    ) -> None:
        ban_s = self._config.reports.ban_s
        reason = f"reported by {reporters.reporters} people"
        self.strikes.ban(who, now + ban_s, reason)
        self.stats.bans["reports"] += 1
        self._event("ban", reporters, now_unix, reported, call, ban_s=ban_s)
        log.info("reports: %s banned until %.0f (%s)", reported, now_unix + ban_s, reason)
        if reported in self._clients:  # else its own node closes it, told of the ban
            self._send(reported, p.Banned(reason=reason, until_unix=now_unix + ban_s))
            self._to_close.append((reported, p.CLOSE_BANNED))

    def _relay_to_partner(self, user: str, call: _Call, message: p.PartnerSignal) -> None:
        """Only the two members of a pair may exchange SDP and ICE, and only for that pair."""
        relayed: p.ServerMessage
        match message:
            case p.Offer(sdp=sdp):
                relayed = p.RelayedOffer(pair=call.pair_id, sdp=sdp)
            case p.Answer(sdp=sdp):
                relayed = p.RelayedAnswer(pair=call.pair_id, sdp=sdp)
            case p.Candidate(candidate=candidate):
                relayed = p.RelayedCandidate(pair=call.pair_id, candidate=candidate)
        self.stats.messages_relayed += 1
        self._send(call.partner_of(user), relayed)

    def _signal_to_worker(self, user: str, call: _Call, message: p.PartnerSignal) -> None:
        """On relayed routes the relay is each member's peer: offers open legs on it."""
        if call.worker is None:
            raise p.ProtocolError("relay_unavailable", "no relay is available for this call")
        match message:
            case p.Offer(sdp=sdp):
                if (old := call.legs.get(user)) is not None:  # a second offer replaces the leg
                    self._close_leg(old)
                strict = call.route is Route.STRICT
                leg = _RelayLeg(self._new_id(), call.worker, user, strict, call)
                call.legs[user] = leg
                self._legs[leg.leg_id] = leg
                self.relays.add_leg(call.worker, leg.leg_id)
                self._to_worker(
                    call.worker, rc.OpenLeg(leg=leg.leg_id, offer=sdp, moderated=strict)
                )
            case p.Answer():
                raise p.ProtocolError("unexpected", "on a relayed call the relay answers offers")
            case p.Candidate(candidate=candidate):
                if user not in call.legs:
                    raise p.ProtocolError("unexpected", "send your offer before candidates")
                self._to_worker(
                    call.worker,
                    rc.AddCandidate(
                        leg=call.legs[user].leg_id,
                        candidate=candidate.candidate,
                        sdp_mid=candidate.sdpMid,
                        sdp_mline_index=candidate.sdpMLineIndex,
                    ),
                )

    # -- relay legs -------------------------------------------------------------------------

    def _on_leg_answer(self, worker: str, leg_id: str, sdp: str) -> None:
        leg = self._legs.get(leg_id)
        if leg is None:
            self._to_worker(worker, rc.CloseLeg(leg=leg_id))  # the call ended meanwhile
            return
        if not self._worker_moves(leg, LegEvent.ANSWERED):
            return
        assert leg.call is not None  # only an opening leg can be answered, and it has a call
        self._send(leg.member, p.RelayedAnswer(pair=leg.call.pair_id, sdp=sdp))
        if leg.call.answered():
            self._link(leg.call)

    def _on_leg_state(self, leg_id: str, state: str, detail: str) -> None:
        leg = self._legs.get(leg_id)
        if leg is None:
            return
        if state == "connected":
            self._worker_moves(leg, LegEvent.CONNECTED)
        elif leg.call is None:  # a kept connection broke: nobody to tell
            self._close_leg(leg)
        elif state == "failed":
            log.info("relay leg %s of call %s failed %s", leg_id, leg.call.pair_id, detail)
            self._fail_call(leg.call, "the relay could not reach one of you")

    def _worker_moves(self, leg: _RelayLeg, event: LegEvent) -> bool:
        """Apply an event a worker reported; one the leg's state does not allow (late or
        repeated) is ignored, since a worker's mistake must not corrupt signaling's books."""
        try:
            leg.state = advance(leg.state, event)
        except IllegalLegTransition as exc:
            log.warning("relay worker %s, leg %s: %s; ignored", leg.worker, leg.leg_id, exc)
            return False
        return True

    def _close_leg(self, leg: _RelayLeg) -> None:
        """Forget `leg` everywhere, and tell its worker to close it if the worker is still here."""
        leg.state = advance(leg.state, LegEvent.CLOSED)
        del self._legs[leg.leg_id]
        if leg.call is not None:
            del leg.call.legs[leg.member]
        elif (client := self._clients.get(leg.member)) is not None and client.parked is leg:
            client.parked = None
        if self.relays.has_worker(leg.worker):
            self.relays.remove_leg(leg.worker, leg.leg_id)
            self._to_worker(leg.worker, rc.CloseLeg(leg=leg.leg_id))

    def _end_call(self, call: _Call, park: frozenset[str] = frozenset()) -> None:
        """Close the call's legs, except those of `park` members that are worth keeping."""
        for leg in list(call.legs.values()):
            self._release_leg(leg, park=leg.member in park)

    def _release_leg(self, leg: _RelayLeg, park: bool) -> None:
        client = self._clients.get(leg.member)
        if park and client is not None and allows(leg.state, LegEvent.PARKED):
            self._park(leg, client)
        else:
            self._close_leg(leg)

    def _park(self, leg: _RelayLeg, client: _Client) -> None:
        assert leg.call is not None
        leg.state = advance(leg.state, LegEvent.PARKED)
        del leg.call.legs[leg.member]
        leg.call = None
        self._close_parked(client)
        client.parked = leg
        # re-inserted last: the books list parked legs in the order parked, oldest first
        self._legs[leg.leg_id] = self._legs.pop(leg.leg_id)
        self._to_worker(leg.worker, rc.Unlink(leg=leg.leg_id))

    def _close_parked(self, client: _Client) -> None:
        if client.parked is not None:
            self._close_leg(client.parked)

    def _on_moderation(
        self,
        call: _Call,
        offender: str,
        report: rc.Moderation,
        now: float,
        now_unix: float,
    ) -> None:
        """The relay stopped (or resumed) `offender`'s video: tell both, count a strike, and
        end the session of a repeat offender. Metadata only: label and score, never media."""
        partner = call.partner_of(offender)
        if offender == call.guest:  # its own node strikes it, and tells both
            self._partner_node_outbox.append((offender, partner, report))
            return
        label, score = report.label, report.score
        self.stats.moderation[report.state] += 1
        client = self._clients.get(offender)
        if client is None:
            return
        if report.state == "resumed":  # a fresh safe verdict: no finding to state
            self._event("resumed", Ground(), now_unix, offender, call)
            self._send(offender, _notice(call, "resumed", "you", label, 0))
            self._send(partner, _notice(call, "resumed", "partner", label, 0))
            return
        ground = Ground(label=label, score=score, threshold=report.threshold)
        self._event("blocked", ground, now_unix, offender, call)
        result = self.strikes.strike(client.who, now)
        self.stats.strikes += 1
        ground = msgspec.structs.replace(ground, strikes=result.strikes)
        self._event("strike", ground, now_unix, offender, call)
        log.info(
            "moderation: call %s: video of %s blocked (%s %.2f), strike %d",
            call.pair_id, offender, label, score, result.strikes,
        )  # fmt: skip
        self._send(offender, _notice(call, "blocked", "you", label, result.strikes))
        self._send(partner, _notice(call, "blocked", "partner", label, 0))
        if result.banned_until is not None:
            self._ban_for_strikes(offender, call, ground, result.banned_until, now, now_unix)

    def banned_by_pool(self, who: Person, strikes: int, now: float, now_unix: float) -> None:
        """A strike struck here brought `who` to a ban in the shared pool's count where this
        node's own count had not (another node struck it at the same moment; see
        ``signaling.cluster.bans``): the book holds the ban already; `who`'s clients here are
        told and closed, as for a ban made here."""
        until = self.strikes.banned_until(who, now)
        if until is None or not who.device:
            return
        self._now = now
        for user, client in list(self._clients.items()):
            if client.who.device == who.device:
                ground = Ground(strikes=strikes)
                self._ban_for_strikes(user, client.call, ground, until, now, now_unix)

    def close_banned(
        self, who: Person, until: float, reason: str, now: float, now_unix: float
    ) -> None:
        """`who` was banned (by another node of a shared pool, or by this one: then its
        session here is closed already): its sessions here are told, as the session a ban
        is made for, and closed. Nothing else is counted: the banning node did that."""
        if not who.device:
            return
        for user, client in list(self._clients.items()):
            if client.who.device == who.device:
                log.info("client %s closed: banned (%s)", user, reason)
                self._send(user, p.Banned(reason=reason, until_unix=now_unix + until - now))
                self._to_close.append((user, p.CLOSE_BANNED))

    def _ban_for_strikes(
        self,
        offender: str,
        call: _Call | None,
        ground: Ground,
        until: float,
        now: float,
        now_unix: float,
    ) -> None:
        until_unix = now_unix + (until - now)
        reason = strikes_reason(ground.strikes or 0)
        self.stats.bans["moderation"] += 1
        self._event("ban", ground, now_unix, offender, call, ban_s=until - now)
        log.info("moderation: %s banned until %.0f (%s)", offender, until_unix, reason)
        self._send(offender, p.Banned(reason=reason, until_unix=until_unix))
        self._to_close.append((offender, p.CLOSE_BANNED))

    def _on_call_failed(self, call: _Call) -> None:
        if call.route is Route.DIRECT:
            self.stats.fallbacks_to_relay += 1
            log.info(
                "call %s: direct connection failed %.1f s after pairing; moving to the relay",
                call.pair_id, self._now - call.paired_at,
            )  # fmt: skip
            self._reroute(call, Route.RELAY, "a direct connection was not possible")
        else:
            self._fail_call(call, "the connection through the relay failed")

    def _reroute(self, call: _Call, route: Route, reason: str) -> None:
        """Move a call to a relayed route on a live worker; both members offer again."""
        self._end_call(call)
        worker = self._find_room(moderated=route is Route.STRICT)
        if worker is None:
            self._fail_call(call, "no relay is available")
            return
        call.route, call.worker, call.connected_at = route, worker, None
        for member in (call.offerer, call.answerer):
            self._send(member, p.Reroute(pair=call.pair_id, route=route.value, reason=reason))

    def _fail_call(self, call: _Call, reason: str) -> None:
        self.stats.call_outcomes[call.route.value, "failed"] += 1
        log.info("call %s: failed, route %s: %s", call.pair_id, call.route.value, reason)
        self._end_call(call)
        for member in (call.offerer, call.answerer):
            client = self._clients.get(member)
            if (client is not None and client.call is call) or member == call.guest:
                self._send(member, p.CallEnded(pair=call.pair_id, reason=reason))

    # -- pairing --------------------------------------------------------------------------

    def _leave_call(self, user: str, park: bool) -> None:
        """`user` ends its call (Next, Report, Stop); with `park`, its relay leg stays open.
        The partner's leg is settled when its PartnerLost event is handled."""
        client = self._clients[user]
        if client.call is not None:
            if (leg := client.call.legs.get(user)) is not None:
                self._release_leg(leg, park)
            client.call = None

    def _announce_waiting(self, user: str) -> None:
        """Tell a user it is queued, unless the call already paired it (drained later)."""
        self._drain_matchmaker()
        if self._matchmaker.state_of(user) is UserState.WAITING:
            self._send(user, p.Waiting())

    def _drain_matchmaker(self) -> None:
        while (event := self._matchmaker.next_event()) is not None:
            match event:
                case Paired():
                    self._on_paired(event)
                case PartnerLost(user=user, reason=reason):
                    client = self._clients.get(user)
                    if client is None or client.call is None:
                        continue
                    self._log_ended(client.call, reason)
                    self._end_call(client.call, park=frozenset({user}))
                    self._send(user, p.PartnerLeft(pair=client.call.pair_id, reason=reason))
                    client.call = None
                    if self._matchmaker.state_of(user) is UserState.WAITING:
                        self._send(user, p.Waiting())
                case Expired(user=user):
                    client = self._clients.pop(user, None)
                    self.chat.forget(user)
                    if client is not None:
                        log.info("client %s timed out (no heartbeat)", user)
                        if client.call is not None:
                            self._end_call(client.call)
                        self._close_parked(client)
                        self._to_close.append((user, p.CLOSE_TIMED_OUT))

    def _log_ended(self, call: _Call, reason: str) -> None:
        connected = call.connected_at
        log.info(
            "call %s: ended (%s) %.1f s after pairing, route %s, %s",
            call.pair_id, reason, self._now - call.paired_at, call.route.value,
            "never connected" if connected is None else f"connected {self._now - connected:.1f} s",
        )  # fmt: skip

    def _on_paired(self, event: Paired) -> None:
        first, second = event.first, event.second
        remote_who = Person(event.remote_device, event.remote_network)
        a, b = (
            self._clients.get(user)
            or _Client(
                event.remote_region,
                remote_who,
                hide_address=event.remote_hides_address,
                remote=True,
            )
            for user in (first, second)
        )
        route = self._policy.route_for_pair(a.region, b.region)
        if route is Route.DIRECT and (a.hide_address or b.hide_address):
            route = Route.RELAY  # a direct call shows each member the other's address
        call = _Call(event.pair or self._new_id(), first, second, route, paired_at=self._now)
        call.remote_who = remote_who
        a.call = b.call = call
        if b.remote:  # the first member's node hosts (see the module docstring)
            call.guest = second
        call.hosted_elsewhere = a.remote
        self.stats.pairs_made += 1
        for member, client in ((first, a), (second, b)):
            if not client.remote:  # a partner on another node is counted there
                self.stats.pairing_wait.observe(self._now - self._matchmaker.waiting_since(member))
        offerer = p.Paired(pair=call.pair_id, role="offerer", route=route.value)
        if route is Route.DIRECT:
            log.info("call %s: paired %s with %s, route direct", call.pair_id, first, second)
            answerer = p.Paired(pair=call.pair_id, role="answerer", route=route.value)
            for member, client, told in ((first, a, offerer), (second, b, answerer)):
                if not client.remote:  # a partner's own node tells it
                    self._close_parked(client)
                    self._send(member, told)
            return
        if call.hosted_elsewhere:  # the host places it; its member's leg is opened there
            self._close_parked(b)
            self._send(second, offerer)
            return
        call.worker = self._place(call, (a, b))
        log.info(
            "call %s: paired %s with %s, route %s, relay worker %s",
            call.pair_id, first, second, route.value, call.worker,
        )  # fmt: skip
        strict = route is Route.STRICT
        for member, client in ((first, a), (second, b)):
            if client.remote:  # the guest's node tells it; its leg is a new one
                continue
            # a worker decides whether a leg is moderated when it opens it: a strict call
            # never adopts an unmoderated leg, nor a relayed call a moderated one
            kept = client.parked
            reuse = kept is not None and (kept.worker, kept.moderated) == (call.worker, strict)
            if reuse:
                self._adopt_parked(call, member, client)
            else:
                self._close_parked(client)
            # the relay answers, so both members offer, except over a leg that is kept
            self._send(
                member,
                p.Paired(pair=call.pair_id, role="offerer", route=route.value, reuse=reuse),
            )
        if call.worker is None:
            self._fail_call(call, "no relay is available")
        elif call.answered():
            self._link(call)

    def _place(self, call: _Call, clients: tuple[_Client, _Client]) -> str | None:
        """Prefer a worker that already holds a usable parked leg of a member (no new
        handshake for them), as long as it has room for the legs still to be opened."""
        moderated = call.route is Route.STRICT
        usable = [c.parked for c in clients if c.parked and c.parked.moderated == moderated]
        for parked in usable:
            new_legs = sum(1 for other in usable if other.worker != parked.worker) + (
                2 - len(usable)
            )
            if self.relays.has_room(parked.worker, new_legs, moderated):
                return parked.worker
        return self._find_room(moderated=moderated)

    def _find_room(self, legs_needed: int = 2, moderated: bool = False) -> str | None:
        """A worker with room for a new call; when all are full, parked legs (idle
        connections kept for a quicker Next) give way, oldest first, to live calls."""
        worker = self.relays.place(legs_needed, moderated)
        for leg in [leg for leg in self._legs.values() if leg.state is LegState.PARKED]:
            if worker is not None:
                break
            self._close_leg(leg)
            worker = self.relays.place(legs_needed, moderated)
        return worker

    def _adopt_parked(self, call: _Call, member: str, client: _Client) -> None:
        leg, client.parked = client.parked, None
        assert leg is not None
        leg.state = advance(leg.state, LegEvent.ADOPTED)
        leg.call = call
        call.legs[member] = leg

    def _link(self, call: _Call) -> None:
        assert call.worker is not None
        first, second = call.legs[call.offerer], call.legs[call.answerer]
        self._to_worker(call.worker, rc.Link(first=first.leg_id, second=second.leg_id))

    def _send(self, user: str, message: p.ServerMessage) -> None:
        self._outbox.append((user, message))

    def _event(
        self,
        decision: Decision,
        ground: Ground,
        now_unix: float,
        subject: str = "",
        call: _Call | None = None,
        ban_s: float | None = None,
        automated: bool = True,
        address: str = "",
    ) -> None:
        """`address`: the refused client's, for ban_refused; else the subject's is looked up
        (kept only when the operator opted in, see `connect`)."""
        subject_client = self._clients.get(subject)
        if subject_client is not None:
            address = subject_client.address
        elif not self._config.events.include_addresses:
            address = ""
        self._events.append(
            OperatorEvent(
                id=self._new_id(),
                time=iso_utc(now_unix),
                decision=decision,
                automated=automated,
                ground=ground,
                subject=subject,
                call="" if call is None else call.pair_id,
                ban_s=ban_s,
                address=address,
            )
        )

    def _to_worker(self, worker: str, message: rc.SignalingMessage) -> None:
        self._worker_outbox.append((worker, message))
