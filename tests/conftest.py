"""Shared fixtures: a real uvicorn server on a free port, and real WebSocket clients."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from chatguard.serve import create_serving_app
from signaling.app import ws_max_size
from signaling.config import Config, config_from_mapping
from signaling.route_policy import Route
from tests.support.netns import IsolatedHosts, isolated_hosts_or_skip
from tests.support.ports import free_port


@dataclass
class RunningServer:
    host: str
    port: int
    app_state: object

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"


def run_server(config: Config, route: Route | None = None) -> Iterator[RunningServer]:
    """Serve the real app, with the relay workers `config` asks for, with real uvicorn in a
    background thread for one test."""
    app = create_serving_app(config, route)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            log_level="warning",
            ws_max_size=ws_max_size(config),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    running = RunningServer(config.server.host, config.server.port, app.state)
    if config.relay.workers != 0:
        wait_until_ready(running)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_ready(server: RunningServer, timeout_s: float = 60) -> None:
    """Until /readyz says the routes in force can be carried: the local relay workers have
    connected and, for a strict route, loaded their model; a test's first call needs that."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(server.http_url + "/readyz", timeout=5):
                return
        except urllib.error.HTTPError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout_s} s: {exc.read()!r}") from None
        time.sleep(0.1)


def make_config(**sections: dict[str, object]) -> Config:
    data: dict[str, object] = {
        "server": {"host": "127.0.0.1", "port": free_port()},
        "relay": {"workers": 0},  # tests that need relay workers ask for them
    }
    for name, values in sections.items():
        merged = dict(data.get(name, {}))  # type: ignore[call-overload]
        merged.update(values)
        data[name] = merged
    return config_from_mapping(data)


@pytest.fixture
def server() -> Iterator[RunningServer]:
    config = make_config(
        matchmaking={"repair_cooldown_s": 30.0, "interest_fallback_s": 0.5},
        regions={"trusted_header": "x-country", "routes": {"DE": "strict", "FR": "relay"}},
    )
    yield from run_server(config)


@pytest.fixture
def netns_hosts() -> Iterator[IsolatedHosts]:
    """Two test hosts in network namespaces that reach this machine but not each other
    (tests/netns.py): browsers there cannot call each other directly. Skips without root or
    `ip netns`, fails instead when CI is set; everything is removed afterwards."""
    with isolated_hosts_or_skip(2) as hosts:
        yield hosts
