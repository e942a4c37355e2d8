"""Signaling nodes of one pool for a test: real uvicorn nodes on one real redis-server, each
taking relay workers (with `TOKEN`), and what a test asks them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets

from signaling.route_policy import Route
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import device_subprotocols

TOKEN = "cluster-relay-token"
PRESENCE_TTL_S = 1.0
"""The nodes' presence TTL: a dead node's clients are handed back within about this."""
serve_one = contextmanager(run_server)


@contextmanager
def routed_nodes(
    redis: RedisServer, count: int, route: Route, **sections: dict[str, object]
) -> Iterator[list[RunningServer]]:
    """`count` nodes whose every call takes `route`; `sections` adds to their configuration."""
    cluster = {"redis_url": redis.url, "presence_ttl_s": PRESENCE_TTL_S}
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                serve_one(make_config(cluster=cluster, relay={"token": TOKEN}, **sections), route)
            )
            for _ in range(count)
        ]


def relay_url(node: RunningServer) -> str:
    return node.ws_url.replace("/ws", "/relay")


async def stats(node: RunningServer) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        result: dict[str, Any] = (await http.get(node.admin_url + "/stats")).json()
        return result


async def until_seen(node: RunningServer, want: dict[str, dict[str, Any]]) -> None:
    """Until `node` sees each named worker of another node with the given fields."""
    deadline = time.monotonic() + 10
    while True:
        seen = {w["worker"]: w for w in (await stats(node)).get("relay_workers_elsewhere", [])}
        if all(
            name in seen and all(seen[name][k] == v for k, v in fields.items())
            for name, fields in want.items()
        ):
            return
        assert time.monotonic() < deadline, f"{node.port} sees {seen}"
        await asyncio.sleep(0.05)


async def refused_at(url: str, device: str) -> None:
    """Until `device` is refused at `url`'s door: a ban reaches the other nodes a moment
    after it is made."""
    deadline = time.monotonic() + 5
    while True:
        async with websockets.connect(url, subprotocols=device_subprotocols(device)) as ws:
            if json.loads(await ws.recv())["type"] == "banned":
                return
        assert time.monotonic() < deadline, f"not refused at {url}"
        await asyncio.sleep(0.1)


@contextmanager
def serve_node(
    tmp_path: Path, redis: RedisServer, name: str, route: Route | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """The real `chatguard serve --redis`, as an operator runs it (taking workers with
    `TOKEN`, every call on `route` if given); yields the process (a test may kill it) once it
    answers, and its port as `process.args[-1]`."""
    port = free_port()
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'[relay]\nworkers = 0\ntoken = "{TOKEN}"\n[admin]\nport = 0\n'
        f'[cluster]\nnode_id = "{name}"\npresence_ttl_s = {PRESENCE_TTL_S}\n'
    )
    command = [sys.executable, "-m", "chatguard.cli", "serve", "--config", str(config)]
    command += ["--route", route.value] if route is not None else []
    command += ["--redis", redis.url, "--log-level", "warning", "--port", str(port)]
    with subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"chatguard serve ({name}) did not come up")
                time.sleep(0.1)
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=10)


def ws_url(process: subprocess.Popen[bytes]) -> str:
    return f"ws://127.0.0.1:{process.args[-1]}/ws"  # type: ignore[index]
