"""The signaling service's I/O edge: Starlette routes, one WebSocket per client, one timer.

Everything here moves bytes between sockets and ``SignalingHub``; decisions live in the hub.
Each connection gets a bounded send queue drained by its own writer task, so one slow client
can never stall the event loop or anyone else: when its queue overflows it is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from chatguard.config import Config
from chatguard.config import Route as CallRoute
from signaling import protocol as p
from signaling.hub import SignalingHub
from signaling.matchmaking import Matchmaker
from signaling.policy import RoutePolicy

log = logging.getLogger("chatguard.signaling")

CLOSE_TIMED_OUT = 4000
CLOSE_TOO_SLOW = 4001
WRITER_GRACE_S = 5.0

STATIC_DIR = resources.files("signaling") / "static"


class _Connection:
    """A client's socket and its outgoing queue."""

    def __init__(self, websocket: WebSocket, queue_limit: int) -> None:
        self.websocket = websocket
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(queue_limit)
        self.close_code: int | None = None

    async def write_loop(self) -> None:
        """Send queued messages in order; a None in the queue means close."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while (text := await self.queue.get()) is not None:
                await self.websocket.send_text(text)
            await self.websocket.close(self.close_code or 1000)

    def close(self, code: int) -> None:
        self.close_code = code
        # Make room for the close marker even when the queue is full of unsent messages.
        while self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class SignalingService:
    """Glue between Starlette and the hub: owns the connections and the timer task."""

    def __init__(self, config: Config, route_override: CallRoute | None = None) -> None:
        self.config = config
        self.policy = RoutePolicy(config.regions, route_override)
        matchmaker = Matchmaker(SignalingHub.matchmaking_settings(config), random.Random())
        self.hub = SignalingHub(config, self.policy, matchmaker)
        self._connections: dict[str, _Connection] = {}
        self._wake = asyncio.Event()
        self._scheduled: float | None = None

    async def handle_websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        connection = _Connection(websocket, self.config.server.send_queue_limit)
        region = self.policy.region_from_headers(websocket.headers)
        user = self.hub.connect(region, time.monotonic(), time.time())
        self._connections[user] = connection
        writer = asyncio.create_task(connection.write_loop())
        log.debug("client %s connected from region %s", user, region)
        try:
            self._flush()
            await self._read_loop(user, websocket)
        finally:
            self._connections.pop(user, None)
            self.hub.disconnect(user, time.monotonic())
            self._flush()
            if connection.close_code is None:
                writer.cancel()
            # A writer stuck on a client that stopped reading must not hold this task forever.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(writer, WRITER_GRACE_S)
            log.debug("client %s disconnected", user)

    async def _read_loop(self, user: str, websocket: WebSocket) -> None:
        limit = self.config.server.max_message_bytes
        while True:
            event = await websocket.receive()
            if event["type"] == "websocket.disconnect":
                return
            text: str | None = event.get("text")
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
            outbox, closes = self.hub.drain_outbox(), self.hub.drain_closes()
            if not outbox and not closes:
                break
            for user, message in outbox:
                connection = self._connections.get(user)
                if connection is None or connection.close_code is not None:
                    continue
                try:
                    connection.queue.put_nowait(p.encode_server_message(message))
                except asyncio.QueueFull:
                    log.warning("client %s is not reading its messages; disconnecting it", user)
                    self._drop(user, CLOSE_TOO_SLOW)
            for user in closes:
                self._drop(user, CLOSE_TIMED_OUT)
        deadline = self.hub.next_timer()
        if deadline is not None and (self._scheduled is None or deadline < self._scheduled):
            self._wake.set()

    def _drop(self, user: str, code: int) -> None:
        connection = self._connections.pop(user, None)
        if connection is not None:
            connection.close(code)
            self.hub.disconnect(user, time.monotonic())

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
        return self.hub.snapshot()


def create_app(config: Config, route_override: CallRoute | None = None) -> Starlette:
    """The ASGI application: the web client at /, the WebSocket at /ws, health and stats."""
    service = SignalingService(config, route_override)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        timers = asyncio.create_task(service.run_timers())
        try:
            yield
        finally:
            timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timers

    async def index(request: Request) -> Response:
        return FileResponse(str(STATIC_DIR / "index.html"))

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def stats(request: Request) -> Response:
        return JSONResponse(service.stats())

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", health),
            Route("/stats", stats),
            WebSocketRoute("/ws", service.handle_websocket),
            Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
