"""A real chatguard service for a test: real uvicorn in a background thread, on a free port, with
the relay workers its configuration asks for."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from chatguard.serve import create_serving_app, uvicorn_config
from signaling.config import Config, config_from_mapping
from signaling.route_policy import Route
from tests.support.ports import free_port


@dataclass
class RunningServer:
    host: str
    port: int
    app_state: object
    admin_port: int = 0

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        """The admin listener: /metrics and /stats."""
        return f"http://{self.host}:{self.admin_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"


def run_server(config: Config, route: Route | None = None) -> Iterator[RunningServer]:
    """Serve the real app, with the relay workers `config` asks for, with real uvicorn in a
    background thread for one test."""
    app = create_serving_app(config, route)
    server = uvicorn.Server(uvicorn_config(app, config, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    running = RunningServer(config.server.host, config.server.port, app.state, config.admin.port)
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
        "admin": {"port": free_port()},
        "relay": {"workers": 0},  # tests that need relay workers ask for them
    }
    for name, values in sections.items():
        merged = dict(data.get(name, {}))  # type: ignore[call-overload]
        merged.update(values)
        data[name] = merged
    return config_from_mapping(data)


async def wait_for_workers(
    server: RunningServer, count: int, timeout: float = 30
) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            workers = (await http.get(server.admin_url + "/stats")).json()["relay_workers"]
            if len(workers) >= count:
                return list(workers)
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(workers)} relay workers joined")
            await asyncio.sleep(0.1)


class ServedUrl(str):
    """The service's public URL, with its admin listener's URL (/metrics, /stats) and the
    process (for signals) beside."""

    admin: str
    process: subprocess.Popen[bytes]


@contextmanager
def chatguard_serve(
    tmp_path: Path, config_toml: str = "", *extra: str, port: int = 0
) -> Iterator[ServedUrl]:
    """The real command an operator runs, on `port` (default: a free one), with an optional
    config file; yields its URL once /readyz says the routes in force can be carried (relay
    workers connected). With `--certfile` among `extra`, the URL is https (the test's own
    certificate)."""
    port = port or free_port()
    admin_port = free_port()
    config = tmp_path / "chatguard.toml"
    config.write_text(config_toml)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatguard.cli",
            "serve",
            "--port",
            str(port),
            "--config",
            str(config),
            "--admin-port",
            str(admin_port),
            "--log-level",
            "warning",
            *extra,
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    scheme = "https" if "--certfile" in extra else "http"
    url = ServedUrl(f"{scheme}://127.0.0.1:{port}")
    url.admin = f"http://127.0.0.1:{admin_port}"
    url.process = process
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1, verify=False).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("chatguard serve did not come up")
        time.sleep(0.1)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # at once: SIGTERM would drain first
        process.wait(timeout=10)
