"""The signaling service's I/O edge: Starlette routes, one WebSocket per client, one timer.

Everything here moves bytes between sockets and ``SignalingHub``; decisions live in the hub.
Each connection gets a bounded send queue drained by a writer task of its own while it holds
messages, so one slow client can never stall the event loop or anyone else: when its queue
overflows it is disconnected.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import logging
import random
import secrets
import time
import types
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from relay import control as rc
from signaling import drain, events, readiness, recent_records
from signaling import protocol as p
from signaling.budgets import CLOSE_REASONS, Budgets, ConnectionBudget, kind_of
from signaling.call_hub import SignalingHub
from signaling.client_source import ClientLocator, ClientSource, Networks, trust_warnings
from signaling.config import Config
from signaling.direct_socket import DirectSocketApp
from signaling.hello_throttle import HelloThrottle
from signaling.ice import with_turn
from signaling.matchmaking import Matchmaker, Matchmaking
from signaling.origin_check import OriginPolicy
from signaling.relays import elsewhere_id
from signaling.route_policy import Route as CallRoute
from signaling.route_policy import RoutePolicy
from signaling.security_headers import SecurityHeaders
from signaling.webhook import WebhookSender

if TYPE_CHECKING:
    from signaling.cluster.foreign_legs import ForeignLegs
    from signaling.cluster.node import ClusterNode, HubAction
    from signaling.relays import WorkerRecord
    from signaling.strikes import Person

log = logging.getLogger("chatguard.signaling")
events_log = logging.getLogger("chatguard.events")

CLOSE_BAD_WORKER = 4003
HELLO_TIMEOUT_S = 5.0
WRITER_GRACE_S = 5.0
DRAIN_CHECK_S = 0.2

STATIC_DIR = resources.files("signaling") / "static"
CLOSE_MESSAGE_TOO_BIG = 1009


def client_frame_limit(config: Config) -> int:
    """Largest frame a client may send on ``/ws``: twice a message's limit, so that a message
    somewhat over it gets a ``too_large`` error rather than a closed socket."""
    return config.server.max_message_bytes * 2


def ws_max_size(config: Config) -> int:
    """uvicorn's WebSocket frame limit, one for both routes: large enough for ``/relay``'s
    control messages (an offer and its answer, ``relay.control.MAX_FRAME_BYTES``); ``/ws``
    checks its clients' frames against :func:`client_frame_limit` itself."""
    return max(client_frame_limit(config), rc.MAX_FRAME_BYTES)


_SOCKET_GONE = (WebSocketDisconnect, RuntimeError, OSError)
"""What sending raises once a socket is closed or closing (Starlette, uvicorn): its handler
ends, and the messages still queued are not sent."""


class _Connection:
    """A client's socket and its outgoing messages, sent in order by a writer task that runs
    only while some wait: an idle client holds a deque and nothing else.

    Why no asyncio.Queue and no writer per client for its whole life: with thousands of
    clients each queue (four deques, an event) and each idle task with its coroutine frame
    were about a sixth of the Python memory a connected client costs, and objects the cyclic
    collector walks on every full collection (``chatguard.runtime``)."""

    __slots__ = ("close_code", "close_reason", "limit", "pending", "websocket", "writer")

    def __init__(self, websocket: WebSocket, queue_limit: int) -> None:
        self.websocket = websocket
        self.limit = queue_limit
        self.pending: collections.deque[str | None] = collections.deque()
        """Messages not yet handed to the socket; a None means close after them."""
        self.writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    def put(self, text: str) -> None:
        """Queue a message; asyncio.QueueFull when ``limit`` are already waiting."""
        if len(self.pending) >= self.limit:
            raise asyncio.QueueFull
        self._append(text)

    def _append(self, text: str | None) -> None:
        self.pending.append(text)
        if self.writer is None:
            self._write_now()

    def _write_now(self) -> None:
        """Send what is queued without a task while the socket takes each message at once;
        a message the socket makes wait (its transport's buffer is full), what follows it,
        and a close, go on in a writer task.

        Why: sending is a coroutine that almost never waits, and most bursts are one message
        (``paired``, a candidate). A task per burst cost 5.8-7.7 us of CPU a message, sending
        it by hand 1.3-2.1 us (1,000 connections, a message each per loop turn, uvloop): about
        5 % of the service's CPU per pairing under ``chatguard bench signaling``."""
        pending = self.pending
        while pending and pending[0] is not None:
            sending = self.websocket.send({"type": "websocket.send", "text": pending.popleft()})
            try:
                waits_on = sending.send(None)
            except StopIteration:
                continue
            except _SOCKET_GONE:
                return  # its handler ends, as when the writer task meets this
            except Exception:  # the server's own fault: it must not reach whoever queued this
                log.exception("sending to a client failed; its messages wait")
                return
            self.writer = asyncio.get_running_loop().create_task(
                self._write(_resumed(sending, waits_on))
            )
            return
        if pending:  # the close marker
            self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self, started: Awaitable[None] | None = None) -> None:
        """Send what is queued, in order, after ``started`` (a message already on its way);
        the close marker closes the socket."""
        try:
            with contextlib.suppress(*_SOCKET_GONE):
                if started is not None:
                    await started
                while self.pending:
                    text = self.pending.popleft()
                    if text is None:
                        code = self.close_code or 1000
                        await self.websocket.close(code, self.close_reason or None)
                        return
                    await self.websocket.send_text(text)
        finally:
            self.writer = None

    def close(self, code: int, reason: str = "") -> None:
        """Close after what is queued (a reason sent just before, say), beyond ``limit``."""
        self.close_code, self.close_reason = code, reason
        self._append(None)

    async def finish(self, grace_s: float) -> None:
        """The socket is done with: stop writing at once unless a close is being sent, which
        gets ``grace_s`` (a peer that stopped reading must not hold its handler forever)."""
        writer = self.writer
        if writer is None:
            return
        if self.close_code is None:
            writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(writer, grace_s)


@types.coroutine
def _resumed(started: Coroutine[Any, Any, None], waits_on: Any) -> Generator[Any, Any, None]:
    """The rest of ``await started``, for a coroutine that was stepped by hand until it
    yielded ``waits_on`` (a future): what the event loop sends or throws goes on to it."""
    while True:
        try:
            sent = yield waits_on
        except GeneratorExit:
            started.close()
            raise
        except BaseException as exc:  # cancelled, say: the coroutine decides what it means
            try:
                waits_on = started.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waits_on = started.send(sent)
            except StopIteration:
                return


class SignalingService:
    """Glue between Starlette and the hub: owns the connections and the timer task."""

    def __init__(self, config: Config, route_override: CallRoute | None = None) -> None:
        self.config = config
        self.relay_token = config.relay.token or secrets.token_urlsafe(24)
        self._workers: dict[str, _Connection] = {}
        self.policy = RoutePolicy(config.regions, route_override)
        self.locator = ClientLocator.from_config(config, self.policy)
        self.worker_networks = Networks(config.relay.workers_from)
        self.origins = OriginPolicy(config.server.allowed_origins)
        relay = config.relay
        self.hello_throttle = HelloThrottle(
            relay.hello_failures_to_block, relay.hello_failure_window_s, relay.hello_block_s
        )
        settings = SignalingHub.matchmaking_settings(config)
        self.cluster: ClusterNode | None = None
        self._foreign_legs: ForeignLegs | None = None
        matchmaker: Matchmaking
        if config.cluster.redis_url:  # one pool shared with other processes: signaling.cluster
            from signaling.cluster.node import ClusterNode

            self.cluster = ClusterNode(config, settings, host=self)
            self._foreign_legs = self.cluster.foreign_legs
            matchmaker = self.cluster.matchmaker
        else:
            matchmaker = Matchmaker(settings, random.Random())
        strikes, reports = (None, None) if self.cluster is None else self.cluster.safety()
        self.hub = SignalingHub(config, self.policy, matchmaker, strikes=strikes, reports=reports)
        self.budgets = Budgets(config.limits)
        self._connections: dict[str, _Connection] = {}
        ev = config.events
        self.webhook = (
            WebhookSender(ev.webhook_url, ev.webhook_secret, ev.queue_limit)
            if ev.webhook_url
            else None
        )
        self.records: recent_records.RecentRecords
        """Recent events and open reports for the admin listener: in Redis when the nodes
        share one, so that each node's listener shows the service's, else here."""
        if self.cluster is not None:
            from signaling.cluster.recent_records import RedisRecords

            keep = recent_records.retention(config)
            self.records = RedisRecords(config.cluster.redis_url, config.cluster.key_prefix, keep)
        else:
            self.records = recent_records.MemoryRecords(recent_records.retention(config))
        self._wake = asyncio.Event()
        self._scheduled: float | None = None
        self.draining = False
        """Set by :meth:`drain`: new clients are refused, connected ones sent elsewhere."""
        self._client_sockets = 0
        """Client WebSockets whose handler has not finished (their last messages included)."""
        self._no_clients = asyncio.Event()
        self._rng = random.Random()

    async def handle_websocket(self, websocket: WebSocket) -> None:
        headers = websocket.headers
        if not self.origins.allows(headers.get("origin"), headers.get("host")):
            await self._refuse(websocket, "origin", "this site's pages may not connect here")
            return
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(p.SUBPROTOCOL if p.SUBPROTOCOL in offered else None)
        if self.draining:
            await websocket.close(p.CLOSE_DRAINING, "draining: connect again shortly")
            return
        # budgets, the connection cap and bans are kept under the address the server may
        # believe: the socket's peer, or a trusted proxy's word (signaling.client_source)
        source = self.locator.of(websocket)
        address = source.address
        refused = self.budgets.admit(address, time.monotonic())
        if refused is not None:
            await websocket.close(p.CLOSE_TOO_MANY_CONNECTIONS, CLOSE_REASONS[refused])
            return
        self._client_sockets += 1
        try:
            await self._serve_client(websocket, source)
        finally:
            self.budgets.release(address)
            self._client_sockets -= 1
            if self.draining and not self._client_sockets:
                self._no_clients.set()

    async def _serve_client(self, websocket: WebSocket, source: ClientSource) -> None:
        address = source.address
        device = p.device_from_subprotocols(websocket.scope.get("subprotocols") or [])
        banned_until = self.hub.banned_until(address, device, time.monotonic())
        if banned_until is not None:
            until_unix = self.hub.refuse_banned(
                banned_until, time.monotonic(), time.time(), address
            )
            self._publish_events()
            banned = p.Banned(reason="banned for now", until_unix=until_unix)
            await websocket.send_text(p.encode_server_message(banned))
            await websocket.close(p.CLOSE_BANNED)
            return
        connection = _Connection(websocket, self.config.server.send_queue_limit)
        region = source.region
        user = self.hub.connect(region, time.monotonic(), time.time(), address, device)
        self._connections[user] = connection
        log.debug("client %s connected from region %s", user, region)
        try:
            self._flush()
            await self._read_loop(
                user, websocket, self.budgets.connection(address, time.monotonic())
            )
        finally:
            self._connections.pop(user, None)
            self.hub.disconnect(user, time.monotonic())
            self._flush()
            await connection.finish(WRITER_GRACE_S)
            log.debug("client %s disconnected", user)

    async def _read_loop(self, user: str, websocket: WebSocket, budget: ConnectionBudget) -> None:
        limit = self.config.server.max_message_bytes
        while True:
            event = await websocket.receive()
            if event["type"] == "websocket.disconnect":
                return
            text: str | None = event.get("text")
            if len(text or event.get("bytes") or b"") > client_frame_limit(self.config):
                # uvicorn's one frame limit is sized for /relay's control messages (see
                # ``client_frame_limit``): a client's frame is held to its own, as before.
                self._drop(user, CLOSE_MESSAGE_TOO_BIG)
                return
            message: p.ClientMessage | p.ProtocolError
            if text is None:
                message = p.ProtocolError(
                    "binary", "binary frames are not supported; send JSON text"
                )
            else:
                try:
                    message = p.decode_client_message(text, limit)
                except p.ProtocolError as exc:
                    message = exc
            self._take_message(user, message, budget)
            self._flush()
            if user not in self._connections:  # expired or dropped as too slow meanwhile
                return

    def _take_message(
        self, user: str, message: p.ClientMessage | p.ProtocolError, budget: ConnectionBudget
    ) -> None:
        """Hand a client's message (or why it could not be read) to the hub, if its budgets
        allow; otherwise say so, or disconnect a client that goes on flooding."""
        kind = kind_of(message)
        refused = budget.take(kind, time.monotonic())
        if refused is not None and refused.disconnect:
            log.info("client %s keeps sending %s messages past its budget; dropping it", user, kind)
            self._drop(user, p.CLOSE_FLOODING, f"too many {kind} messages")
        elif refused is not None:
            error = p.ProtocolError("rate_limited", refused.message, kind, refused.retry_after_s)
            self.hub.send_error(user, error)
        elif isinstance(message, p.ProtocolError):
            self.hub.send_error(user, message)
        else:
            self.hub.receive(user, message, time.monotonic(), time.time())

    def _flush(self) -> None:
        """Hand the hub's outbox to the writers, close what it asked to, re-arm the timer.

        Loops because dropping a client (too slow, timed out) tells its partner, which queues
        more messages."""
        while True:
            self._publish_events()
            outbox, closes = self.hub.drain_outbox(), self.hub.drain_closes()
            if not outbox and not closes and not self.hub.has_worker_messages():
                break
            for user, message in outbox:
                if user not in self._connections and self.cluster is not None:
                    self.cluster.matchmaker.forward(user, message)  # a partner on another node
                else:
                    message = with_turn(message, self.config.ice, user, time.time())
                    self._enqueue(user, p.encode_server_message(message))
            for user, code in closes:
                self._drop(user, code)
            for user, partner, note in self.hub.drain_partner_node_outbox():
                assert self.cluster is not None  # only a call across nodes has notes
                kind = "moderation" if isinstance(note, rc.Moderation) else "client"
                text = msgspec.json.encode(note).decode()
                self.cluster.forward_to_partner_node(user, partner, kind, text)
            for worker, command in self.hub.drain_worker_outbox():
                connection = self._workers.get(worker)
                there = self.hub.relays.elsewhere(worker)
                if connection is None and there and self.cluster is not None:  # another node's
                    self.cluster.command_worker(*there, rc.encode(command))
                    continue
                if connection is None or connection.close_code is not None:
                    log.warning(
                        "relay worker %s is gone; dropped %s", worker, type(command).__name__
                    )
                    continue
                try:
                    connection.put(rc.encode(command))
                except asyncio.QueueFull:
                    log.error("relay worker %s is not reading its commands; dropping it", worker)
                    connection.close(p.CLOSE_TOO_SLOW)
        deadline = self.hub.next_timer()
        if deadline is not None and (self._scheduled is None or deadline < self._scheduled):
            self._wake.set()
        if self.cluster is not None:
            self.cluster.wake()

    def _enqueue(self, user: str, text: str) -> None:
        connection = self._connections.get(user)
        if connection is None or connection.close_code is not None:
            return
        try:
            connection.put(text)
        except asyncio.QueueFull:
            log.warning("client %s is not reading its messages; disconnecting it", user)
            self._drop(user, p.CLOSE_TOO_SLOW)

    # -- a node of a shared pool (``signaling.cluster.node.NodeHost``) ----------------------

    def route_facts(self, user: str) -> tuple[str, bool, Person] | None:
        return self.hub.route_facts(user)

    def pair_of(self, user: str) -> str | None:
        return self.hub.pair_of(user)

    def send_text(self, user: str, text: str) -> None:
        """A message from a partner on another node, already checked and encoded there."""
        self._enqueue(user, text)
        self._flush()

    def on_pool_events(self) -> None:
        """The shared pool published events about this node's users: let the hub read them."""
        self.hub.handle_timer(time.monotonic())
        self._flush()

    def from_partner_node(self, user: str, partner: str, kind: str, text: str) -> None:
        """Checked by the node that took it from its client or worker: decoded, not judged."""
        note: rc.Moderation | p.ClientMessage = (
            msgspec.json.decode(text, type=rc.Moderation)
            if kind == "moderation"
            else p.decode_client_message(text, 2 * self.config.server.max_message_bytes)
        )
        if isinstance(note, rc.Moderation | p.Offer | p.Answer | p.Candidate | p.CallState):
            self.hub.from_partner_node(user, partner, note, time.monotonic(), time.time())
            self._flush()

    def command_from_host(self, host: str, worker: str, text: str) -> None:
        """A command for a worker of ours from the node hosting the call; one whose worker has
        gone is dropped (the host hears that the worker is gone and moves its calls)."""
        assert self._foreign_legs is not None
        connection = self._workers.get(worker)
        if connection is None or connection.close_code is not None:
            log.warning("relay worker %s is gone; dropped a command from node %s", worker, host)
            return
        command = rc.decode_signaling_message(text)
        self._foreign_legs.command(host, worker, command)
        if isinstance(command, rc.OpenLeg):  # counted as this node's own legs are
            self.hub.relays.add_leg(worker, command.leg)
        elif isinstance(command, rc.CloseLeg):
            self.hub.relays.remove_leg(worker, command.leg)
        try:
            connection.put(text)
        except asyncio.QueueFull:
            log.error("relay worker %s is not reading its commands; dropping it", worker)
            connection.close(p.CLOSE_TOO_SLOW)

    def from_worker_elsewhere(self, worker: str, node: str, text: str) -> None:
        message = rc.decode_worker_message(text)
        self.hub.worker_message(elsewhere_id(worker, node), message, time.monotonic(), time.time())
        self._flush()

    def worker_elsewhere(self, record: WorkerRecord, valid_s: float) -> None:
        self.hub.relays.update_elsewhere(record, time.monotonic() + valid_s)

    def worker_gone_elsewhere(self, worker: str, node: str) -> None:
        if self.hub.relays.has_worker(key := elsewhere_id(worker, node)):
            self.hub.worker_lost(key)
            self._flush()

    def hub_acts(self, act: HubAction) -> None:
        act(self.hub, time.monotonic(), time.time())
        self._flush()

    def on_tick(self) -> None:
        for worker in self.hub.relays.lapsed_elsewhere(time.monotonic()):
            self.hub.worker_lost(worker)
        self._flush()

    def _share_worker(self, worker: str) -> None:
        """Tell the other nodes of a shared pool how this worker stands (None: gone)."""
        if self.cluster is not None:
            record = self.hub.relays.record_of(worker, self.cluster.name)
            self.cluster.matchmaker.share_worker(record, worker)
            self.cluster.wake()

    def _route_worker_message(self, worker: str, message: rc.WorkerMessage, raw: str) -> bool:
        """True: the message was about a leg of a call another node hosts, and went there."""
        if self._foreign_legs is None or self.cluster is None:
            return False
        host = self._foreign_legs.host_of(worker, message)
        if host is None:
            return False
        if isinstance(message, rc.LegState) and message.state == "closed":
            self.hub.relays.remove_leg(worker, message.leg)
        self.cluster.reply_to_host(host, worker, raw)
        self.cluster.wake()
        return True

    def _publish_events(self) -> None:
        """The hub's operator events to the log (the whole event as data, for JSON logs), to
        the webhook's queue and to the recent records, none of which waits; its new reports
        to the recent records."""
        now_unix = time.time()
        for event in self.hub.drain_events():
            data = events.to_builtins(event)
            events_log.info("%s %s", event.decision, data, extra={"event": data})
            self.records.add("events", data, now_unix)
            if self.webhook is not None:
                self.webhook.submit(events.encode(event))
        for report in self.hub.drain_reports():
            self.records.add("reports", msgspec.to_builtins(report), now_unix)

    def _drop(self, user: str, code: int, reason: str = "") -> None:
        connection = self._connections.pop(user, None)
        if connection is not None:
            connection.close(code, reason)
            self.hub.disconnect(user, time.monotonic())

    async def drain(self, timeout_s: float) -> None:
        """Refuse new clients, send away those whose calls do not need this process
        (``signaling.drain``), and return once every client socket has closed, or after
        `timeout_s`, when the rest are sent away too. The caller then stops the process."""
        self.draining = True
        log.info(
            "draining: %d clients connected; exiting within %.0f s",
            len(self._connections),
            timeout_s,
        )
        deadline = time.monotonic() + timeout_s
        # Looked at again every DRAIN_CHECK_S, not on every message: the view walks every
        # client, and a ping changes nothing. A member of a call that ends meanwhile waits
        # that long before it is sent away.
        while self._client_sockets and (left := deadline - time.monotonic()) > 0:
            self._send_away()
            self._flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_clients.wait(), min(left, DRAIN_CHECK_S))
        if self._client_sockets:
            log.warning(
                "drain time-out: sending away %d clients whose calls still needed this process",
                len(self._connections),
            )
            self._send_away(everyone=True)
            self._flush()
            with contextlib.suppress(TimeoutError):  # their reconnect messages on the way out
                await asyncio.wait_for(self._no_clients.wait(), WRITER_GRACE_S)

    def _send_away(self, everyone: bool = False) -> None:
        """Tell clients to reconnect elsewhere and close their sockets (1012)."""
        out_of_call, calls = self.hub.calls_for_drain()
        for user in drain.send_away_order(out_of_call, calls, everyone):
            connection = self._connections.get(user)
            if connection is None:
                continue
            message = p.Reconnect(reason="draining", after_s=drain.reconnect_after_s(self._rng))
            with contextlib.suppress(asyncio.QueueFull):  # the close code says it as well
                connection.put(p.encode_server_message(message))
            self._drop(user, p.CLOSE_RECONNECT, "draining: reconnect")

    async def _refuse(self, websocket: WebSocket, reason: str, text: str) -> None:
        """Refuse a WebSocket at the handshake (HTTP 403 saying why), counted by `reason`."""
        self.hub.stats.refused[reason] += 1
        log.debug("WebSocket %s refused (%s)", websocket.url.path, reason)
        await websocket.send_denial_response(PlainTextResponse(text, status_code=403))

    async def _relay_hello(self, websocket: WebSocket, address: str) -> rc.Hello | None:
        """The worker's hello, if it is one with the token; failures count against `address`
        (``signaling.hello_throttle``), and the socket is closed."""
        try:
            raw = await asyncio.wait_for(websocket.receive_text(), HELLO_TIMEOUT_S)
            hello = rc.decode_worker_message(raw)
        except (TimeoutError, rc.ControlError, WebSocketDisconnect, KeyError) as exc:
            log.warning("relay connection from %s without a valid hello: %s", address, exc)
            hello = None
        if self.hello_throttle.blocked(address, time.monotonic()):
            hello = None  # blocked while it waited: no token is compared
        elif not isinstance(hello, rc.Hello) or not hmac.compare_digest(
            hello.token.encode(), self.relay_token.encode()
        ):
            log.warning("relay connection from %s refused: not a hello with the token", address)
            hello = None
        if hello is None:
            self.hub.stats.refused["relay_hello"] += 1
            if self.hello_throttle.failed(address, time.monotonic()):
                relay = self.config.relay
                log.warning(
                    "relay hellos from %s failed %d times within %.0f s: refusing it for %.0f s",
                    address, relay.hello_failures_to_block, relay.hello_failure_window_s,
                    relay.hello_block_s,
                )  # fmt: skip
            await websocket.close(CLOSE_BAD_WORKER)
            return None
        self.hello_throttle.succeeded(address)
        return hello

    async def handle_relay_websocket(self, websocket: WebSocket) -> None:
        """A relay worker's control connection: hello with the token first, then messages.
        Browsers have no business here (a request with an Origin is refused), and an address
        whose hellos keep failing is refused for a while."""
        address = self.locator.of(websocket).address
        if "origin" in websocket.headers:
            await self._refuse(websocket, "relay_origin", "not for browsers")
            return
        server = websocket.scope.get("server") or ("", 0)
        # this machine's own workers dial the address the service listens on, whatever it is
        if address not in self.worker_networks and address != server[0]:
            await self._refuse(websocket, "relay_address", "not from here ([relay] workers_from)")
            return
        if self.hello_throttle.blocked(address, time.monotonic()):
            await self._refuse(websocket, "relay_throttled", "too many failed hellos; later")
            return
        await websocket.accept()
        hello = await self._relay_hello(websocket, address)
        if hello is None:
            return
        if hello.worker_id in self._workers:
            log.warning("relay worker id %s is already connected; refusing", hello.worker_id)
            await websocket.close(CLOSE_BAD_WORKER)
            return
        connection = _Connection(websocket, queue_limit=10_000)
        self._workers[hello.worker_id] = connection
        self.hub.worker_joined(hello)
        self._share_worker(hello.worker_id)
        connection.put(rc.encode(self.hub.worker_configuration()))
        try:
            while True:
                event = await websocket.receive()
                if event["type"] == "websocket.disconnect":
                    return
                data: str | bytes = event.get("text") or event.get("bytes") or b""
                try:
                    message = rc.decode_worker_message(data)
                except rc.ControlError as exc:
                    log.error("relay worker %s sent an invalid message: %s", hello.worker_id, exc)
                    continue
                text = data if isinstance(data, str) else data.decode()
                if self._route_worker_message(hello.worker_id, message, text):
                    continue
                self.hub.worker_message(hello.worker_id, message, time.monotonic(), time.time())
                if isinstance(message, rc.Load):
                    self._share_worker(hello.worker_id)
                self._flush()
        finally:
            del self._workers[hello.worker_id]
            self.hub.worker_lost(hello.worker_id)
            if self._foreign_legs is not None:
                self._foreign_legs.forget_worker(hello.worker_id)
            self._share_worker(hello.worker_id)
            self._flush()
            await connection.finish(WRITER_GRACE_S)

    async def run_timers(self) -> None:
        """Sleep until the hub's next deadline (or an earlier one appears), then let it act."""
        while True:
            self._scheduled = self.hub.next_timer()
            timeout = None if self._scheduled is None else self._scheduled - time.monotonic()
            if timeout is None or timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            self.hub.handle_timer(time.monotonic())
            self._flush()

    def stats(self) -> dict[str, Any]:
        snapshot = self.hub.snapshot()
        if self.cluster is not None:  # this process's own figures: say which node it is
            snapshot["node"] = self.cluster.name
            snapshot["cluster_messages_refused"] = self.cluster.messages_refused
        return snapshot


class BackgroundService(Protocol):
    """Something that runs beside the service for its whole life (the entry point's relay
    supervisor): started once the service exists, stopped before it goes down."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def create_app(
    config: Config,
    route_override: CallRoute | None = None,
    background: Sequence[BackgroundService] = (),
) -> Starlette:
    """The ASGI application: the web client at /, the WebSocket at /ws (straight to its
    handler: ``signaling.direct_socket``), health and readiness. Counters
    (``service.stats()``, ``signaling.metrics``) are not served here but on the admin listener
    (``chatguard.admin``), away from the public port.

    `background` services start with the app and stop, in reverse order, before it ends: this
    is how the entry point (``chatguard.serve``) adds the relay workers it supervises without
    signaling knowing about processes."""
    service = SignalingService(config, route_override)
    for warning in trust_warnings(config):
        log.warning("%s", warning)
    if service.cluster is not None:  # up before anything else, down after everything else
        background = (service.cluster, *background)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        timers = asyncio.create_task(service.run_timers())
        started: list[BackgroundService] = []
        own = (service.records, *(() if service.webhook is None else (service.webhook,)))
        try:
            for extra in (*own, *background):
                await extra.start()
                started.append(extra)
            yield
        finally:
            for extra in reversed(started):
                await extra.stop()
            timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timers

    async def index(request: Request) -> Response:
        return FileResponse(str(STATIC_DIR / "index.html"))

    async def health(request: Request) -> Response:
        """Liveness: the process answers."""
        return JSONResponse({"ok": True})

    async def ready(request: Request) -> Response:
        """Readiness: every route in force can be carried (see ``signaling.readiness``),
        and the process is not draining."""
        draining = [readiness.DRAINING] if service.draining else []
        reasons = draining + service.hub.unready_reasons()
        if reasons:
            return JSONResponse({"ready": False, "reasons": reasons}, status_code=503)
        return JSONResponse({"ready": True})

    async def client_settings(request: Request) -> Response:
        """What the page must know before it connects (its consent step)."""
        return JSONResponse(msgspec.to_builtins(config.web_client))

    app = DirectSocketApp(
        "/ws",
        service.handle_websocket,
        routes=[
            Route("/", index),
            Route("/healthz", health),
            Route("/readyz", ready),
            Route("/client-settings", client_settings),
            WebSocketRoute("/relay", service.handle_relay_websocket),
            Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders)],
    )
    app.state.service = service
    return app
