"""The relay benchmark's baseline: aiortc's ``MediaRelay`` and its load generator.

The naive relay decodes each client's video and re-encodes it for the partner. It is not part
of chatguard, so it runs in a process of its own here (its CPU and memory read from ``/proc``)
with load-generator processes wired to it by pipes: a client's offer goes to the relay over a
pipe, the answer comes back, the orchestrator never sees SDP. Both ends of every pair live in
one load-generator process, so a sender's per-frame send times are a plain list the receiver
reads (same clock).

Clients are plain aiortc peers: they send the clip through aiortc's pre-encoded ``pack`` path
(no encoder) and decode what they receive (aiortc's jitter buffer and decoder), reading each
frame's barcode: the relay's re-encode keeps neither picture ids nor send times. Each process
also connects one pair directly, with the same kind of clients: relayed minus direct latency
is what the relay adds.

The pipe helpers and :func:`pin_ice_address` are shared with :mod:`bench.chat_load`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from bench.media_peer import StreamWindow, group_report
from bench.procs import PipeClient, listen, pin_ice_address, run_loop
from bench.relay_clip import FPS, TICKS_PER_FRAME, Clip, EncodedFrame, luma, read_barcode


def rtc_config() -> RTCConfiguration:
    """No STUN/TURN: loopback-free host candidates only (there is no internet here)."""
    return RTCConfiguration(iceServers=[])


class LateTrack(MediaStreamTrack):
    """An outgoing track whose source (the partner's relayed track) is set when paired.

    Why: the relay answers each client before its partner exists; aiortc's sender simply
    waits in ``recv()`` until then.
    """

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.source: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        return await (await self.source).recv()


class NaiveRelay:
    """aiortc's ``MediaRelay``: each client's decoded track re-encoded for its partner."""

    def __init__(self) -> None:
        self.media_relay = MediaRelay()
        self.pcs: list[RTCPeerConnection] = []
        self.incoming: list[MediaStreamTrack] = []
        self.outgoing: list[LateTrack] = []

    async def answer(self, offer_sdp: str) -> tuple[str, int]:
        pc = RTCPeerConnection(rtc_config())
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        (transceiver,) = pc.getTransceivers()
        out = LateTrack()
        transceiver.direction = "sendrecv"
        transceiver.sender.replaceTrack(out)
        await pc.setLocalDescription(await pc.createAnswer())
        self.pcs.append(pc)
        self.incoming.append(transceiver.receiver.track)
        self.outgoing.append(out)
        return pc.localDescription.sdp, len(self.pcs) - 1

    def pair(self, a: int, b: int) -> None:
        for src, dst in ((a, b), (b, a)):
            self.outgoing[dst].source.set_result(self.media_relay.subscribe(self.incoming[src]))

    def counters(self) -> dict[str, Any]:
        return {"legs": len(self.pcs)}

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()


def relay_main(conns: list[Connection], ice_address: str) -> None:
    """Entry point of the naive relay's process; ``conns[0]`` is the orchestrator's (``stop``)."""
    pin_ice_address(ice_address)
    run_loop(_serve_relay(conns), use_uvloop=True)


async def _serve_relay(conns: list[Connection]) -> None:
    relay = NaiveRelay()
    stopped = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(conn: Connection, rid: int, kind: str, *args: Any) -> None:
        result: Any = None
        if kind == "offer":
            result = await relay.answer(args[0])
        elif kind == "pair":
            relay.pair(args[0], args[1])
        elif kind == "counters":
            result = relay.counters()
        elif kind == "stop":
            result = relay.counters()
            await relay.close()
            stopped.set()
        conn.send((rid, result))

    for conn in conns:

        def on(msg: tuple[Any, ...], conn: Connection = conn) -> None:
            task = asyncio.create_task(handle(conn, *msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        listen(conn, on)
    await stopped.wait()


# ---------------------------------------------------------------------- load generator


class ClipTrack(MediaStreamTrack):
    """Replays the clip's VP8 frames at 30 fps into aiortc's ``pack`` path (no encoder)."""

    kind = "video"

    def __init__(
        self, clip: Clip, sent_at: list[float], lag: list[float], rng: random.Random
    ) -> None:
        super().__init__()
        self.clip = clip
        self.sent_at = sent_at
        self.lag = lag
        self._frame = 0
        self._offset = rng.randrange(len(clip.frames))  # see RawPeer.start
        self._first = time.monotonic() + rng.random() / FPS

    async def recv(self) -> Any:
        """The next clip frame, at its due time (aiortc types this as a frame or packet)."""
        due = self._first + self._frame / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        now = time.monotonic()
        self.lag.append(now - due)
        index = (self._offset + self._frame) % len(self.clip.frames)
        self.sent_at[index] = now
        frame = EncodedFrame(self.clip.frames[index], self._frame * TICKS_PER_FRAME)
        self._frame += 1
        return frame


class DecodingPeer:
    """Naive-relay client: plain aiortc peer; sends the clip packed, decodes what it gets."""

    def __init__(self, clip: Clip, rng: random.Random) -> None:
        self.sent_at = [0.0] * len(clip.frames)
        self.send_lag: list[float] = []
        self.partner: DecodingPeer | None = None
        self.window = StreamWindow()
        self.pc = RTCPeerConnection(rtc_config())
        self._track = ClipTrack(clip, self.sent_at, self.send_lag, rng)
        self.pc.addTransceiver(self._track, direction="sendrecv")
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.VideoFrame)
            now = time.monotonic()
            self.window.frames += 1
            if self.partner is None:
                continue
            sent = self.partner.sent_at[read_barcode(luma(frame)) % len(self.sent_at)]
            if sent:
                self.window.latencies.append(now - sent)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def connected(self) -> bool:
        return self.pc.connectionState == "connected"

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()


@dataclass
class LoadSpec:
    """What one naive-relay load-generator process runs."""

    clip: Clip
    pairs: int
    seed: int
    ice_address: str
    connect_timeout: float = 90.0


def loadgen_main(spec: LoadSpec, relay_conn: Connection, ctl: Connection) -> None:
    """Entry point of one load-generator process; reports each second through ``ctl``."""
    pin_ice_address(spec.ice_address)
    run_loop(_loadgen(spec, relay_conn, ctl), use_uvloop=True)


async def _loadgen(spec: LoadSpec, relay_conn: Connection, ctl: Connection) -> None:
    rng = random.Random(spec.seed)
    relay = PipeClient(relay_conn)
    commands: asyncio.Queue[str] = asyncio.Queue()
    listen(ctl, commands.put_nowait)

    def make() -> DecodingPeer:
        return DecodingPeer(spec.clip, rng)

    relayed = [(make(), make()) for _ in range(spec.pairs)]
    gate = asyncio.Semaphore(8)
    await asyncio.gather(*(_connect_via_relay(a, b, relay, gate) for a, b in relayed))
    direct = (make(), make())
    await _connect_direct(*direct)
    peers = [p for pair in [*relayed, direct] for p in pair]
    deadline = time.monotonic() + spec.connect_timeout
    while not all(p.connected() for p in peers) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    ctl.send(("connected", sum(p.connected() for p in peers), len(peers)))
    await commands.get()  # start
    relayed_peers = peers[:-2]
    last = time.monotonic()
    while commands.empty():
        await asyncio.sleep(1.0)
        now = time.monotonic()
        ctl.send(("window", _drain(relayed_peers, peers[-2:], last, now)))
        last = now
    for p in peers:
        p.stop()
    for p in peers:
        await p.pc.close()
    ctl.send(("done",))


async def _connect_via_relay(
    a: DecodingPeer, b: DecodingPeer, relay: PipeClient, gate: asyncio.Semaphore
) -> None:
    async with gate:
        ids = []
        for peer in (a, b):
            answer_sdp, leg_id = await relay.call("offer", await peer.offer())
            await peer.accept(answer_sdp)
            ids.append(leg_id)
        await relay.call("pair", *ids)
    _partners(a, b)


async def _connect_direct(a: DecodingPeer, b: DecodingPeer) -> None:
    offer = await a.offer()
    await a.accept(await b.answer(offer))
    _partners(a, b)


def _partners(a: DecodingPeer, b: DecodingPeer) -> None:
    a.partner = b
    b.partner = a


def _drain(
    relayed: list[DecodingPeer], direct: list[DecodingPeer], start: float, end: float
) -> dict[str, Any]:
    """One report in :func:`bench.chat_load.group_report`'s shape, then reset.

    The whole interval counts as call time (these pairs never change), and aiortc's own
    sender and receiver hide packet counts: those are reported as 0.
    """
    report: dict[str, Any] = {"start": start, "interval_s": end - start}
    for name, group in (("relayed", relayed), ("direct", direct)):
        report[name] = group_report([(p.window, end - start, []) for p in group])
        for p in group:
            p.window = StreamWindow()
    report["send_lag_s"] = [x for p in [*relayed, *direct] for x in p.send_lag]
    report["receive_errors"] = 0
    for p in [*relayed, *direct]:
        p.send_lag.clear()
    return report
