"""The strict workload's load in this process: N senders replaying the clip into one worker's
moderation, and the sinks that see what the gate releases.

Why it is built this way:

* Each stream starts at a random clip position and a random sub-frame phase, as independent
  clients do: streams replaying the clip in step would bunch their keyframes, cuts and
  classifications and overstate queueing.
* The load is a thread (pinned to its own core with ``--pin``) building RTP packets and handing
  them to the event loop; its own CPU time is subtracted from the worker's.
* The first ``warmup_s`` seconds are not measured (streams wait for a keyframe first).
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import av
import numpy as np
from aiortc.rtp import RtpPacket

from bench.media_peer import next_keyframe
from bench.relay_clip import FPS, HEIGHT, TICKS_PER_FRAME, WIDTH, Clip, vp8_picture_id
from bench.results import StrictRun
from bench.stats import Percentiles, summarize_ms
from bench.strict_clip import CUTS, POLICY, UNSAFE
from fastpath.preprocess import letterboxer
from fastpath.scene import luma_signature
from models.batching import AsyncBatcher
from models.inference import Runner
from models.letterbox import Letterbox
from relay.strict.depacketize import Depacketizer
from relay.strict.gate import GateConfig
from relay.strict.moderation import (
    SIGNATURE_GRID,
    TICK_S,
    ModeratedStream,
    Moderator,
    yuv_plane,
)

RTP_HEADER: Final = 12
"""The generator's packets carry no CSRCs and no extensions."""


def stream_phases(n: int, clip_frames: int, rng: random.Random) -> list[tuple[float, int]]:
    """Per stream: (start delay in [0, one frame interval), starting clip index)."""
    return [(rng.random() / FPS, rng.randrange(clip_frames)) for _ in range(n)]


def frame_index(packet: bytes) -> int:
    """The clip index of a released frame, read from its first packet's VP8 picture id."""
    pid = vp8_picture_id(packet, RTP_HEADER)
    if pid is None:
        raise ValueError("packet without a VP8 picture id")
    return pid


def count_leaks(released: Iterable[int], unsafe: frozenset[int]) -> int:
    """Released frames (clip indexes) that belong to an unsafe segment."""
    return sum(i in unsafe for i in released)


def latencies(arrived: Mapping[int, float], released: Iterable[tuple[int, float]]) -> list[float]:
    """Seconds from each released frame's arrival to its release, keyed by RTP timestamp.

    A release of a frame that never arrived is a bench bug, not a latency: KeyError.
    """
    return [t - arrived[ts] for ts, t in released]


class Packetizer:
    """Replays the clip from ``offset`` with continuous seq/ts, as a live sender would, and
    answers a keyframe request by moving on to the clip's next keyframe
    (:func:`bench.media_peer.next_keyframe`: never back in time).

    Why answer: after a block the gate resumes only at a keyframe; a sender that never answers
    would make the delivered frame rate depend on the clip's keyframe interval. Why jump rather
    than encode a keyframe: the clip's delta frames after it would reference pictures the
    receiver's decoder never saw, and the drift would look like scene changes.
    """

    def __init__(self, clip: Clip, ssrc: int, offset: int) -> None:
        self.clip, self.ssrc, self.seq, self.n, self.offset = clip, ssrc, ssrc & 0xFFFF, 0, offset
        self.keyframe_wanted = False
        """Set from the event loop, read by the generator thread (a bool: no lock needed)."""

    def next_frame(self) -> tuple[int, int, list[bytes]]:
        """(clip index, RTP timestamp, packets) of the next frame."""
        frames = len(self.clip.payloads)
        index = (self.offset + self.n) % frames
        if self.keyframe_wanted:
            self.keyframe_wanted = False
            jump = next_keyframe(index, self.clip.keyframe_interval, frames)
            self.offset += jump - index
            index = jump
        payloads = self.clip.payloads[index]
        ts = (self.n * TICKS_PER_FRAME) & 0xFFFFFFFF
        pkts = []
        for j, p in enumerate(payloads):
            pkt = RtpPacket(
                payload_type=96,
                marker=int(j == len(payloads) - 1),
                sequence_number=self.seq & 0xFFFF,
                timestamp=ts,
                ssrc=self.ssrc,
                payload=p,
            )
            pkts.append(pkt.serialize())
            self.seq += 1
        self.n += 1
        return index, ts, pkts


@dataclass
class Sink:
    """One stream's receiving end: what the gate released, when, and what was sent."""

    arrived: dict[int, float] = field(default_factory=dict)
    """RTP timestamp -> when its last packet reached the relay."""
    sent_index: list[int] = field(default_factory=list)
    """Clip index of every frame sent in the measured window."""
    released: list[tuple[int, float]] = field(default_factory=list)
    """(RTP timestamp, release time) of every frame released in the measured window."""
    released_index: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    sender: Packetizer | None = None

    def release(self, packets: Sequence[bytes], restart: bool, now: float, held_s: float) -> None:
        ts = int.from_bytes(packets[0][4:8], "big")
        if ts in self.arrived:  # sent in the measured window
            self.released.append((ts, now))
            self.released_index.append(frame_index(packets[0]))

    def request_keyframe(self, media_ssrc: int, now: float) -> None:
        """The sender answers with its next frame (~33 ms later: a LAN round trip)."""
        if self.sender is not None:
            self.sender.keyframe_wanted = True

    def moderation_event(self, state: str, label: str, score: float) -> None:
        self.events.append(state)


def per_frame_costs(clip: Clip, runner: Runner) -> dict[str, Percentiles]:
    """Each step of the strict route timed alone on the clip's frames."""
    pk = Packetizer(clip, 1, 0)
    d = Depacketizer("vp8")
    ctx = av.CodecContext.create("vp8", "r")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.thread_count = 1
    lb = letterboxer(WIDTH, HEIGHT, runner.input_size)
    box = Letterbox.for_frame(WIDTH, HEIGHT, runner.input_size)
    tensor = np.empty((3, runner.input_size, runner.input_size), np.float32)
    sig = np.empty(SIGNATURE_GRID, np.float32)
    times: dict[str, list[float]] = {k: [] for k in ("depacketize", "decode", "signature")}
    times.update(letterbox=[], inference=[])
    for i in range(len(clip.payloads)):
        _, _, pkts = pk.next_frame()
        t0 = time.perf_counter()
        frames = [f for p in pkts for f in d.push(p)]
        t1 = time.perf_counter()
        (pic,) = ctx.decode(av.Packet(frames[0].data))
        t2 = time.perf_counter()
        luma_signature(yuv_plane(pic, 0), sig)
        t3 = time.perf_counter()
        times["depacketize"].append(t1 - t0)
        times["decode"].append(t2 - t1)
        times["signature"].append(t3 - t2)
        if i % 4 == 0:
            lb.run(yuv_plane(pic, 0), yuv_plane(pic, 1), yuv_plane(pic, 2), tensor)
            t4 = time.perf_counter()
            runner.infer_one(tensor, box)
            times["letterbox"].append(t4 - t3)
            times["inference"].append(time.perf_counter() - t4)
    return {k: summarize_ms(v) for k, v in times.items()}


@dataclass
class Generator:
    """The load: a thread (pinned to its own core if asked) that builds each stream's packets
    at 30 fps from its phase and hands them to the event loop."""

    loop: asyncio.AbstractEventLoop
    streams: list[ModeratedStream]
    sinks: list[Sink]
    packetizers: list[Packetizer]
    delays: list[float]
    warmup_s: float
    seconds: float
    cpu: int | None
    lag: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    """The generator thread's own CPU time in the measured window."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    measure_from: float = 0.0

    def _feed(self, k: int, ts: int, index: int, pkts: list[bytes], due: float) -> None:
        now = time.monotonic()
        for p in pkts:
            self.streams[k].on_packet(p, now)
        if due >= self.measure_from:
            self.sinks[k].arrived[ts] = now
            self.sinks[k].sent_index.append(index)
            self.lag.append(now - due)

    def run(self) -> None:
        if self.cpu is not None:
            os.sched_setaffinity(threading.get_native_id(), {self.cpu})
        t0 = time.monotonic()
        self.measure_from = t0 + self.warmup_s
        end = self.measure_from + self.seconds
        queue = [(t0 + d, k) for k, d in enumerate(self.delays)]
        heapq.heapify(queue)
        cpu0: float | None = None
        while queue[0][0] < end:
            due, k = heapq.heappop(queue)
            if cpu0 is None and due >= self.measure_from:
                cpu0 = time.thread_time()
            time.sleep(max(0.0, due - time.monotonic()))
            index, ts, pkts = self.packetizers[k].next_frame()
            self.loop.call_soon_threadsafe(self._feed, k, ts, index, pkts, due)
            heapq.heappush(queue, (due + 1 / FPS, k))
        self.cpu_s = time.thread_time() - (cpu0 or time.thread_time())
        self.loop.call_soon_threadsafe(self.done.set)


def _diff(after: Counter[str], before: Counter[str]) -> Counter[str]:
    return Counter({k: v - before[k] for k, v in after.items()})


async def run_streams(
    clip: Clip,
    runner: Runner,
    n: int,
    seconds: float,
    warmup_s: float,
    rng: random.Random,
    load_cpu: int | None = None,
) -> StrictRun:
    """N moderated streams in this process (one worker) for ``warmup_s + seconds``."""
    config = GateConfig()
    moderator = Moderator(AsyncBatcher(runner), gate_config=config)
    sinks = [Sink() for _ in range(n)]
    streams = [moderator.open_stream({96: "vp8"}, POLICY, s) for s in sinks]
    phases = stream_phases(n, len(clip.payloads), rng)
    senders = [Packetizer(clip, 1000 + k, offset) for k, (_, offset) in enumerate(phases)]
    for sink, sender in zip(sinks, senders, strict=True):
        sink.sender = sender
    gen = Generator(
        asyncio.get_running_loop(),
        streams,
        sinks,
        senders,
        [delay for delay, _ in phases],
        warmup_s,
        seconds,
        load_cpu,
    )
    thread = threading.Thread(target=gen.run, name="strict-bench-load", daemon=True)
    thread.start()
    await asyncio.sleep(warmup_s)
    before = [
        (s.stats.classified, s.stats.released, Counter(s.stats.dropped), Counter(s.stats.requested))
        for s in streams
    ]
    for s in streams:  # the measured window's waits only (the last 2,048 frames of each stream)
        s.stats.hold_s.clear()
        s.stats.settle_hold_s.clear()
    cpu0, t0 = time.process_time(), time.monotonic()
    await gen.done.wait()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0 - gen.cpu_s
    # every frame still held is decided before counting: a cut's frames wait settle_s, and
    # the hold budget drops what can no longer settle (0.6 s, as before the settling rule,
    # left the frames of a cut in the window's last second undecided: the slowest stream of
    # 7 or 8 then "decided" 25.5-26.5 fps with the worker's core not saturated)
    await asyncio.sleep(config.settle_s + config.max_hold_s + 2 * TICK_S)
    thread.join()
    classified = sum(s.stats.classified - b[0] for s, b in zip(streams, before, strict=True))
    requested: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    decided_each = []
    for s, b in zip(streams, before, strict=True):
        requested += _diff(s.stats.requested, b[3])
        stream_dropped = _diff(s.stats.dropped, b[2])
        dropped += stream_dropped
        decided_each.append(s.stats.released - b[1] + sum(stream_dropped.values()))
    decided = sum(decided_each)
    lat = [x for s in sinks for x in latencies(s.arrived, s.released)]
    sent = [i for s in sinks for i in s.sent_index]
    safe_sent = sum(i not in UNSAFE for i in sent)
    cuts = sum(i in CUTS for i in sent)
    per_stream = 1 / n / wall
    cpu_per_stream = cpu / wall / n
    result = StrictRun(
        streams=n,
        seconds=round(wall, 2),
        engine=f"{runner.engine} {runner.precision}",
        relay_cpu_cores=round(cpu / wall, 3),
        load_cpu_cores=round(gen.cpu_s / wall, 3),
        cpu_per_stream_pct=round(100 * cpu_per_stream, 1),
        streams_per_core_estimate=round(1 / cpu_per_stream, 1) if cpu_per_stream > 0 else None,
        sent_fps_per_stream=round(len(sent) * per_stream, 1),
        decided_fps_per_stream=round(decided * per_stream, 1),
        decided_fps_by_stream=[round(d / wall, 1) for d in decided_each],
        released_fps_per_stream=round(sum(len(s.released) for s in sinks) * per_stream, 1),
        safe_fps_per_stream=round(safe_sent * per_stream, 1),
        classifications_per_s_per_stream=round(classified * per_stream, 2),
        requests_per_s_per_stream={
            k: round(v * per_stream, 2) for k, v in sorted(requested.items())
        },
        scene_cuts=cuts,
        scene_classifications=requested["scene"],
        no_verdict=sum(s.stats.no_verdict for s in streams),
        gate_latency=summarize_ms(lat),
        verdict_wait=summarize_ms([h for s in streams for h in s.stats.hold_s]),
        settle_wait=summarize_ms([h for s in streams for h in s.stats.settle_hold_s]),
        classify_roundtrip=summarize_ms([c for s in streams for c in s.stats.classify_s]),
        loop_lag=summarize_ms(gen.lag),
        leaked_unsafe_frames=sum(count_leaks(s.released_index, UNSAFE) for s in sinks),
        blocked_events=sum(s.events.count("blocked") for s in sinks),
        dropped=dict(dropped),
    )
    await moderator.aclose()
    return result
