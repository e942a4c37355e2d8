"""What `chatguard serve` runs: the signaling app with this machine's relay workers and the
admin listener beside it.

Signaling knows nothing of processes or of metrics; the entry point composes it with the
supervisor that starts the local workers (``chatguard.supervisor``) and the admin listener
(``chatguard.admin``), handing both as background services that live and die with the app.
"""

from __future__ import annotations

import secrets

import msgspec
from starlette.applications import Starlette

from chatguard.admin import AdminListener, create_admin_app
from chatguard.supervisor import RelaySupervisor, gathering_options
from signaling.app import create_app
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
    app = create_app(config, route, background=(admin, supervisor))  # a taken port: no workers
    admin.app = create_admin_app(app.state.service)
    app.state.relay_supervisor = supervisor
    app.state.admin = admin
    return app
