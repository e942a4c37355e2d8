"""What one pairing across two signaling nodes costs Redis, counted by Redis itself.

Two ``chatguard serve --redis`` nodes on a throw-away ``redis-server``; one pairing after the
other, each of two fresh clients, one per node: both connect, one joins and waits, the other
joins and pairs them, they exchange an offer, an answer and two candidates each way, one
leaves and both disconnect. Redis's counters (``INFO commandstats``, ``total_reads_processed``)
are read before and after, and once over an idle spell of the same length, whose work (the
nodes' timers and presence keys) is taken off: what is left is the pairings' own.

Why one at a time and not the capacity benchmark's load: the figure sought is a count, not a
rate; sequential pairings on an idle machine give the same count on every run, where a load's
count moves with how many inputs a node happens to pipeline together.

    python -m bench.redis_pairing_cost [--pairs 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import websockets

from bench.redis_probe import LocalRedis, RedisCounters, read_counters
from bench.service import EmbeddedService, wait_until_up
from bench.signaling_setups import new_key_prefix, service_config

CANDIDATE = {"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host", "sdpMid": "0"}


async def _next(ws: websockets.ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of type `kind`, skipping queue notices."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == kind:
            return message
        assert message["type"] == "waiting", message


async def _one_pairing(first_url: str, second_url: str) -> None:
    async with websockets.connect(first_url) as a, websockets.connect(second_url) as b:
        await _next(a, "welcome")
        await _next(b, "welcome")
        await a.send(json.dumps({"type": "join"}))
        await _next(a, "waiting")
        await b.send(json.dumps({"type": "join"}))
        paired = await _next(a, "paired")
        pair = paired["pair"]
        await _next(b, "paired")
        offerer, answerer = (a, b) if paired["role"] == "offerer" else (b, a)
        await offerer.send(json.dumps({"type": "offer", "pair": pair, "sdp": "v=0 offer"}))
        await _next(answerer, "offer")
        await answerer.send(json.dumps({"type": "answer", "pair": pair, "sdp": "v=0 answer"}))
        await _next(offerer, "answer")
        for ws in (a, b):
            for _ in range(2):
                await ws.send(
                    json.dumps({"type": "candidate", "pair": pair, "candidate": CANDIDATE})
                )
        for ws in (a, b):
            for _ in range(2):
                await _next(ws, "candidate")
        await a.send(json.dumps({"type": "leave"}))
        await _next(b, "partner_left")


async def _pairings(first_url: str, second_url: str, count: int) -> None:
    for _ in range(count):
        await _one_pairing(first_url, second_url)


def measure(pairs: int) -> dict[str, Any]:
    redis = LocalRedis()
    nodes: list[EmbeddedService] = []
    try:
        config = service_config(False, new_key_prefix())
        for _ in range(2):
            nodes.append(EmbeddedService(["--relay-workers", "0", "--redis", redis.url], config))
        for node in nodes:
            wait_until_up(node.endpoints.ws_url, 30)
        time.sleep(1)  # the welcome probes' disconnects are done
        before = read_counters(redis.url)
        started = time.monotonic()
        asyncio.run(_pairings(nodes[0].endpoints.ws_url, nodes[1].endpoints.ws_url, pairs))
        time.sleep(0.5)  # the last disconnects reach Redis
        wall = time.monotonic() - started
        busy = read_counters(redis.url).minus(before)
        time.sleep(wall)
        idle = read_counters(redis.url).minus(before).minus(busy)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
    return _figures(busy, idle, pairs, wall)


def _figures(busy: RedisCounters, idle: RedisCounters, pairs: int, wall: float) -> dict[str, Any]:
    by_command = {
        name: (calls - idle.by_command.get(name, 0)) / pairs
        for name, calls in busy.by_command.items()
        if calls - idle.by_command.get(name, 0) > 0
    }
    return {
        "pairs": pairs,
        "seconds": round(wall, 2),
        "commands_per_pairing": round((busy.commands - idle.commands) / pairs, 1),
        "round_trips_per_pairing": round((busy.reads - idle.reads) / pairs, 1),
        "redis_cpu_ms_per_pairing": round(1000 * (busy.cpu_s - idle.cpu_s) / pairs, 3),
        "idle_commands_per_s": round(idle.commands / wall, 1),
        "by_command_per_pairing": {
            name: round(n, 2) for name, n in sorted(by_command.items(), key=lambda kv: -kv[1])
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=200, help="pairings to make (200)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = measure(args.pairs)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
