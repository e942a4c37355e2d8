"""Signaling nodes of one pool for a test: real uvicorn nodes on one real redis-server, each
taking relay workers (with `TOKEN`), and what a test asks them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import websockets

from signaling.route_policy import Route
from tests.support.redis_server import RedisServer
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import device_subprotocols

TOKEN = "cluster-relay-token"
serve_one = contextmanager(run_server)


@contextmanager
def routed_nodes(
    redis: RedisServer, count: int, route: Route, **sections: dict[str, object]
) -> Iterator[list[RunningServer]]:
    """`count` nodes whose every call takes `route`; `sections` adds to their configuration."""
    cluster = {"redis_url": redis.url, "presence_ttl_s": 1.0}
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
