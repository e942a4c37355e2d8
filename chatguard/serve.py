"""What `chatguard serve` runs: the signaling app with this machine's relay workers beside it.

Signaling knows nothing of processes; the entry point composes it with the supervisor that
starts the local workers (``chatguard.supervisor``), handing it as a background service that
lives and dies with the app.
"""

from __future__ import annotations

import secrets

import msgspec
from starlette.applications import Starlette

from chatguard.supervisor import RelaySupervisor, gathering_options
from signaling.app import create_app
from signaling.config import Config
from signaling.route_policy import Route


def local_url(config: Config, path: str) -> str:
    """How processes on this machine reach the service (a wildcard address is not dialable)."""
    host = config.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{config.server.port}{path}"


def create_serving_app(
    config: Config, route: Route | None = None, relay_url: str | None = None
) -> Starlette:
    """Signaling plus `relay.workers` local workers; the supervisor is `app.state.relay_supervisor`.
    `relay_url`: where the workers dial this process, when not at its public port (one of
    `serve --procs N`, see ``chatguard.procs``).

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
    )
    app = create_app(config, route, background=(supervisor,))
    app.state.relay_supervisor = supervisor
    return app
