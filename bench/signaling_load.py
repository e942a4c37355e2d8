"""The signaling workload's simulated users: WebSocket clients that join, signal like a browser
(offer, answer, candidates; an SDP stamped with its send time) and press Next after a dwell,
run by the hundreds in a load-generator process that reports every second through a pipe.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

FAKE_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\n" + "a=x-padding\r\n" * 150
FAKE_CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host",
    "sdpMid": "0",
}


@dataclass
class WorkerReport:
    connected: int = 0
    pairs: int = 0
    pair_latency_s: list[float] = field(default_factory=list)
    queue_time_s: list[float] = field(default_factory=list)
    signal_latency_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class LoadClient:
    """One simulated user: joins, signals like a browser would, presses Next after a dwell."""

    def __init__(
        self, url: str, report: WorkerReport, dwell_s: tuple[float, float], rng: random.Random
    ):
        self.url = url
        self.report = report
        self.dwell_s = dwell_s
        self.rng = rng
        self.acted_at = 0.0
        self.was_queued = False

    async def run(self, stop_at: float) -> None:
        try:
            async with websockets.connect(
                self.url, max_size=None, open_timeout=60, close_timeout=2
            ) as ws:
                self.report.connected += 1
                try:
                    await self._cycle(ws, stop_at)
                finally:
                    self.report.connected -= 1
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            self.report.errors.append(f"{type(exc).__name__}: {exc}")

    async def _cycle(self, ws: websockets.ClientConnection, stop_at: float) -> None:
        await ws.recv()  # welcome
        await self._act(ws, "join")
        next_at: float | None = None
        loop = asyncio.get_running_loop()
        while loop.time() < stop_at:
            timeout = max(0.05, (next_at or stop_at) - loop.time())
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                if next_at is not None and loop.time() >= next_at:
                    next_at = None
                    await self._act(ws, "next")
                continue
            message = json.loads(raw)
            kind = message["type"]
            now = time.perf_counter()
            if kind == "waiting":
                self.was_queued = True
            elif kind == "paired":
                self.report.pairs += message["role"] == "offerer"  # count each pair once
                sample = self.report.queue_time_s if self.was_queued else self.report.pair_latency_s
                sample.append(now - self.acted_at)
                self.was_queued = False
                pair = message["pair"]
                if message["role"] == "offerer":
                    await self._signal(ws, "offer", pair, now)
                    next_at = loop.time() + self.rng.uniform(*self.dwell_s)
            elif kind in ("offer", "answer"):
                sent = float(message["sdp"].split("\n", 1)[0])
                self.report.signal_latency_s.append(now - sent)
                pair = message["pair"]
                if kind == "offer":
                    await self._signal(ws, "answer", pair, now)
                for _ in range(2):
                    await ws.send(
                        json.dumps({"type": "candidate", "pair": pair, "candidate": FAKE_CANDIDATE})
                    )
            elif kind == "partner_left":
                self.acted_at = now
                next_at = None
            elif kind == "error" and message["code"] not in ("stale_pair", "not_paired"):
                self.report.errors.append(message["message"])

    @staticmethod
    async def _signal(ws: websockets.ClientConnection, kind: str, pair: str, now: float) -> None:
        """Send an SDP stamped with the send time, so the receiver can measure relay latency."""
        await ws.send(json.dumps({"type": kind, "pair": pair, "sdp": f"{now}\n{FAKE_SDP}"}))

    async def _act(self, ws: websockets.ClientConnection, kind: str) -> None:
        self.acted_at = time.perf_counter()
        self.was_queued = False
        await ws.send(json.dumps({"type": kind}))


def worker_main(
    url: str,
    clients: int,
    duration: float,
    ramp_s: float,
    dwell_s: tuple[float, float],
    seed: int,
    pipe: Any,
) -> None:
    """One load-generator process: runs `clients` users, reports every second through `pipe`."""

    async def main() -> None:
        report = WorkerReport()
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + ramp_s + duration
        tasks = []
        for index in range(clients):
            client = LoadClient(url, report, dwell_s, rng)
            tasks.append(
                asyncio.create_task(_start_later(client, ramp_s * index / clients, stop_at))
            )
        while not all(task.done() for task in tasks):
            await asyncio.sleep(1.0)
            pipe.send(_drain(report, final=False))
        pipe.send(_drain(report, final=True))

    async def _start_later(client: LoadClient, delay: float, stop_at: float) -> None:
        await asyncio.sleep(delay)
        await client.run(stop_at)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def _drain(report: WorkerReport, final: bool) -> dict[str, Any]:
    """Samples since the last report (so the parent can show live rates), then forget them."""
    snapshot = {
        "final": final,
        "connected": report.connected,
        "pairs": report.pairs,
        "pair_latency_s": report.pair_latency_s,
        "queue_time_s": report.queue_time_s,
        "signal_latency_s": report.signal_latency_s,
        "errors": report.errors[:20],
        "error_count": len(report.errors),
    }
    report.pairs = 0
    report.pair_latency_s, report.queue_time_s, report.signal_latency_s = [], [], []
    report.errors = []
    return snapshot
