"""The signaling core: connections, pairs and message routing, without any I/O.

The WebSocket layer (``signaling.app``) feeds it validated messages and the current time and
sends whatever it leaves in the outbox; the hub never touches a socket or a clock. This keeps
the rules (who may talk to whom, what each side is told and when) testable in plain Python,
and the asyncio code thin. Matchmaking itself is delegated to ``signaling.matchmaking``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from chatguard.config import Config, Route
from signaling import protocol as p
from signaling.ice import ice_servers_for
from signaling.matchmaking import (
    Expired,
    Matchmaker,
    MatchmakingError,
    MatchmakingSettings,
    Paired,
    PartnerLost,
    UserState,
)
from signaling.policy import RoutePolicy
from signaling.reports import ReportLog, ReportRecord

log = logging.getLogger("chatguard.signaling")


@dataclass(slots=True)
class _Pair:
    """One side's view of its current pair."""

    pair_id: str
    partner: str
    route: Route


@dataclass(slots=True)
class _Client:
    region: str
    pair: _Pair | None = None


@dataclass(slots=True)
class HubStats:
    pairs_made: int = 0
    messages_relayed: int = 0
    errors_sent: int = 0
    calls_connected: int = 0
    calls_failed: int = 0


def _new_token() -> str:
    return secrets.token_urlsafe(9)


class SignalingHub:
    """Owns every connected client's state; pure logic, driven by the I/O layer."""

    def __init__(
        self,
        config: Config,
        policy: RoutePolicy,
        matchmaker: Matchmaker,
        new_id: Callable[[], str] = _new_token,
    ) -> None:
        self._config = config
        self._policy = policy
        self._matchmaker = matchmaker
        self._new_id = new_id
        self._clients: dict[str, _Client] = {}
        self._outbox: list[tuple[str, p.ServerMessage]] = []
        self._to_close: list[str] = []
        self.reports = ReportLog()
        self.stats = HubStats()

    @staticmethod
    def matchmaking_settings(config: Config) -> MatchmakingSettings:
        mm = config.matchmaking
        return MatchmakingSettings(
            repair_cooldown_s=mm.repair_cooldown_s,
            interest_fallback_s=mm.interest_fallback_s,
            heartbeat_timeout_s=mm.heartbeat_timeout_s,
        )

    # -- inputs ---------------------------------------------------------------------------

    def connect(self, region: str, now: float, now_unix: float) -> str:
        """Register a new connection; returns its id and queues its welcome."""
        user = self._new_id()
        self._clients[user] = _Client(region=region)
        self._matchmaker.connect(user, now)
        mm = self._config.matchmaking
        self._send(
            user,
            p.Welcome(
                id=user,
                region=region,
                ice_servers=ice_servers_for(self._config.ice, user, now_unix),
                heartbeat_interval_s=mm.heartbeat_interval_s,
                connect_timeout_s=mm.connect_timeout_s,
            ),
        )
        return user

    def receive(self, user: str, message: p.ClientMessage, now: float, now_unix: float) -> None:
        """Apply one validated message; a refusal is queued as an error reply to `user`."""
        if user not in self._clients:
            return
        try:
            self._matchmaker.heartbeat(user, now)
            self._dispatch(user, message, now, now_unix)
        except p.ProtocolError as exc:
            self.send_error(user, exc)
        except MatchmakingError as exc:
            self.send_error(user, p.ProtocolError("bad_state", str(exc)))
        self._drain_matchmaker()

    def disconnect(self, user: str, now: float) -> None:
        if self._clients.pop(user, None) is None:
            return
        self._matchmaker.disconnect(user, now)
        self._drain_matchmaker()

    def handle_timer(self, now: float) -> None:
        self._matchmaker.handle_timer(now)
        self._drain_matchmaker()

    def next_timer(self) -> float | None:
        return self._matchmaker.next_timer()

    def send_error(self, user: str, error: p.ProtocolError) -> None:
        self.stats.errors_sent += 1
        self._send(user, p.Error(code=error.code, message=error.message))

    # -- outputs --------------------------------------------------------------------------

    def drain_outbox(self) -> list[tuple[str, p.ServerMessage]]:
        out, self._outbox = self._outbox, []
        return out

    def drain_closes(self) -> list[str]:
        out, self._to_close = self._to_close, []
        return out

    # -- queries --------------------------------------------------------------------------

    def client_count(self) -> int:
        return len(self._clients)

    def snapshot(self) -> dict[str, int]:
        return {
            "clients": len(self._clients),
            "waiting": self._matchmaker.waiting_count(),
            "pairs": self._matchmaker.pair_count(),
            "pairs_made": self.stats.pairs_made,
            "messages_relayed": self.stats.messages_relayed,
            "errors_sent": self.stats.errors_sent,
            "calls_connected": self.stats.calls_connected,
            "calls_failed": self.stats.calls_failed,
            "reports": self.reports.total,
        }

    # -- internals ------------------------------------------------------------------------

    def _dispatch(self, user: str, message: p.ClientMessage, now: float, now_unix: float) -> None:
        mm = self._matchmaker
        match message:
            case p.Ping():
                self._send(user, p.Pong())
            case p.Join(interests=interests):
                mm.join(user, now, frozenset(tag.lower() for tag in interests))
                self._announce_waiting(user)
            case p.Next():
                mm.next(user, now)
                self._clients[user].pair = None
                self._announce_waiting(user)
            case p.Leave():
                mm.leave(user, now)
                self._clients[user].pair = None
                self._send(user, p.Idle())
            case p.Report(reason=reason):
                pair = self._require_pair(user)
                count = self.reports.record(ReportRecord(user, pair.partner, now_unix, reason))
                log.info("report: %s reported %s (%d reports so far)", user, pair.partner, count)
                mm.report(user, now)
                self._clients[user].pair = None
                self._announce_waiting(user)
            case p.Offer() | p.Answer() | p.Candidate():
                self._relay_to_partner(user, message)
            case p.CallState(pair=pair_id, state=state):
                pair = self._require_pair(user, pair_id)
                if state == "connected":
                    self.stats.calls_connected += 1
                else:
                    self.stats.calls_failed += 1
                    log.info("call %s (%s route) failed to connect", pair.pair_id, pair.route.value)

    def _require_pair(self, user: str, pair_id: str | None = None) -> _Pair:
        pair = self._clients[user].pair
        if pair is None:
            raise p.ProtocolError("not_paired", "you have no partner right now")
        if pair_id is not None and pair_id != pair.pair_id:
            raise p.ProtocolError(
                "stale_pair", f"pair {pair_id!r} is over; your current pair is {pair.pair_id!r}"
            )
        return pair

    def _relay_to_partner(self, user: str, message: p.PartnerSignal) -> None:
        """Only the two members of a pair may exchange SDP and ICE, and only for that pair."""
        pair = self._require_pair(user, message.pair)
        relayed: p.ServerMessage
        match message:
            case p.Offer(sdp=sdp):
                relayed = p.RelayedOffer(pair=pair.pair_id, sdp=sdp)
            case p.Answer(sdp=sdp):
                relayed = p.RelayedAnswer(pair=pair.pair_id, sdp=sdp)
            case p.Candidate(candidate=candidate):
                relayed = p.RelayedCandidate(pair=pair.pair_id, candidate=candidate)
        self.stats.messages_relayed += 1
        self._send(pair.partner, relayed)

    def _announce_waiting(self, user: str) -> None:
        """Tell a user it is queued, unless the call already paired it (drained later)."""
        self._drain_matchmaker()
        if self._matchmaker.state_of(user) is UserState.WAITING:
            self._send(user, p.Waiting())

    def _drain_matchmaker(self) -> None:
        while (event := self._matchmaker.next_event()) is not None:
            match event:
                case Paired(first=first, second=second):
                    self._on_paired(first, second)
                case PartnerLost(user=user, reason=reason):
                    client = self._clients.get(user)
                    if client is None or client.pair is None:
                        continue
                    self._send(user, p.PartnerLeft(pair=client.pair.pair_id, reason=reason))
                    client.pair = None
                    if self._matchmaker.state_of(user) is UserState.WAITING:
                        self._send(user, p.Waiting())
                case Expired(user=user):
                    if self._clients.pop(user, None) is not None:
                        log.info("client %s timed out (no heartbeat)", user)
                        self._to_close.append(user)

    def _on_paired(self, first: str, second: str) -> None:
        a, b = self._clients[first], self._clients[second]
        route = self._policy.route_for_pair(a.region, b.region)
        pair_id = self._new_id()
        a.pair = _Pair(pair_id, second, route)
        b.pair = _Pair(pair_id, first, route)
        self.stats.pairs_made += 1
        self._send(first, p.Paired(pair=pair_id, role="offerer", route=route.value))
        self._send(second, p.Paired(pair=pair_id, role="answerer", route=route.value))

    def _send(self, user: str, message: p.ServerMessage) -> None:
        self._outbox.append((user, message))
