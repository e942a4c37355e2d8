"""The signaling workload's simulated users: WebSocket clients that join, signal like a browser
(offer, answer, candidates; an SDP stamped with its send time) and press Next after a dwell,
run by the hundreds in a load-generator process that reports every second through a pipe.

They connect as a browser does, offering permessage-deflate the way Chromium and Firefox offer
it (``permessage-deflate; client_max_window_bits``: the server may compress with its full 32 KiB
window), unless told not to offer it: what the server accepts then costs what it costs a real
deployment. (The ``websockets`` library's own default offer asks for 4 KiB windows, which a
browser never does.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from chatguard.runtime import collect_young_garbage, tune_gc_for_serving

T = TypeVar("T")
Compression = Literal["browser", "none"]
COMPRESSION_CHOICES: tuple[Compression, ...] = ("browser", "none")
NO_EXTENSIONS = "none"
"""What a client records when the server accepted no extension."""


def connect(url: str, compression: Compression) -> websockets.connect:
    """A client connection offering permessage-deflate as a browser does, or offering nothing."""
    offer = [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
    return websockets.connect(
        url,
        max_size=None,
        open_timeout=60,
        close_timeout=2,
        compression=None,
        extensions=offer if compression == "browser" else None,
    )


def accepted_extensions(ws: websockets.ClientConnection) -> str:
    """The server's ``Sec-WebSocket-Extensions`` answer, e.g. whether it compresses."""
    response = ws.response
    answer = response.headers.get("Sec-WebSocket-Extensions") if response else None
    return answer or NO_EXTENSIONS


FAKE_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\n" + "a=x-padding\r\n" * 150
FAKE_CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host",
    "sdpMid": "0",
}
PING = '{"type":"ping"}'


@dataclass
class WorkerReport:
    connected: int = 0
    pairs: int = 0
    pairings: list[tuple[str, float, float]] = field(default_factory=list)
    """Each member's pairing: the pair, when it joined or was left or pressed Next, when it
    was told it is paired (``time.perf_counter``, one clock for every process here);
    :class:`PairingClock` splits them into latency and queue time."""
    signal_latency_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extensions: str = ""
    """What the server accepted of the clients' offer (the first answer seen)."""


class PairingClock:
    """Which of a pairing's two waits was the service's doing.

    Of the two members of a pair, the one that acted last (joined, pressed Next, or was left)
    found the other already waiting: from its action to ``paired`` is pairing latency, the
    service's work. The other waited for a partner to turn up: queue time, the load's doing.
    Why not "was told ``waiting``": a node of a cluster tells every joining user it waits
    until Redis answers, so that word does not say whether a partner was free.
    """

    def __init__(self) -> None:
        self._first: dict[str, tuple[float, float]] = {}

    def add(self, pair: str, acted_at: float, paired_at: float) -> tuple[float, float] | None:
        """(pairing latency, queue time) in seconds once both members are seen, else None."""
        other = self._first.pop(pair, None)
        if other is None:
            self._first[pair] = (acted_at, paired_at)
            return None
        (early_acted, early_paired), (late_acted, late_paired) = sorted(
            [other, (acted_at, paired_at)]
        )
        return late_paired - late_acted, early_paired - early_acted


class LoadClient:
    """One simulated user: joins, signals like a browser would, presses Next after a dwell."""

    def __init__(
        self,
        url: str,
        report: WorkerReport,
        dwell_s: tuple[float, float],
        rng: random.Random,
        compression: Compression,
    ):
        self.url = url
        self.compression = compression
        self.report = report
        self.dwell_s = dwell_s
        self.rng = rng
        self.acted_at = 0.0

    async def run(self, stop_at: float) -> None:
        try:
            async with connect(self.url, self.compression) as ws:
                self.report.extensions = self.report.extensions or accepted_extensions(ws)
                self.report.connected += 1
                try:
                    await self._cycle(ws, stop_at)
                finally:
                    self.report.connected -= 1
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            self.report.errors.append(f"{type(exc).__name__}: {exc}")

    async def _cycle(self, ws: websockets.ClientConnection, stop_at: float) -> None:
        """Answer the service until ``stop_at``, pressing Next once a dwell is over, and ping at
        the interval ``welcome`` names, as the page does (a dwell may then outlast the
        service's heartbeat time-out, and the service pays for the pings a real page sends).

        One deadline per client, moved when a dwell starts or ends, not a time-out per message:
        ``asyncio.wait_for`` around every receive made a task and a timer per message, a
        seventh of this process's CPU at 6,000 clients, and a load generator short of CPU
        stamps its own lag into the pairing latency it reports."""
        welcome = msgspec.json.decode(await ws.recv())
        ping_every = float(welcome["heartbeat_interval_s"])
        await self._act(ws, "join")
        loop = asyncio.get_running_loop()
        dwell_ends, ping_at = math.inf, loop.time() + ping_every
        while (now := loop.time()) < stop_at:
            if now >= ping_at:
                await ws.send(PING)
                ping_at = now + ping_every
            if now >= dwell_ends:
                dwell_ends = math.inf
                await self._act(ws, "next")
            try:
                async with asyncio.timeout_at(min(dwell_ends, ping_at, stop_at)) as deadline:
                    while True:
                        ends = await self._answer(ws, msgspec.json.decode(await ws.recv()))
                        if ends is not None:
                            dwell_ends = ends
                            deadline.reschedule(min(dwell_ends, ping_at, stop_at))
            except TimeoutError:
                pass

    async def _answer(
        self, ws: websockets.ClientConnection, message: dict[str, Any]
    ) -> float | None:
        """React to one message as a browser would; when the dwell now ends (the event loop's
        time), or ``inf`` when there is no dwell to wait out any more, or None: unchanged."""
        kind = message["type"]
        now = time.perf_counter()
        if kind == "paired":
            self.report.pairs += message["role"] == "offerer"  # count each pair once
            pair = message["pair"]
            self.report.pairings.append((pair, self.acted_at, now))
            if message["role"] == "offerer":
                await self._signal(ws, "offer", pair, now)
                return asyncio.get_running_loop().time() + self.rng.uniform(*self.dwell_s)
        elif kind in ("offer", "answer"):
            sent = float(message["sdp"].split("\n", 1)[0])
            self.report.signal_latency_s.append(now - sent)
            pair = message["pair"]
            if kind == "offer":
                await self._signal(ws, "answer", pair, now)
            candidate = _encode({"type": "candidate", "pair": pair, "candidate": FAKE_CANDIDATE})
            for _ in range(2):
                await ws.send(candidate)
        elif kind == "partner_left":
            self.acted_at = now
            return math.inf
        elif kind == "error" and message["code"] not in ("stale_pair", "not_paired"):
            self.report.errors.append(message["message"])
        return None

    @staticmethod
    async def _signal(ws: websockets.ClientConnection, kind: str, pair: str, now: float) -> None:
        """Send an SDP stamped with the send time, so the receiver can measure relay latency."""
        await ws.send(_encode({"type": kind, "pair": pair, "sdp": f"{now}\n{FAKE_SDP}"}))

    async def _act(self, ws: websockets.ClientConnection, kind: str) -> None:
        self.acted_at = time.perf_counter()
        await ws.send(_encode({"type": kind}))


def _encode(message: dict[str, Any]) -> str:
    """JSON text for a text frame (msgspec: a quarter of the standard library's time)."""
    return msgspec.json.encode(message).decode()


def worker_main(
    url: str,
    clients: int,
    duration: float,
    ramp_s: float,
    dwell_s: tuple[float, float],
    seed: int,
    compression: Compression,
    pipe: Any,
) -> None:
    """One load-generator process: runs `clients` users, reports every second through `pipe`.

    Its collector is tuned as the service's is (``chatguard.runtime``): a client measures
    pairing latency on its own event loop, so a pause here is counted as the service's. With
    Python's default thresholds a process of 4,000 clients ran 7 full collections of
    65-372 ms in a 20 s load, and pairing p99 measured those pauses.
    """
    tune_gc_for_serving()

    async def main() -> None:
        report = WorkerReport()
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + ramp_s + duration
        collector = asyncio.create_task(collect_young_garbage())
        tasks = []
        for index in range(clients):
            client = LoadClient(url, report, dwell_s, rng, compression)
            tasks.append(
                asyncio.create_task(_start_later(client, ramp_s * index / clients, stop_at))
            )
        while not all(task.done() for task in tasks):
            await asyncio.sleep(1.0)
            pipe.send(_drain(report, final=False))
        pipe.send(_drain(report, final=True))
        collector.cancel()

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
        "pairings": report.pairings,
        "signal_latency_s": report.signal_latency_s,
        "errors": report.errors[:20],
        "error_count": len(report.errors),
        "extensions": report.extensions,
    }
    report.pairs = 0
    report.pairings, report.signal_latency_s = [], []
    report.errors = []
    return snapshot


def hold_waiting(
    url: str, clients: int, compression: Compression, measure: Callable[[], T]
) -> tuple[str, T]:
    """Connect ``clients`` users that each join with an interest nobody else has (so, under a
    long interest fallback, all of them wait), then call ``measure`` while they wait; what
    the server accepted of the offer, and ``measure``'s answer.

    Why waiting users: they are what a pool in Redis holds per person, and an idle connected
    user is what a signaling process holds per person between calls.
    """

    async def main() -> tuple[str, T]:
        async with contextlib.AsyncExitStack() as stack:
            sockets = []
            for index in range(clients):
                ws = await stack.enter_async_context(connect(url, compression))
                await ws.recv()  # welcome
                await ws.send(json.dumps({"type": "join", "interests": [f"probe{index}"]}))
                sockets.append(ws)
            for ws in sockets:
                while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] != "waiting":
                    pass
            return accepted_extensions(sockets[0]), await asyncio.to_thread(measure)

    return asyncio.run(main())
