"""Simulated random-chat users that drive a chatguard deployment through its own protocol.

Why through the protocol: an engineer sizing a deployment wants what real users get, so each
simulated user does what the web page does. It opens ``/ws``, joins, is paired, offers to the
relay (or to its partner on the direct route), keeps its relay connection over Next when
signaling says ``reuse``, answers ``reroute``, and presses Next after a random dwell. Its media
is :class:`bench.media_peer.ReplayPeer`: the pre-encoded clip out, frames counted in, nothing
decoded, so one load-generator process carries many users. A load generator can run on another
machine than the service: all it needs is the service's URL and UDP to its relays.

Each process also connects ``direct_pairs`` pairs client to client without any relay; their
latency, measured the same way in the same run, is what relayed latency is compared with.

The process reports every second through a pipe (:func:`chat_load_main`); the orchestrator
(:mod:`bench.relay_cases`) sums the reports (:mod:`bench.relay_tally`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final

import websockets

from bench.media_peer import ReplayPeer, StreamWindow, group_report
from bench.procs import listen, pin_ice_address, run_loop
from bench.relay_clip import AudioClip, Clip

STARTUP_GRACE_S: Final = 3.0
"""A new call counts towards a stream's frame rate from its first frame, or from this long
after pairing if no frame came by then (ICE + DTLS + a keyframe interval), so that a call the
relay never delivers shows up as a stream at 0 fps instead of not at all."""
NEGOTIATIONS_AT_ONCE: Final = 8
"""Offers/answers being built at once per process: aiortc gathers and hashes certificates
per connection; a burst of hundreds at start would stall every running stream's sender."""
ERRORS_KEPT: Final = 20


@dataclass
class ChatLoadSpec:
    """What one load-generator process runs."""

    url: str
    """The service's client WebSocket, e.g. ``ws://127.0.0.1:8080/ws``."""
    users: int
    clip: Clip
    audio: AudioClip | None
    dwell_s: tuple[float, float] | None
    """Each pair's call lasts a uniform random time in this range, then one member presses
    Next; None: no churn."""
    seed: int
    ice_address: str | None
    """Gather ICE candidates on this address only (None: every interface)."""
    unsafe: frozenset[int] = frozenset()
    """Clip indexes a receiver must never see (strict route); received ones are leaks."""
    direct_pairs: int = 1
    transport: str = "udp"
    """How users reach the relay: "udp", or "tcp" (ICE-TCP only, as users whose network drops
    UDP: :mod:`bench.ice_tcp_client`). The direct pairs stay on UDP."""
    use_uvloop: bool = True
    connect_timeout_s: float = 60.0


@dataclass
class CallStats:
    """Call events across the process's users since the last report."""

    started: int = 0
    reused: int = 0
    nexts: int = 0
    ended: int = 0
    without_media: int = 0
    switch_s: list[float] = field(default_factory=list)
    """Pairing to first complete frame, per call that got one."""
    routes: Counter[str] = field(default_factory=Counter)
    moderation: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(text)

    def drain(self) -> dict[str, Any]:
        """The events since the last call, as a report; starts counting afresh."""
        report = {
            "started": self.started,
            "reused": self.reused,
            "nexts": self.nexts,
            "ended": self.ended,
            "without_media": self.without_media,
            "switch_s": self.switch_s,
            "routes": dict(self.routes),
            "moderation": dict(self.moderation),
            "errors": self.errors,
            "error_count": self.error_count,
        }
        fresh = CallStats()
        for name in report:
            setattr(self, name, getattr(fresh, name))
        return report


def media_seconds(
    start: float, end: float, call_start: float | None, first_frame: float | None
) -> float:
    """Seconds of ``[start, end]`` in which a call's stream is expected to deliver frames.

    From the call's first frame, or :data:`STARTUP_GRACE_S` after pairing if that is earlier;
    zero outside a call.
    """
    if call_start is None:
        return 0.0
    since = call_start + STARTUP_GRACE_S
    if first_frame is not None:
        since = min(since, first_frame)
    return max(0.0, end - max(start, since))


class ChatUser:
    """One simulated user: a signaling session and, while in a call, one media connection."""

    def __init__(
        self,
        spec: ChatLoadSpec,
        rng: random.Random,
        calls: CallStats,
        negotiations: asyncio.Semaphore,
    ) -> None:
        self.spec = spec
        self.rng = rng
        self.calls = calls
        self.negotiations = negotiations
        self.peer: ReplayPeer | None = None
        self.parked: ReplayPeer | None = None
        self.route: str | None = None
        self.pair: str | None = None
        self.call_start: float | None = None
        self._switch_pending = False
        """The current call's first frame has not been timed yet."""
        self.media_connected_once = False
        self._window = StreamWindow()
        self._media_s = 0.0
        self._blocked_s = 0.0
        """Seconds of this window the partner's video was withheld (strict route)."""
        self._blocked_since: float | None = None
        self._window_start = time.monotonic()
        self._ws: websockets.ClientConnection | None = None
        self._next_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Connect, join and play calls until cancelled; a lost connection is an error."""
        try:
            async with websockets.connect(
                self.spec.url, max_size=None, open_timeout=60, close_timeout=2
            ) as ws:
                self._ws = ws
                welcome = json.loads(await ws.recv())
                heartbeat = asyncio.create_task(self._heartbeat(welcome["heartbeat_interval_s"]))
                try:
                    await self._send(type="join")
                    async for raw in ws:
                        await self._on_message(json.loads(raw))
                finally:
                    heartbeat.cancel()
        except (OSError, websockets.WebSocketException, TimeoutError, KeyError) as exc:
            self.calls.error(f"signaling connection: {type(exc).__name__}: {exc}")

    async def _heartbeat(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._send(type="ping")

    async def _send(self, **message: Any) -> None:
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(json.dumps(message))

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "paired":
            await self._paired(message)
        elif kind == "reroute":
            self.route = message["route"]
            self.calls.routes[f"reroute:{self.route}"] += 1
            await self._new_connection(offer=True)
        elif kind == "offer" and message["pair"] == self.pair and self.peer is not None:
            async with self.negotiations:
                sdp = await self.peer.answer(message["sdp"])
            await self._send(type="answer", pair=self.pair, sdp=sdp)
            self._when_connected(self.peer)
        elif kind == "answer" and message["pair"] == self.pair and self.peer is not None:
            peer = self.peer
            await peer.accept(message["sdp"])
            if peer.ice_tcp is not None:
                for error in peer.ice_tcp.connect_errors:
                    self.calls.error(error)
            self._when_connected(peer)
        elif kind == "partner_left":
            await self._end_call(park=True)
        elif kind == "call_ended":
            self.calls.error(f"call ended by signaling: {message.get('reason', '')}")
            await self._end_call(park=False)
        elif kind == "moderation":
            self._on_moderation(message)
        elif kind == "banned":
            self.calls.error(f"banned by the service until {message.get('until_unix')}")
        elif kind == "error" and message.get("code") not in ("stale_pair", "not_paired"):
            self.calls.error(f"{message.get('code')}: {message.get('message')}")

    def _on_moderation(self, message: dict[str, Any]) -> None:
        """Time the partner's video is withheld is not time it should deliver frames in."""
        self.calls.moderation[f"{message['who']}:{message['state']}"] += 1
        if message["who"] != "partner":
            return
        if message["state"] == "blocked" and self._blocked_since is None:
            self._blocked_since = time.monotonic()
        elif message["state"] == "resumed":
            self._unblock()

    def _unblock(self) -> None:
        if self._blocked_since is not None:
            self._blocked_s += time.monotonic() - self._blocked_since
            self._blocked_since = None

    async def _paired(self, message: dict[str, Any]) -> None:
        self.pair, self.route = message["pair"], message["route"]
        self.calls.started += 1
        self.calls.routes[self.route] += 1
        self.call_start = time.monotonic()
        if message.get("reuse") and self.parked is not None:
            self.calls.reused += 1
            self.peer, self.parked = self.parked, None
            self._begin_call(self.peer)
        else:
            await self._new_connection(offer=message["role"] == "offerer")
        if self.spec.dwell_s is not None and message["role"] == "offerer":
            dwell = self.rng.uniform(*self.spec.dwell_s)
            self._next_timer = asyncio.get_running_loop().call_later(dwell, self._press_next)

    async def _new_connection(self, offer: bool) -> None:
        await self._close_peer("peer")
        await self._close_peer("parked")
        peer = ReplayPeer(
            self.spec.clip,
            self.spec.audio,
            unsafe=self.spec.unsafe,
            ice_tcp=self.spec.transport == "tcp",
        )
        self.peer = peer
        self._begin_call(peer)
        if offer:
            async with self.negotiations:
                sdp = await peer.offer()
            await self._send(type="offer", pair=self.pair, sdp=sdp)

    def _begin_call(self, peer: ReplayPeer) -> None:
        peer.first_frame_at = None
        peer.in_call = True
        peer.live_since = self.call_start or time.monotonic()
        self._switch_pending = True

    def _when_connected(self, peer: ReplayPeer) -> None:
        """Start the peer's media and tell signaling, once DTLS is up (in the background)."""

        async def wait() -> None:
            deadline = time.monotonic() + self.spec.connect_timeout_s
            while not peer.connected():
                if time.monotonic() > deadline or peer is not self.peer:
                    return
                await asyncio.sleep(0.05)
            peer.start(self.rng)
            self.media_connected_once = True
            await self._send(type="call_state", pair=self.pair, state="connected", route=self.route)

        task = asyncio.create_task(wait())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _press_next(self) -> None:
        self._next_timer = None
        self.calls.nexts += 1

        async def press() -> None:
            await self._end_call(park=True)
            await self._send(type="next")

        task = asyncio.create_task(press())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_call(self, park: bool) -> None:
        """The call is over: account for it, then keep the relay connection (Next) or close."""
        if self._next_timer is not None:
            self._next_timer.cancel()
            self._next_timer = None
        if self.call_start is None:
            return
        now = time.monotonic()
        self.calls.ended += 1
        peer = self.peer
        first = peer.first_frame_at if peer is not None else None
        if first is None and now - self.call_start > STARTUP_GRACE_S:
            self.calls.without_media += 1
        self._media_s += media_seconds(self._window_start, now, self.call_start, first)
        self._unblock()
        self.call_start = None
        if peer is None:
            return
        peer.in_call = False
        self._window.merge(peer.drain())
        if park and self.route in ("relay", "strict"):
            await self._close_peer("parked")
            self.parked, self.peer = peer, None
        else:
            await self._close_peer("peer")

    async def _close_peer(self, which: str) -> None:
        peer: ReplayPeer | None = getattr(self, which)
        if peer is None:
            return
        setattr(self, which, None)
        self._window.merge(peer.drain())
        await peer.close()

    def drain(self, now: float) -> tuple[StreamWindow, float, list[float]]:
        """(what arrived and was sent, seconds of expected media, send lags) since last time.

        Expected media excludes the time the partner's video was withheld by moderation.
        """
        window, self._window = self._window, StreamWindow()
        peers = [p for p in (self.peer, self.parked) if p is not None]
        for peer in peers:
            window.merge(peer.drain())
        first = self.peer.first_frame_at if self.peer is not None else None
        if self._switch_pending and self.call_start is not None and first is not None:
            self._switch_pending = False
            self.calls.switch_s.append(first - self.call_start)
        media_s = self._media_s + media_seconds(self._window_start, now, self.call_start, first)
        if self._blocked_since is not None:
            self._blocked_s += now - self._blocked_since
            self._blocked_since = now
        media_s = max(0.0, media_s - self._blocked_s)
        self._media_s, self._blocked_s, self._window_start = 0.0, 0.0, now
        lags = [x for p in peers for x in p.send_lag]
        for peer in peers:
            peer.send_lag.clear()
        return window, media_s, lags

    async def close(self) -> None:
        if self._next_timer is not None:
            self._next_timer.cancel()
        for task in self._tasks:
            task.cancel()
        await self._close_peer("peer")
        await self._close_peer("parked")
        if self._ws is not None:
            await self._ws.close()


class DirectPair:
    """Two clients connected to each other in this process, no relay: the baseline."""

    def __init__(self, spec: ChatLoadSpec) -> None:
        self.peers = (
            ReplayPeer(spec.clip, spec.audio, unsafe=spec.unsafe),
            ReplayPeer(spec.clip, spec.audio, unsafe=spec.unsafe),
        )
        self._window_start = time.monotonic()

    async def connect(self, rng: random.Random, timeout_s: float) -> bool:
        a, b = self.peers
        await a.accept(await b.answer(await a.offer()))
        deadline = time.monotonic() + timeout_s
        while not (a.connected() and b.connected()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not (a.connected() and b.connected()):
            return False
        for peer in self.peers:
            peer.in_call = True
            peer.start(rng)
        return True

    def drain(self, now: float) -> list[tuple[StreamWindow, float, list[float]]]:
        out = []
        for peer in self.peers:
            lags = list(peer.send_lag)
            peer.send_lag.clear()
            first = peer.first_frame_at
            media_s = 0.0 if first is None else now - max(self._window_start, first)
            out.append((peer.drain(), media_s, lags))
        self._window_start = now
        return out

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()


def chat_load_main(spec: ChatLoadSpec, ctl: Connection) -> None:
    """Entry point of one load-generator process; ``ctl`` carries reports out and ``stop`` in.

    Sends ``("connected", users with media, users, direct pairs up)`` once every user's first
    call has media (or ``connect_timeout_s`` passed), then ``("window", report)`` every
    second, and ``("done",)`` after ``stop``.
    """
    if spec.ice_address is not None:
        pin_ice_address(spec.ice_address)
    run_loop(_run(spec, ctl), spec.use_uvloop)


async def _run(spec: ChatLoadSpec, ctl: Connection) -> None:
    rng = random.Random(spec.seed)
    stop = asyncio.Event()
    listen(ctl, lambda _: stop.set())
    calls = CallStats()
    negotiations = asyncio.Semaphore(NEGOTIATIONS_AT_ONCE)
    users = [ChatUser(spec, rng, calls, negotiations) for _ in range(spec.users)]
    tasks = [asyncio.create_task(u.run()) for u in users]
    direct = [DirectPair(spec) for _ in range(spec.direct_pairs)]
    direct_up = sum(await asyncio.gather(*(d.connect(rng, spec.connect_timeout_s) for d in direct)))
    deadline = time.monotonic() + spec.connect_timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        if all(u.media_connected_once for u in users):
            break
        await asyncio.sleep(0.1)
    ctl.send(("connected", sum(u.media_connected_once for u in users), len(users), direct_up))
    last = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        now = time.monotonic()
        ctl.send(("window", _report(users, direct, calls, last, now)))
        last = now
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(u.close() for u in users), *(d.close() for d in direct))
    ctl.send(("done",))


def _report(
    users: list[ChatUser], direct: list[DirectPair], calls: CallStats, start: float, end: float
) -> dict[str, Any]:
    relayed = [u.drain(end) for u in users]
    baseline = [s for d in direct for s in d.drain(end)]
    report = {
        "start": start,
        "interval_s": end - start,
        "relayed": group_report(relayed),
        "direct": group_report(baseline),
        "send_lag_s": [x for _, _, lags in relayed + baseline for x in lags],
        "receive_errors": sum(
            p.receive_errors() for u in users for p in (u.peer, u.parked) if p is not None
        ),
        "leg_transports": dict(
            Counter(
                t
                for u in users
                for p in (u.peer, u.parked)
                if p is not None and (t := p.transport()) is not None
            )
        ),
        "calls": calls.drain(),
    }
    return report
