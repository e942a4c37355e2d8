"""One signaling process's side of the shared pool: its matchmaker view and its Redis bridge.

``ClusterMatchmaker`` is what the hub drives instead of the in-memory ``Matchmaker`` (same
methods, same events), without I/O: it keeps the node's own users' view (waiting, paired with
whom) and turns inputs into an ordered list of operations for the pool. ``ClusterNode`` is the
asyncio part: it sends those operations to Redis, in order, on one connection; it listens on the
node's channel, where the pool script publishes every event about this node's users and other
nodes publish messages for them; it keeps the node's presence key alive and runs the pool's
timers.

Why pub/sub and not streams: a message matters only to a node that is up to hand it to an open
WebSocket, and a node that missed messages (it died) loses its clients anyway, whose partners
the presence key sends back to the pool; streams' persistence and replay would buy nothing and
cost trimming. Pub/sub delivers a channel's messages in the order Redis ran the commands that
published them, and since the pool script publishes from inside its atomic call, a pairing
reaches both nodes before anything either member then sends; one connection per node for
everything it sends keeps each pair's messages in order.

The view may run ahead of the pool (an input is applied at once and sent a moment later) or
behind it (an event published before our input ran arrives after it). Next and report carry
the partner the node believed in, and the script ignores them when the pool has moved on
(Stop applies whatever the user is doing); events the view has already overtaken are dropped
here. Known gap: two inputs of one user within one round trip to Redis (Stop then Start, say)
can let a pairing made before the first be taken after the second; per-user input sequence
numbers in the events would close it (issue 12).

Relay workers are shared the same way. Each node publishes each of its workers (its load,
room, draining and moderation state) at every load report, as a key whose TTL the reports
renew (so a dead node's workers lapse) and on the ``workers`` channel, from which every node
keeps its own view (``RelayDirectory.update_elsewhere``): placement reads that view, never
Redis. A call's host (``signaling.call_hub``) sends commands for a worker of another node to
that node's channel, which passes them on and sends the worker's word about those legs back
(``signaling.cluster.foreign_legs``); the guest's node and the host exchange their members'
call messages on the same channels. All of it rides the node's one connection, so each of
these streams stays in order. Besides the pool's events, a node's channel carries JSON arrays:
["msg", user, pair, text] (a server message for a local user), ["call", user, partner, kind,
text] (a guest's call message, or a moderation report about a guest), ["cmd", host, worker,
text] (a command for a local worker) and ["wmsg", node, worker, text] (a worker's word for the
host).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from relay import control as rc
from signaling import protocol as p
from signaling.cluster import pool
from signaling.cluster.bans import SharedStrikeBook
from signaling.cluster.foreign_legs import ForeignLegs
from signaling.cluster.reports import REPORT_SCRIPT, FiledReport, SharedReportLog
from signaling.cluster.scripts import Scripts
from signaling.config import Config
from signaling.matchmaking import (
    Event,
    Expired,
    MatchmakingError,
    MatchmakingSettings,
    Paired,
    PartnerLost,
    UserState,
)
from signaling.relays import WorkerRecord
from signaling.strikes import NOBODY, Person

if TYPE_CHECKING:
    from collections.abc import Callable

    from signaling.call_hub import SignalingHub

    HubAction = Callable[[SignalingHub, float, float], None]
    """Something the hub does, given the time (monotonic and Unix)."""

log = logging.getLogger("chatguard.cluster")

TICK_S = 0.25
"""How often each node runs the pool's timers (interest fallback, cool-down ends, expiry)."""
TICK_PERIOD_MS = str(int(TICK_S * 1000))
"""The timers run once per this period for the whole pool, by whichever node asks first."""
RETRY_S = 0.5
"""Pause before trying Redis again after an error."""
UNAVAILABLE = p.Error(
    code="unavailable",
    message="matchmaking is paused for a moment (its shared store is unreachable); "
    "your request is kept and carried out when it is back",
)
"""Told once per outage to each user whose request waits for Redis."""
ANY_PAIR = "*"
"""A forwarded message for its user whatever call it is in (an error reply has no pair)."""
WORKER_REPORTS_MISSED = 3
"""A worker of another node is forgotten once this many of its load reports failed to come
(or presence_ttl_s, if longer): its node or the worker died."""
_record_decoder = msgspec.json.Decoder(WorkerRecord)
STRIKE_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({ARGV[3], n, left}))
return {n, left}
"""
"""One strike, atomically: count it, start the window with the first, tell every node."""

Operation = tuple[str, ...]
"""("script", op, *args) for the pool script; ("connect", user) and ("join", user, interests
as JSON), completed when sent with what the hub knows of the user then; ("publish", node,
payload); ("worker", id, record as JSON or "" when gone); ("strike", device, network);
("report", device, network, reported session, reporter); ("ban", device, network, until,
what the person is told)."""


_INPUTS = frozenset(("connect", "join", "script"))
"""Operations that are a user's own input to the pool: ("connect" or "join", user, ...) and
("script", op, user, ...)."""


@dataclass(slots=True)
class _View:
    state: UserState
    partner: str | None = None
    interests: frozenset[str] = frozenset()
    """As last joined: to queue the user again in a pool that lost it."""
    waiting_since: float = 0.0
    """When it last started waiting, by the hub's clock (still set once paired)."""


class ClusterMatchmaker:
    """The hub's matchmaker when the pool lives in Redis: a view plus outgoing operations."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._views: dict[str, _View] = {}
        self._remote_nodes: dict[str, str] = {}
        """Partners connected to other nodes -> their node, while paired with one of ours."""
        self._operations: list[Operation] = []
        self._beats: set[str] = set()
        self._events: list[Event] = []

    # -- inputs from the hub ----------------------------------------------------------------

    def connect(self, user: str, now: float) -> None:
        if user in self._views:
            raise MatchmakingError(f"user {user!r} is already connected")
        self._views[user] = _View(UserState.IDLE, waiting_since=now)
        self._operations.append(("connect", user))

    def join(self, user: str, now: float, interests: frozenset[str] = frozenset()) -> None:
        view = self._view(user)
        if view.state is UserState.PAIRED:
            raise MatchmakingError("you are in a call; use next to change partner")
        view.state, view.interests, view.waiting_since = UserState.WAITING, interests, now
        self._operations.append(("join", user, pool.encode_interests(interests)))

    def next(self, user: str, now: float) -> None:
        self._part(user, "next", now)

    def report(self, user: str, now: float) -> None:
        if self._view(user).state is not UserState.PAIRED:
            raise MatchmakingError("you have no partner to report")
        self._part(user, "report", now)

    def leave(self, user: str, now: float) -> None:
        """Also for a partner on another node, banned by reports here: the pool re-queues
        our member at once, as the in-memory matchmaker would (the pool's word that it lost
        its partner is then dropped as overtaken). Stop is not about a partner: the pool
        applies it to whatever the user is doing by then."""
        if (view := self._views.get(user)) is not None:
            self._unpair_view(user, view)
            view.state = UserState.IDLE
        for member, other in list(self._views.items()):
            if other.partner == user:
                self._unpair_view(member, other)
                other.state, other.waiting_since = UserState.WAITING, now
        self._operations.append(("script", "leave", user, ""))

    def disconnect(self, user: str, now: float) -> None:
        view = self._views.pop(user, None)
        if view is not None:
            self._unpair_view(user, view)
            self._beats.discard(user)
            self._operations.append(("script", "disconnect", user))

    def heartbeat(self, user: str, now: float) -> None:
        self._view(user)
        self._beats.add(user)

    def handle_timer(self, now: float) -> None:
        """The pool's timers run in Redis (``ClusterNode``); nothing is due here."""

    def next_timer(self) -> float | None:
        return None

    # -- outputs and queries ----------------------------------------------------------------

    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    def state_of(self, user: str) -> UserState | None:
        view = self._views.get(user)
        return None if view is None else view.state

    def waiting_since(self, user: str) -> float:
        return self._views[user].waiting_since

    def partner_of(self, user: str) -> str | None:
        view = self._views.get(user)
        return None if view is None else view.partner

    def waiting_count(self) -> int:
        return sum(1 for view in self._views.values() if view.state is UserState.WAITING)

    def pair_count(self) -> int:
        """Pairs with a member on this node."""
        return len(
            {frozenset((user, view.partner)) for user, view in self._views.items() if view.partner}
        )

    def user_count(self) -> int:
        return len(self._views)

    # -- the node's side ----------------------------------------------------------------------

    def forward(self, user: str, message: p.ServerMessage) -> bool:
        """Send a message to `user`, a partner on another node; False: no such partner."""
        node = self._remote_nodes.get(user)
        if node is None:
            return False
        pair = ANY_PAIR if isinstance(message, p.Error) else getattr(message, "pair", "")
        payload = json.dumps(["msg", user, pair, p.encode_server_message(message)])
        self._operations.append(("publish", node, payload))
        return True

    def node_of_partner(self, user: str) -> str | None:
        """The node of `user`, a partner connected to another node; None: not one."""
        return self._remote_nodes.get(user)

    def publish(self, node: str, payload: str) -> None:
        """Send `payload` to `node`'s channel, in order with everything else this node sends."""
        self._operations.append(("publish", node, payload))

    def share_worker(self, record: WorkerRecord | None, worker: str) -> None:
        """Tell every node about one of this node's workers; None: it is gone."""
        encoded = "" if record is None else msgspec.json.encode(record).decode()
        self._operations.append(("worker", worker, encoded))

    def drain_operations(self) -> list[Operation]:
        """What to send to Redis, in order; due heartbeats go last, as one operation, less
        those of users with an input of their own among them (the pool counts any input as
        a sign of life, at the same time)."""
        out, self._operations = self._operations, []
        beats, self._beats = self._beats, set()
        beats.difference_update(
            op[1] if op[0] in ("connect", "join") else op[2] for op in out if op[0] in _INPUTS
        )
        if beats:
            out.append(("script", "heartbeat", *sorted(beats)))
        return out

    def register_again(self) -> None:
        """The pool lost everything (Redis restarted empty): hand it this node's users again,
        before anything queued since. Waiting users wait again; a pair is restored once both
        members are back (the second node to restore it does it), so a call in progress
        goes on and Next still tells the partner."""
        again: list[Operation] = []
        for user, view in self._views.items():
            again.append(("connect", user))
            if view.state is UserState.WAITING:
                again.append(("join", user, pool.encode_interests(view.interests)))
            elif view.partner is not None:
                again.append(("script", "restore", user, view.partner))
        self._operations[:0] = again

    def deliver(self, event: pool.PoolEvent, now: float) -> None:
        """An event the pool published for this node, arrived at `now` (the hub's clock); the
        hub reads it with `next_event`. Events the view has overtaken are dropped."""
        match event:
            case pool.SharedPairing(event=Paired(first=first, second=second)):
                self._paired(event, first, second)
            case PartnerLost(user=user, partner=partner):
                view = self._views.get(user)
                if view is not None and view.partner == partner:
                    self._unpair_view(user, view)
                    view.state, view.waiting_since = UserState.WAITING, now  # re-queued
                    self._events.append(event)
            case Expired(user=user):
                if self._views.pop(user, None) is not None:
                    self._events.append(event)

    # -- helpers --------------------------------------------------------------------------

    def _view(self, user: str) -> _View:
        view = self._views.get(user)
        if view is None:
            raise MatchmakingError(f"unknown user {user!r}")
        return view

    def _part(self, user: str, reason: str, now: float) -> None:
        view = self._view(user)
        if view.state is UserState.WAITING:
            return
        expect = self._unpair_view(user, view)
        view.state, view.waiting_since = UserState.WAITING, now
        self._operations.append(("script", reason, user, expect))

    def _unpair_view(self, user: str, view: _View) -> str:
        """Forget `user`'s partner here; returns it ("" if none) for the pool's stale check."""
        partner, view.partner = view.partner, None
        if partner is None:
            return ""
        self._remote_nodes.pop(partner, None)
        return partner

    def _paired(self, event: pool.SharedPairing, first: str, second: str) -> None:
        """Taken only if every member connected here still waits: one that has moved on
        (left, went) has an input on its way that undoes the pairing, and the word that its
        partner lost it will then find that partner waiting already, as the pool has it."""
        members = (
            (first, event.first, second, event.second),
            (second, event.second, first, event.first),
        )
        here = [(user, other, where) for user, at, other, where in members if at.node == self.node]
        if not here or not all(self._waiting(user) for user, _, _ in here):
            return
        local = {user for user, _, _ in here}
        remote = pool.Member("", "", hide_address=False)
        for user, other, where in here:
            view = self._views[user]
            view.state, view.partner = UserState.PAIRED, other
            if other not in local:
                self._remote_nodes[other] = where.node
                remote = where
        self._events.append(
            Paired(
                first,
                second,
                pair=event.pair,
                remote_region=remote.region,
                remote_hides_address=remote.hide_address,
                remote_device=remote.who.device,
                remote_network=remote.who.network,
            )
        )

    def _waiting(self, user: str) -> bool:
        view = self._views.get(user)
        return view is not None and view.state is UserState.WAITING


def node_name(config: Config) -> str:
    """The configured name, or one unique to this run: a restarted process must not be taken
    for the dead one whose users the pool is handing back."""
    return config.cluster.node_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class NodeHost(Protocol):
    """What a node asks of the signaling service it serves."""

    def route_facts(self, user: str) -> tuple[str, bool, Person] | None:
        """A local user's region, address choice and person (``SignalingHub.route_facts``)."""

    def pair_of(self, user: str) -> str | None:
        """A local user's current pair (``SignalingHub.pair_of``)."""

    def send_text(self, user: str, text: str) -> None:
        """Hand an encoded message to a local user's socket."""

    def on_pool_events(self) -> None:
        """The matchmaker has new events for the hub."""

    def from_partner_node(self, user: str, partner: str, kind: str, text: str) -> None:
        """The other node of a call sent a call message (`kind` "client") or a moderation
        report ("moderation") about the call of local `user` with `partner`."""

    def command_from_host(self, host: str, worker: str, text: str) -> None:
        """`host` sent a command for `worker`, one of ours."""

    def from_worker_elsewhere(self, worker: str, node: str, text: str) -> None:
        """`worker` of `node` said something about a leg of a call hosted here."""

    def worker_elsewhere(self, record: WorkerRecord, valid_s: float) -> None:
        """Another node published one of its workers, for `valid_s` unless published again."""

    def worker_gone_elsewhere(self, worker: str, node: str) -> None:
        """Another node's worker left (or that node or its record lapsed)."""

    def on_tick(self) -> None:
        """Called every ``TICK_S``: time to forget lapsed workers of other nodes."""

    def hub_acts(self, act: HubAction) -> None:
        """Let the hub act on the pool's word (a ban the pool's counts made, or one another
        node made) at this moment, and send what it says."""


class ClusterNode:
    """The asyncio bridge between one node's ``ClusterMatchmaker`` and Redis."""

    def __init__(self, config: Config, settings: MatchmakingSettings, host: NodeHost) -> None:
        self.matchmaker = ClusterMatchmaker(node_name(config))
        mod = config.moderation
        self.strikes = SharedStrikeBook(
            mod.strikes_to_ban, mod.strike_window_s, mod.ban_s, mod.devices_to_ban_network
        )
        self.reports = SharedReportLog(config.reports.reporters_to_ban, config.reports.window_s)
        self.foreign_legs = ForeignLegs()
        self._cluster = config.cluster
        self._strike_window_s = mod.strike_window_s
        self._report_window_ms = str(int(config.reports.window_s * 1000))
        self._settings = settings
        self._prefix = config.cluster.key_prefix
        self._presence_key = self._prefix + "alive:" + self.name
        self._presence_ms = int(config.cluster.presence_ttl_s * 1000)
        self._host = host
        self.worker_ttl_s = max(
            config.cluster.presence_ttl_s, rc.LOAD_INTERVAL_S * WORKER_REPORTS_MISSED
        )
        """How long a worker's record stands without a new load report."""
        self._rng = random.Random()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._unsent: list[Operation] = []
        """A batch Redis did not take, sent again (first) until it does."""
        self._outage = False
        self._told: set[str] = set()
        """Users told of the outage under way (once each)."""
        self._run_id = ""
        """The Redis server's run id: a new one means it restarted, maybe empty."""
        self.messages_refused = 0
        """Messages from other nodes that could not be handled (logged each)."""
        self._listened_at = 0.0
        """When the node's channel was last read without error (monotonic)."""
        self._redis: Any = None
        self._scripts = Scripts(
            {"pool": pool.SCRIPT, "strike": STRIKE_SCRIPT, "report": REPORT_SCRIPT}
        )
        self._pubsub: Any = None

    @property
    def name(self) -> str:
        return self.matchmaker.node

    def safety(self) -> tuple[SharedStrikeBook, SharedReportLog]:
        """The strikes and reports the hub keeps, shared with the other nodes."""
        return self.strikes, self.reports

    def wake(self) -> None:
        """Operations are waiting: send them."""
        self._wake.set()

    async def start(self) -> None:
        import redis.asyncio as aioredis  # only a node of a cluster needs the client

        self._redis = aioredis.Redis.from_url(self._cluster.redis_url, decode_responses=True)
        await self._scripts.load(self._redis)
        self._run_id = (await self._redis.info("server"))["run_id"]
        await self._renew_presence()
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(
            self._prefix + "node:" + self.name,
            self._prefix + "bans",
            self._prefix + "workers",
            self._prefix + "strikes",
            self._prefix + "reports",
        )
        await self._load_bans()
        await self._load_strikes()
        self._tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._listen_loop(self._pubsub)),
            asyncio.create_task(self._presence_loop()),
            asyncio.create_task(self._tick_loop()),
        ]
        log.info("cluster node %s joined the pool at %s", self.name, self._cluster.redis_url)

    async def stop(self) -> None:
        """Leave cleanly: what is still queued is sent, and the presence key goes at once, so
        the other nodes hand this node's remaining users' partners back without waiting."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._send(self._unsent + self._drain()), 2.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._redis.delete(self._presence_key)
        await self._pubsub.aclose()
        await self._redis.aclose()

    # -- loops ------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._unsent = self._unsent + self._drain(), []
            try:
                await self._send(batch)
            except Exception as exc:  # Redis is unreachable: keep the batch, say so, retry
                self._unsent = batch
                if not self._outage:
                    log.error("cluster: Redis unreachable, %d operations wait: %s", len(batch), exc)
                self._outage = True
                self._tell_waiting_users(batch)
                await asyncio.sleep(RETRY_S)
                self._wake.set()
            else:
                if self._outage:
                    log.info("cluster: Redis is back; %d operations sent", len(batch))
                self._outage = False
                self._told.clear()

    def forward_to_partner_node(self, user: str, partner: str, kind: str, text: str) -> None:
        """A call message (`kind` "client") or moderation report ("moderation") for the node
        of `user`, a partner connected there, about its call with `partner`, ours."""
        node = self.matchmaker.node_of_partner(user)
        if node is not None:
            self.matchmaker.publish(node, json.dumps(["call", user, partner, kind, text]))

    def command_worker(self, node: str, worker: str, text: str) -> None:
        """A command for `worker`, connected to `node`: that node passes it on."""
        self.matchmaker.publish(node, json.dumps(["cmd", self.name, worker, text]))

    def reply_to_host(self, host: str, worker: str, text: str) -> None:
        """`worker`'s word about a leg of a call `host` hosts."""
        self.matchmaker.publish(host, json.dumps(["wmsg", self.name, worker, text]))

    def _tell_waiting_users(self, batch: list[Operation]) -> None:
        """A request that waits for Redis gets a clear answer, not silence; the connection
        stays (a call in progress does not need Redis)."""
        text = p.encode_server_message(UNAVAILABLE)
        asks = (("script", "next"), ("script", "report"), ("script", "leave"))
        users = {op[1] for op in batch if op[0] == "join"}
        users |= {op[2] for op in batch if op[:2] in asks}
        for user in sorted(users - self._told):
            self._host.send_text(user, text)
        self._told |= users

    def _drain(self) -> list[Operation]:
        """The pool's operations, then the strikes and bans made here meanwhile, each ban at
        the longest this node knows for that device (Redis keeps one value: a shorter ban must
        not replace a longer one made elsewhere)."""
        shared: list[Operation] = [
            ("strike", who.device, who.network) for who in self.strikes.drain_struck_here()
        ]
        shared += [
            ("report", filed.reported.device, filed.reported.network, filed.session, filed.reporter)
            for filed in self.reports.drain_filed_here()
        ]
        now = time.monotonic()
        for who, reason in self.strikes.drain_made_here():
            until = self.strikes.banned_until(Person(who.device, ""), now)
            if until is not None:
                shared.append(("ban", who.device, who.network, repr(until), reason))
        return self.matchmaker.drain_operations() + shared

    async def _send(self, operations: list[Operation]) -> None:
        """One pipeline, in order: each script call and publish is one command of it."""
        if not operations:
            return
        now = time.time()  # the nodes share the wall clock; monotonic clocks differ
        pipe = self._redis.pipeline(transaction=False)
        strikes: dict[int, Person] = {}
        """Position of each strike's reply -> whom it struck."""
        reports: dict[int, FiledReport] = {}
        """Position of each report's reply -> the report."""
        calls: dict[int, tuple[str, list[str], list[str]]] = {}
        """Position of each script call -> the call, to send again if Redis lost the script."""

        def call(script: str, keys: list[str], args: list[str]) -> int:
            calls[len(pipe.command_stack)] = (script, keys, args)
            self._scripts.queue(pipe, script, keys, args)
            return len(pipe.command_stack) - 1

        # presence before any user: users must never reach a Redis (a restarted one, say)
        # that does not know their node to be alive, or the pool's timers hand them back at
        # once (a user reaches the pool by its connect; the presence loop renews it)
        if any(operation[0] == "connect" for operation in operations):
            pipe.set(self._presence_key, "1", px=self._presence_ms)
        for kind, *args in operations:
            if kind == "publish":
                pipe.publish(self._prefix + "node:" + args[0], args[1])
                continue
            if kind == "worker":  # kept while reports renew it, and told to every node now
                self._share_worker(pipe, args[0], args[1])
                continue
            if kind == "strike":
                strikes[call("strike", *self._strike(args[0]))] = Person(args[0], args[1])
                continue
            if kind == "report":
                filed = FiledReport(Person(args[0], args[1]), args[2], args[3])
                reports[call("report", *self._report(filed, now))] = filed
                continue
            if kind == "ban":  # kept until it ends, and told to every node now
                device, network, left_s = args[0], args[1], float(args[2]) - time.monotonic()
                if left_s > 0:
                    record = json.dumps([device, network, now + left_s, args[3]])
                    pipe.set(self._prefix + "ban:" + device, record, px=int(left_s * 1000) + 1)
                    pipe.publish(self._prefix + "bans", record)
                    pipe.delete(
                        self._prefix + "strikes:" + device, self._prefix + "reports:" + device
                    )
                continue
            if kind in ("connect", "join"):
                op, args = kind, self._complete(kind, args)
            else:
                op, *args = args
            call(
                "pool",
                [],
                pool.script_args(self._prefix, op, now, self._settings, self._rng, *args),
            )
        for position, result in enumerate(await self._scripts.execute(self._redis, pipe, calls)):
            if isinstance(result, Exception):  # a late input the pool no longer allows
                log.debug("cluster: pool refused an input: %s", result)
            elif (who := strikes.get(position)) is not None:
                count, left_ms = (int(x) for x in result)
                self.strikes.counted(who.device, count, left_ms / 1000, time.monotonic())
                if self.strikes.crossed_limit(who, count, time.monotonic()):
                    self._banned_by_strikes(who, count)
            elif (report := reports.get(position)) is not None:
                self._reported(report, result)

    def _strike(self, device: str) -> tuple[list[str], list[str]]:
        """The strike script's keys and arguments for one strike of `device`."""
        window_ms = str(int(self._strike_window_s * 1000))
        channel = self._prefix + "strikes"
        return [self._prefix + "strikes:" + device], [window_ms, channel, device]

    def _report(self, filed: FiledReport, now_unix: float) -> tuple[list[str], list[str]]:
        """The report script's keys and arguments for one report filed here."""
        keys = [self._prefix + "reports:" + filed.reported.device]
        args = [
            str(int(now_unix * 1000)),
            self._report_window_ms,
            filed.reporter,
            self._prefix + "reports",
            filed.reported.device,
        ]
        return keys, args

    def _banned_by_strikes(self, who: Person, count: int) -> None:
        """Strikes here brought `who` to a ban in the pool's count, not in this node's."""
        log.info("cluster: %s banned: strikes on several nodes", who.device)
        self._host.hub_acts(lambda hub, *now: hub.banned_by_pool(who, count, *now))
        self.wake()  # share the ban

    def _reported(self, filed: FiledReport, reporters: list[str]) -> None:
        """Redis counted a report filed here: the node whose report reached the limit bans."""
        if not self._mirror_reports(filed.reported.device, reporters):
            return
        count = len(reporters) // 2
        if self.reports.reaches_limit(count):
            log.info("cluster: %s banned: reports on several nodes", filed.reported.device)
            session, who = filed.session, filed.reported
            self._host.hub_acts(lambda hub, *now: hub.banned_by_reports(session, who, count, *now))
            self.wake()  # share the ban

    def _mirror_reports(self, device: str, reporters: list[str]) -> bool:
        """Redis's reporters of `device`, unless a ban has settled them. True: mirrored."""
        now = time.monotonic()
        if self.strikes.banned_until(Person(device, ""), now) is not None:
            return False
        self.reports.mirrored(device, reporters, now, time.time())
        return True

    def _share_worker(self, pipe: Any, worker: str, record: str) -> None:
        key = self._prefix + "worker:" + worker
        if record:
            pipe.set(key, record, px=int(self.worker_ttl_s * 1000))
            pipe.publish(self._prefix + "workers", json.dumps(["up", record]))
        else:
            pipe.delete(key)
            pipe.publish(self._prefix + "workers", json.dumps(["gone", worker, self.name]))

    def _complete(self, kind: str, args: list[str]) -> list[str]:
        user = args[0]
        facts = self._host.route_facts(user)  # None: gone, its disconnect follows
        region, hide, who = facts or ("", False, NOBODY)
        if kind == "connect":
            return [user, self.name, region, who.device, who.network]
        return [user, args[1], region, "1" if hide else "0"]

    async def _listen_loop(self, pubsub: Any) -> None:
        """The client re-subscribes by itself when its connection comes back; meanwhile
        nothing arrives, and what was published then is lost (see the module docstring)."""
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            except Exception as exc:  # the Redis restarts or is gone; said by the send loop
                log.debug("cluster: node channel lost: %s", exc)
                await asyncio.sleep(RETRY_S)
                continue
            self._listened_at = time.monotonic()
            if message is None:
                continue
            try:
                self._receive(message["channel"], message["data"])
            except Exception:  # one bad message (another version's node?) stops no other
                self.messages_refused += 1
                log.exception("cluster: a message on %s could not be handled", message["channel"])

    def _receive(self, channel: str, data: str) -> None:
        fields = json.loads(data)
        if channel == self._prefix + "bans":
            who, until = self._apply_ban(fields)
            reason = fields[3] if len(fields) > 3 else ""  # a ban kept by an older node: none
            reason = reason or "banned for now"
            self._host.hub_acts(lambda hub, *now: hub.close_banned(who, until, reason, *now))
            return
        if channel == self._prefix + "workers":
            self._worker_news(fields)
            return
        if channel == self._prefix + "strikes":
            device, count, left_ms = fields
            self.strikes.counted(device, count, left_ms / 1000, time.monotonic())
            return
        if channel == self._prefix + "reports":
            device, reporters = fields
            self._mirror_reports(device, reporters)
            return
        match fields:
            case ["msg", user, pair, text]:
                # not for a call its member has left meanwhile
                if pair == ANY_PAIR or self._host.pair_of(user) == pair:
                    self._host.send_text(user, text)
            case ["call", user, partner, kind, text]:
                self._host.from_partner_node(user, partner, kind, text)
            case ["cmd", host, worker, text]:
                self._host.command_from_host(host, worker, text)
            case ["wmsg", node, worker, text]:
                self._host.from_worker_elsewhere(worker, node, text)
            case _:
                self.matchmaker.deliver(pool.decode_event(fields), time.monotonic())
                self._host.on_pool_events()

    def _worker_news(self, fields: list[Any]) -> None:
        match fields:
            case ["up", record]:
                worker = _record_decoder.decode(record)
                if worker.node != self.name:
                    self._host.worker_elsewhere(worker, self.worker_ttl_s)
            case ["gone", worker, node] if node != self.name:
                self._host.worker_gone_elsewhere(worker, node)

    def _apply_ban(self, record: list[Any]) -> tuple[Person, float]:
        """A ban kept or told by any node (this one too): it and until when (monotonic)."""
        who, until = Person(record[0], record[1]), time.monotonic() + record[2] - time.time()
        self.strikes.apply(who, until)
        self.reports.forget(who.device)
        return who, until

    async def _load_bans(self) -> None:
        """Bans made before this node started, by any node, still in force."""
        keys = [key async for key in self._redis.scan_iter(match=self._prefix + "ban:*")]
        for record in await self._redis.mget(keys) if keys else []:
            if record is not None:  # ended between the scan and the read
                self._apply_ban(json.loads(record))

    async def _load_strikes(self) -> None:
        """Strike counts made before this node started, still within their window."""
        keys = [key async for key in self._redis.scan_iter(match=self._prefix + "strikes:*")]
        if not keys:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        replies = await pipe.execute()
        skip = len(self._prefix + "strikes:")
        for key, count, left_ms in zip(keys, replies[::2], replies[1::2], strict=True):
            if count is not None and left_ms > 0:  # not ended between the scan and the read
                self.strikes.counted(key[skip:], int(count), left_ms / 1000, time.monotonic())

    async def _presence_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cluster.presence_ttl_s / 3)
            try:
                run_id, dead = await self._beat()
            except Exception as exc:  # the send loop says when Redis is gone and back
                log.debug("cluster: presence not renewed: %s", exc)
                continue
            for host in dead:  # nobody else will close the legs it opened on our workers
                log.warning("cluster: node %s is gone; closing the legs it opened here", host)
                for worker, leg in self.foreign_legs.legs_of(host):
                    self._host.command_from_host(host, worker, rc.encode(rc.CloseLeg(leg=leg)))
            if run_id != self._run_id:
                log.warning("cluster: Redis restarted; handing it this node's users again")
                self._run_id = run_id
                await self._resubscribed()
                self.matchmaker.register_again()
                self.wake()

    async def _resubscribed(self, timeout_s: float = 5.0) -> None:
        """Until the node's channel has been read from the new server (the client subscribes
        again as it reconnects): what the pool publishes about this node's users once they are
        handed over must not fall into the gap."""
        since = time.monotonic()
        while self._listened_at <= since and time.monotonic() < since + timeout_s:
            await asyncio.sleep(0.05)

    async def _beat(self) -> tuple[str, list[str]]:
        """One round trip: Redis's run id, this node's presence renewed, and the hosts of
        legs on this node's workers found dead (``signaling.cluster.foreign_legs``)."""
        hosts = self.foreign_legs.hosts()
        pipe = self._redis.pipeline(transaction=False)
        pipe.info("server")
        pipe.set(self._presence_key, "1", px=self._presence_ms)
        for host in hosts:
            pipe.exists(self._prefix + "alive:" + host)
        info, _, *alive = await pipe.execute()
        now, grace_s = time.monotonic(), self._cluster.presence_ttl_s
        dead = [
            host
            for host, there in zip(hosts, alive, strict=True)
            if self.foreign_legs.presence(host, bool(there), now, grace_s)
        ]
        return info["run_id"], dead

    async def _renew_presence(self) -> None:
        await self._redis.set(self._presence_key, "1", px=self._presence_ms)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._host.on_tick()
            argv = pool.script_args(
                self._prefix, "tick", time.time(), self._settings, self._rng, TICK_PERIOD_MS
            )
            try:
                await self._scripts.call(self._redis, "pool", [], argv)
            except Exception as exc:  # as above: said once by the send loop
                log.debug("cluster: pool timers not run: %s", exc)
