"""The relay benchmark's processes: the relay under test, and the load generator.

Why separate processes: the relay's CPU and memory are read from ``/proc`` for its process
alone, and the load generator must not share its event loop. Both ends of every pair live in
one load-generator process, so a sender's per-frame send times are a plain list the receiver
reads (same clock, no clock sync).

Two relays, chosen by ``mode``:

* ``forward``: the real relay (``ForwardingHub`` + ``AiortcLeg``, fast receive path, periodic
  RRs), by default on uvloop. Its clients are aiortc peer connections hooked with
  ``AiortcLeg`` too, so they send the clip's pre-built RTP and never decode: a receiver knows
  a frame is complete from contiguous sequence numbers up to the marker, and which frame it
  was from the VP8 picture id (the relay rewrites seq/ts/SSRC, not payloads).
* ``naive``: aiortc's ``MediaRelay`` (decode, then re-encode for the partner). Its clients are
  plain aiortc peers: they send the clip through aiortc's pre-encoded ``pack`` path and decode
  what they receive (aiortc's jitter buffer and decoder), reading each frame's barcode.

Each load-generator process also connects one pair directly, client to client, with the same
kind of clients: relayed minus direct latency is what the relay adds.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from bench.relay_clip import (
    FPS,
    TICKS_PER_FRAME,
    Clip,
    EncodedFrame,
    luma,
    read_barcode,
    vp8_picture_id,
)
from relay import rtp
from relay.aiortc_adapter import AiortcLeg, ParkedTrack
from relay.hub import ForwardingHub

Mode = Literal["forward", "naive"]
_HEADER = struct.Struct("!BBHII")


def rtc_config() -> RTCConfiguration:
    """No STUN/TURN: loopback-free host candidates only (there is no internet here)."""
    return RTCConfiguration(iceServers=[])


def pin_ice_address(address: str) -> None:
    """Make aioice gather host candidates on ``address`` only, in this process.

    Why: aioice offers every address of every interface. On a shared machine other work
    creates and deletes interfaces (network namespaces, veth pairs) during a run, and a pair
    nominated on one of them goes silent when it disappears; seen here as streams that
    connected and then never delivered a frame. Both ends live on this machine, so one
    stable address (loopback by default) is what a benchmark wants.
    """
    import aioice.ice

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [address]

    setattr(aioice.ice, "get_host_addresses", host_addresses)  # noqa: B010


def run_loop(main: Coroutine[Any, Any, None], use_uvloop: bool) -> None:
    """Run ``main`` on uvloop or asyncio's default loop."""
    if use_uvloop:
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


# ---------------------------------------------------------------------- pipe messaging


def _read_pipe(
    conn: Connection, loop: asyncio.AbstractEventLoop, on: Callable[[Any], None]
) -> None:
    """Daemon thread: hand each message to the loop; stop when the other end closes.

    A thread rather than ``run_in_executor``: a blocked executor thread would keep
    ``asyncio.run`` from returning at shutdown.
    """
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            loop.call_soon_threadsafe(on, msg)
        except RuntimeError:  # loop closed
            return


def listen(conn: Connection, on: Callable[[Any], None]) -> None:
    """Start delivering ``conn``'s messages to ``on`` on the running loop."""
    loop = asyncio.get_running_loop()
    threading.Thread(target=_read_pipe, args=(conn, loop, on), daemon=True).start()


class PipeClient:
    """Request/response over a pipe: ``await call(kind, *args)``; requests may overlap."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        listen(conn, self._resolve)

    def _resolve(self, msg: tuple[int, Any]) -> None:
        fut = self._waiting.pop(msg[0], None)
        if fut is not None and not fut.done():
            fut.set_result(msg[1])

    async def call(self, *msg: Any) -> Any:
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self._conn.send((rid, *msg))
        return await fut


def call_sync(conn: Connection, *msg: Any, timeout: float = 60.0) -> Any:
    """Blocking request/response for the orchestrating process (one request at a time)."""
    conn.send((0, *msg))
    if not conn.poll(timeout):
        raise TimeoutError(f"no answer to {msg[0]!r} within {timeout} s")
    return conn.recv()[1]


# ---------------------------------------------------------------------- relay under test


class ForwardRelay:
    """The relay under test: ForwardingHub + AiortcLeg, as a relay worker runs them."""

    def __init__(self, fast_receive: bool) -> None:
        self.hub = ForwardingHub()
        self.legs: list[AiortcLeg] = []
        self.fast_receive = fast_receive
        self._reports: asyncio.Task[None] | None = None

    async def answer(self, offer_sdp: str) -> tuple[str, int]:
        if self._reports is None:
            self._reports = asyncio.create_task(self.hub.run_reports())
        pc = RTCPeerConnection(rtc_config())
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        AiortcLeg.prepare_transceivers(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        leg = AiortcLeg(pc, self.hub.on_rtp, self.hub.on_rtcp, fast_receive=self.fast_receive)
        self.hub.add_leg(leg)
        self.legs.append(leg)
        return pc.localDescription.sdp, len(self.legs) - 1

    def pair(self, a: int, b: int) -> None:
        self.hub.pair(self.legs[a], self.legs[b])

    def counters(self) -> dict[str, Any]:
        return {
            "legs": len(self.legs),
            "forwarded": sum(self.hub.forwarder(leg, "video").forwarded for leg in self.legs),
            "dropped": dict(self.hub.dropped),
            "forwarder_dropped": dict(
                sum((self.hub.forwarder(leg, "video").dropped for leg in self.legs), Counter())
            ),
            "pli_sent": self.hub.pli_sent,
            "fast_path_legs": sum(leg.fast_path_active for leg in self.legs),
            "srtp_errors": sum(leg.srtp_errors for leg in self.legs),
        }

    async def close(self) -> None:
        if self._reports is not None:
            self._reports.cancel()
        for leg in self.legs:
            await leg.pc.close()


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


def relay_main(
    mode: Mode,
    conns: list[Connection],
    use_uvloop: bool,
    fast_receive: bool,
    profile_path: str | None,
    ice_address: str,
) -> None:
    """Entry point of the relay process; ``conns[0]`` is the orchestrator's (``stop``)."""
    pin_ice_address(ice_address)
    if profile_path is None:
        run_loop(_serve_relay(mode, conns, fast_receive), use_uvloop)
        return
    import cProfile

    # CPU time, not wall time: otherwise the loop's idle wait in epoll is the top "function".
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    try:
        run_loop(_serve_relay(mode, conns, fast_receive), use_uvloop)
    finally:
        prof.disable()
        prof.dump_stats(profile_path)


async def _serve_relay(mode: Mode, conns: list[Connection], fast_receive: bool) -> None:
    relay: ForwardRelay | NaiveRelay = (
        ForwardRelay(fast_receive) if mode == "forward" else (NaiveRelay())
    )
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


@dataclass
class FrameTracker:
    """Completed frames of one received RTP stream, from sequence numbers alone.

    A frame counts as delivered when every packet from the previous frame's marker to its
    own marker arrived (no gap in the sequence numbers). The first frame seen is not counted:
    its start may have been missed.
    """

    frames: int = 0
    incomplete: int = 0
    _expected: int | None = None
    _intact: bool = False
    _started: bool = False

    def on_packet(self, seq: int, marker: bool) -> bool:
        """Account one packet; True if it completed a frame."""
        if self._expected is not None and seq != self._expected:
            self._intact = False
        self._expected = (seq + 1) & 0xFFFF
        if not marker:
            return False
        complete = self._started and self._intact
        self._started = self._intact = True
        if complete:
            self.frames += 1
        else:
            self.incomplete += 1
        return complete


@dataclass
class StreamWindow:
    """What one receiving end saw since the last report."""

    frames: int = 0
    packets: int = 0
    """RTP packets received (forward/direct clients only; aiortc's receiver hides them)."""
    sent: int = 0
    """RTP packets this end sent (forward/direct clients only: aiortc's sender hides them)."""
    latencies: list[float] = field(default_factory=list)


class RawPeer:
    """Forwarding-relay client: sends the clip's pre-built RTP, tracks frames, never decodes."""

    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.pc = RTCPeerConnection(rtc_config())
        self.pc.addTransceiver(ParkedTrack("video"), direction="sendrecv")
        self.leg: AiortcLeg | None = None
        self.partner: RawPeer | None = None
        self.sent_at = [0.0] * len(clip.frames)
        self.window = StreamWindow()
        self.tracker = FrameTracker()
        self.send_lag: list[float] = []
        self._timer: asyncio.TimerHandle | None = None

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        self.leg = AiortcLeg(self.pc, self._on_rtp, _ignore)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        AiortcLeg.prepare_transceivers(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.leg = AiortcLeg(self.pc, self._on_rtp, _ignore)
        return str(self.pc.localDescription.sdp)

    def connected(self) -> bool:
        """True once DTLS is up (the leg installs its fast receive path then)."""
        return self.leg is not None and self.leg.fast_path_active

    def receive_errors(self) -> int:
        """Packets that failed SRTP unprotect here (a relay bug or a broken session)."""
        return self.leg.srtp_errors if self.leg is not None else 0

    def _on_rtp(self, leg: AiortcLeg, data: bytes, now: float) -> None:
        self.window.packets += 1
        marker = data[1] & 0x80 != 0
        if not self.tracker.on_packet(rtp.sequence_number(data), marker):
            return
        self.window.frames += 1
        latency = frame_latency(data, self.partner.sent_at if self.partner else None, now)
        if latency is not None:
            self.window.latencies.append(latency)

    def start(self, rng: random.Random) -> None:
        """Send at 30 fps from a random phase and clip position, as independent clients would.

        Why the random position: keyframes (the clip's biggest bursts) of clients that joined
        together would otherwise hit the relay in the same frame interval, every time.
        """
        assert self.leg is not None
        media = self.leg.media["video"]
        pt = next(c.payloadType for c in media.codecs if c.mimeType.lower() == "video/vp8")
        assert pt is not None
        loop = asyncio.get_running_loop()
        first = time.monotonic() + rng.random() / FPS
        offset = rng.randrange(len(self.clip.payloads))
        state = _SendState(pt, media.out_ssrc, rng.randrange(1 << 16), rng.randrange(1 << 32))

        def tick(frame: int) -> None:
            due = first + frame / FPS
            now = time.monotonic()
            self.send_lag.append(now - due)
            self._send_frame(offset + frame, state, now)
            delay = first + (frame + 1) / FPS - time.monotonic()
            self._timer = loop.call_at(loop.time() + max(0.0, delay), tick, frame + 1)

        self._timer = loop.call_at(loop.time() + (first - time.monotonic()), tick, 0)

    def _send_frame(self, frame: int, state: _SendState, now: float) -> None:
        assert self.leg is not None
        index = frame % len(self.clip.payloads)
        payloads = self.clip.payloads[index]
        ts = (state.ts0 + frame * TICKS_PER_FRAME) & 0xFFFFFFFF
        self.sent_at[index] = now
        self.window.sent += len(payloads)
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            marker_pt = state.pt | (0x80 if i == last else 0)
            header = _HEADER.pack(0x80, marker_pt, state.seq & 0xFFFF, ts, state.ssrc)
            self.leg.send(header + payload)
            state.seq += 1

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


@dataclass
class _SendState:
    pt: int
    ssrc: int
    seq: int
    ts0: int


def _ignore(leg: AiortcLeg, data: bytes, now: float) -> None:
    """RTCP at the load generator's clients is not measured."""


def frame_latency(data: bytes, sent_at: list[float] | None, arrival: float) -> float | None:
    """Arrival of a frame's last packet minus its send time, looked up by VP8 picture id.

    ``sent_at[i]`` is when the sender last started sending clip frame ``i``; None if the
    packet has no picture id or that frame was never sent.
    """
    if sent_at is None:
        return None
    offset = rtp.check_rtp(data)
    if not isinstance(offset, int):
        return None
    pid = vp8_picture_id(data, offset)
    if pid is None or pid >= len(sent_at) or sent_at[pid] == 0.0:
        return None
    return arrival - sent_at[pid]


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

    def receive_errors(self) -> int:
        """Not visible through aiortc's own receive path."""
        return 0

    def start(self, rng: random.Random) -> None:
        """Nothing to do: aiortc's sender pulls from :class:`ClipTrack` once connected."""

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()


Peer = RawPeer | DecodingPeer


@dataclass
class LoadSpec:
    """What one load-generator process runs."""

    mode: Mode
    clip: Clip
    pairs: int
    use_uvloop: bool
    seed: int
    ice_address: str
    connect_timeout: float = 90.0


def loadgen_main(spec: LoadSpec, relay_conn: Connection, ctl: Connection) -> None:
    """Entry point of one load-generator process; reports each second through ``ctl``."""
    pin_ice_address(spec.ice_address)
    run_loop(_loadgen(spec, relay_conn, ctl), spec.use_uvloop)


async def _loadgen(spec: LoadSpec, relay_conn: Connection, ctl: Connection) -> None:
    rng = random.Random(spec.seed)
    relay = PipeClient(relay_conn)
    commands: asyncio.Queue[str] = asyncio.Queue()
    listen(ctl, commands.put_nowait)

    def make() -> Peer:
        return RawPeer(spec.clip) if spec.mode == "forward" else DecodingPeer(spec.clip, rng)

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
    for p in peers:
        p.start(rng)
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


async def _connect_via_relay(a: Peer, b: Peer, relay: PipeClient, gate: asyncio.Semaphore) -> None:
    async with gate:
        ids = []
        for peer in (a, b):
            answer_sdp, leg_id = await relay.call("offer", await peer.offer())
            await peer.accept(answer_sdp)
            ids.append(leg_id)
        await relay.call("pair", *ids)
    _partners(a, b)


async def _connect_direct(a: Peer, b: Peer) -> None:
    offer = await a.offer()
    await a.accept(await b.answer(offer))
    _partners(a, b)


def _partners(a: Peer, b: Peer) -> None:
    a.partner = b
    b.partner = a


def _drain(relayed: list[Peer], direct: list[Peer], start: float, end: float) -> dict[str, Any]:
    """One report: per receiving stream frames and latencies since the last one, then reset."""
    report: dict[str, Any] = {"start": start, "interval_s": end - start}
    for name, group in (("relayed", relayed), ("direct", direct)):
        report[name] = {
            "frames": [p.window.frames for p in group],
            "packets": sum(p.window.packets for p in group),
            "sent": sum(p.window.sent for p in group),
            "latency_s": [x for p in group for x in p.window.latencies],
        }
        for p in group:
            p.window = StreamWindow()
    report["send_lag_s"] = [x for p in [*relayed, *direct] for x in p.send_lag]
    report["receive_errors"] = sum(p.receive_errors() for p in [*relayed, *direct])
    for p in [*relayed, *direct]:
        p.send_lag.clear()
    return report
