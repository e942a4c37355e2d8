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
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from relay import control as rc
from signaling import drain, events, readiness
from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.config import Config
from signaling.matchmaking import Matchmaker, Matchmaking
from signaling.route_policy import Route as CallRoute
from signaling.route_policy import RoutePolicy
from signaling.webhook import WebhookSender

if TYPE_CHECKING:
    from signaling.cluster.node import ClusterNode

log = logging.getLogger("chatguard.signaling")
events_log = logging.getLogger("chatguard.events")

CLOSE_BAD_WORKER = 4003
HELLO_TIMEOUT_S = 5.0
RECENT_EVENTS = 500
"""Operator events kept in memory for the admin listener's ``/events``."""
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
            self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Send what is queued, in order; the close marker closes the socket."""
        try:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
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


class SignalingService:
    """Glue between Starlette and the hub: owns the connections and the timer task."""

    def __init__(self, config: Config, route_override: CallRoute | None = None) -> None:
        self.config = config
        self.relay_token = config.relay.token or secrets.token_urlsafe(24)
        self._workers: dict[str, _Connection] = {}
        self.policy = RoutePolicy(config.regions, route_override)
        settings = SignalingHub.matchmaking_settings(config)
        self.cluster: ClusterNode | None = None
        matchmaker: Matchmaking
        if config.cluster.redis_url:  # one pool shared with other processes: signaling.cluster
            from signaling.cluster.node import ClusterNode

            self.cluster = ClusterNode(
                config,
                settings,
                route_facts=lambda user: self.hub.route_facts(user),
                pair_of=lambda user: self.hub.pair_of(user),
                send_text=self._send_text,
                on_events=self._on_pool_events,
            )
            matchmaker = self.cluster.matchmaker
        else:
            matchmaker = Matchmaker(settings, random.Random())
        strikes = None if self.cluster is None else self.cluster.strikes
        self.hub = SignalingHub(config, self.policy, matchmaker, strikes=strikes)
        self._connections: dict[str, _Connection] = {}
        ev = config.events
        self.webhook = (
            WebhookSender(ev.webhook_url, ev.webhook_secret, ev.queue_limit)
            if ev.webhook_url
            else None
        )
        self.recent_events: collections.deque[dict[str, object]] = collections.deque(
            maxlen=RECENT_EVENTS
        )
        self._wake = asyncio.Event()
        self._scheduled: float | None = None
        self.draining = False
        """Set by :meth:`drain`: new clients are refused, connected ones sent elsewhere."""
        self._client_sockets = 0
        """Client WebSockets whose handler has not finished (their last messages included)."""
        self._no_clients = asyncio.Event()
        self._rng = random.Random()

    async def handle_websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if self.draining:
            await websocket.close(p.CLOSE_DRAINING, "draining: connect again shortly")
            return
        self._client_sockets += 1
        try:
            await self._serve_client(websocket)
        finally:
            self._client_sockets -= 1
            if self.draining and not self._client_sockets:
                self._no_clients.set()

    async def _serve_client(self, websocket: WebSocket) -> None:
        address = websocket.client.host if websocket.client else ""
        device = websocket.query_params.get("device", "")
        if len(device) > 64 or not device.replace("-", "").replace("_", "").isalnum():
            device = ""  # an id the web client did not make is no id
        banned_until = self.hub.banned_until(address, device, time.monotonic())
        if banned_until is not None:
            until_unix = self.hub.refuse_banned(banned_until, time.monotonic(), time.time())
            self._publish_events()
            banned = p.Banned(reason="banned for now", until_unix=until_unix)
            await websocket.send_text(p.encode_server_message(banned))
            await websocket.close(p.CLOSE_BANNED)
            return
        connection = _Connection(websocket, self.config.server.send_queue_limit)
        region = self.policy.region_from_headers(websocket.headers)
        user = self.hub.connect(region, time.monotonic(), time.time(), address, device)
        self._connections[user] = connection
        log.debug("client %s connected from region %s", user, region)
        try:
            self._flush()
            await self._read_loop(user, websocket)
        finally:
            self._connections.pop(user, None)
            self.hub.disconnect(user, time.monotonic())
            self._flush()
            await connection.finish(WRITER_GRACE_S)
            log.debug("client %s disconnected", user)

    async def _read_loop(self, user: str, websocket: WebSocket) -> None:
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
            if text is None:
                error = p.ProtocolError("binary", "binary frames are not supported; send JSON text")
                self.hub.send_error(user, error)
            else:
                try:
                    message = p.decode_client_message(text, limit)
                except p.ProtocolError as exc:
                    self.hub.send_error(user, exc)
                else:
                    self.hub.receive(user, message, time.monotonic(), time.time())
            self._flush()
            if user not in self._connections:  # expired or dropped as too slow meanwhile
                return

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
                    self._enqueue(user, p.encode_server_message(message))
            for user, code in closes:
                self._drop(user, code)
            for worker, command in self.hub.drain_worker_outbox():
                connection = self._workers.get(worker)
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

    def _send_text(self, user: str, text: str) -> None:
        """A message from a partner on another node, already checked and encoded there."""
        self._enqueue(user, text)
        self._flush()

    def _on_pool_events(self) -> None:
        """The shared pool published events about this node's users: let the hub read them."""
        self.hub.handle_timer(time.monotonic())
        self._flush()

    def _publish_events(self) -> None:
        """The hub's operator events to the log (the whole event as data, for JSON logs) and
        to the webhook's queue, which never waits."""
        for event in self.hub.drain_events():
            data = events.to_builtins(event)
            events_log.info("%s %s", event.decision, data, extra={"event": data})
            self.recent_events.append(data)
            if self.webhook is not None:
                self.webhook.submit(events.encode(event))

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

    async def handle_relay_websocket(self, websocket: WebSocket) -> None:
        """A relay worker's control connection: hello with the token first, then messages."""
        await websocket.accept()
        try:
            raw = await asyncio.wait_for(websocket.receive_text(), HELLO_TIMEOUT_S)
            hello = rc.decode_worker_message(raw)
        except (TimeoutError, rc.ControlError, WebSocketDisconnect, KeyError) as exc:
            log.warning("relay connection without a valid hello: %s", exc)
            await websocket.close(CLOSE_BAD_WORKER)
            return
        if not isinstance(hello, rc.Hello) or not hmac.compare_digest(
            hello.token.encode(), self.relay_token.encode()
        ):
            log.warning("relay connection refused: first message is not a hello with the token")
            await websocket.close(CLOSE_BAD_WORKER)
            return
        if hello.worker_id in self._workers:
            log.warning("relay worker id %s is already connected; refusing", hello.worker_id)
            await websocket.close(CLOSE_BAD_WORKER)
            return
        connection = _Connection(websocket, queue_limit=10_000)
        self._workers[hello.worker_id] = connection
        self.hub.worker_joined(hello)
        connection.put(rc.encode(self.hub.worker_configuration()))
        try:
            while True:
                event = await websocket.receive()
                if event["type"] == "websocket.disconnect":
                    return
                try:
                    message = rc.decode_worker_message(
                        event.get("text") or event.get("bytes") or b""
                    )
                except rc.ControlError as exc:
                    log.error("relay worker %s sent an invalid message: %s", hello.worker_id, exc)
                    continue
                self.hub.worker_message(hello.worker_id, message, time.monotonic(), time.time())
                self._flush()
        finally:
            del self._workers[hello.worker_id]
            self.hub.worker_lost(hello.worker_id)
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
    """The ASGI application: the web client at /, the WebSocket at /ws, health and
    readiness. Counters (``service.stats()``, ``signaling.metrics``) are not served here but
    on the admin listener (``chatguard.admin``), away from the public port.

    `background` services start with the app and stop, in reverse order, before it ends: this
    is how the entry point (``chatguard.serve``) adds the relay workers it supervises without
    signaling knowing about processes."""
    service = SignalingService(config, route_override)
    if service.cluster is not None:  # up before anything else, down after everything else
        background = (service.cluster, *background)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        timers = asyncio.create_task(service.run_timers())
        started: list[BackgroundService] = []
        own = () if service.webhook is None else (service.webhook,)
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

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", health),
            Route("/readyz", ready),
            Route("/client-settings", client_settings),
            WebSocketRoute("/ws", service.handle_websocket),
            WebSocketRoute("/relay", service.handle_relay_websocket),
            Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
