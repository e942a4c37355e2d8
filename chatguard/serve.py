"""What `chatguard serve` runs: the signaling app with this machine's relay workers and the
admin listener beside it.

Signaling knows nothing of processes or of metrics; the entry point composes it with the
supervisor that starts the local workers (``chatguard.supervisor``) and the admin listener
(``chatguard.admin``), handing both as background services that live and die with the app.
It also gives SIGTERM its meaning for a rolling restart: drain first, then stop
(:class:`DrainingServer`).
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette

from chatguard.admin import AdminListener, create_admin_app
from chatguard.header_deadline import header_deadline_protocol
from chatguard.runtime import YoungCollections
from chatguard.supervisor import RelaySupervisor, gathering_options
from signaling.app import create_app, ws_max_size
from signaling.config import Config
from signaling.route_policy import Route


def local_url(config: Config, path: str) -> str:
    """How processes on this machine reach the service (a wildcard address is not dialable);
    over TLS when the service serves TLS."""
    host = config.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    scheme = "wss" if config.server.certfile else "ws"
    return f"{scheme}://{host}:{config.server.port}{path}"


def create_serving_app(
    config: Config, route: Route | None = None, relay_url: str | None = None
) -> Starlette:
    """Signaling plus `relay.workers` local workers and the admin listener; the supervisor is
    `app.state.relay_supervisor`, the admin listener `app.state.admin`. `relay_url`: where the
    workers dial this process, when not at its public port (one of `serve --procs N`, see
    ``chatguard.procs``).

    Without a configured `[relay] token` a random one is made here, since the local workers
    are the only ones that need to know it."""
    if not config.relay.token:
        relay = msgspec.structs.replace(config.relay, token=secrets.token_urlsafe(24))
        config = msgspec.structs.replace(config, relay=relay)
    supervisor = RelaySupervisor(
        config.relay.local_workers(),
        relay_url or local_url(config, "/relay"),
        config.relay.token,
        config.relay.max_legs_per_worker,
        config.server.log_level,
        config.relay.ice_tcp_port,
        gathering_options(config.relay),
        config.relay.udp_port,
        ca_file=config.server.certfile,
        log_format=config.server.log_format,
    )
    admin = AdminListener(config.admin, config.server.access_log)
    background = (admin, supervisor, YoungCollections())
    app = create_app(config, route, background=background)  # a taken port: no workers
    admin.app = create_admin_app(app.state.service)
    app.state.relay_supervisor = supervisor
    app.state.admin = admin
    return app


def uvicorn_config(app: Starlette, config: Config, **overrides: Any) -> uvicorn.Config:
    """How `chatguard serve` runs `app` (from :func:`create_serving_app`) under uvicorn; a
    benchmark that serves in its own process (``bench.signaling_gc``) measures the same."""
    server = config.server
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "log_level": server.log_level,
        "log_config": None,  # chatguard.logs configures them: uvicorn's lines in our format
        "access_log": server.access_log,
        "ws_max_size": ws_max_size(config),
        "ws_per_message_deflate": server.websocket_compression,
        "http": header_deadline_protocol(
            config.limits.header_timeout_s, app.state.service.budgets.count_header_timeout
        ),
        "proxy_headers": False,  # [server] trusted_proxies decides (signaling.client_source)
        "ssl_certfile": server.certfile or None,
        "ssl_keyfile": server.keyfile or None,
        "loop": "auto",
        # uvicorn's sans-I/O WebSocket protocol (its "auto" since 0.50), named so that an older
        # uvicorn fails at start instead of serving with the legacy one: 10,000 clients under
        # `chatguard bench signaling` (2026-12-07) held pairing p99 30-42 ms at 68-73 % of a
        # core with it, 1,820 ms at 99.6 % with `ws="websockets"`; 8,000: 17 ms against 213 ms
        "ws": "websockets-sansio",
    }
    return uvicorn.Config(app, **(options | overrides))


class DrainingServer(uvicorn.Server):
    """uvicorn, where SIGTERM drains before the usual shutdown: `drain` runs (signaling stops
    taking clients and sends them elsewhere, ``SignalingService.drain``), then the server
    stops as on Ctrl-C, which stops the relay workers last. SIGINT stays immediate, even
    during a drain; a second SIGTERM changes nothing. A drained process exits with status 0:
    the SIGTERM is not raised again after shutdown the way uvicorn re-raises the signals it
    caught."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.should_exit or self._loop is None:
            super().handle_exit(sig, frame)
        elif self._draining is None:
            # a signal handler interrupts the loop anywhere: start the drain from the loop
            self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self._drain()
        finally:
            self.should_exit = True
