"""Strict route: what inline moderation of 640x480@30 VP8 costs per stream and per frame.

Run: ``python -m bench.strict_bench [--pairs 1,4,8] [--duration 6] [--pin 1,0] [--json FILE]``
(the same options as ``chatguard bench strict``; ``--pairs`` counts moderated streams, and
``--streams``/``--seconds`` are the same options under their older names). ``--search`` finds
the most streams one worker moderates at full rate within the strict route's latency target,
with no leak (:class:`StrictLevels`); ``--plot FILE`` draws the figures against streams.

Why it is built this way:

* The clip (:func:`bench.relay_clip.encode_clip`, drawn by :func:`draw`) cuts between
  photographs from ``skimage.data`` every ~2 s with a slow pan, hand-shake jitter and sensor
  noise, so the gate's scene-change path runs at a realistic rate. One segment shows
  ``astronaut``, unsafe under the test policy (FACE_FEMALE only); it starts in delta frames.
  The VP8 picture id of every packet is the frame's index in the clip, so the frames the gate
  releases are identified from the released packets themselves, and a leak (a frame of an
  unsafe segment released) is counted exactly.
* Each stream starts at a random clip position and a random sub-frame phase, as independent
  clients do (see ``bench.relay_procs``): streams replaying the clip in step would bunch their
  keyframes, cuts and classifications and overstate queueing.
* ``--pin RELAY,LOAD`` puts the relay (event loop, decode thread, inference thread: one worker)
  on core RELAY and the load generator (a thread building RTP packets) on core LOAD, so "per
  core" means one core; the generator's own CPU time is subtracted from the relay's.
* The first ``--warmup`` seconds are not measured (streams wait for a keyframe first).

Reported per N streams: released fps per stream (and the safe fps that could have been
released), decided fps (released + dropped: 30 = keeping up), classifications per second per
stream by reason, scene cuts seen vs classified for a new scene, gate latency (a frame's last
packet in -> released, seen by the sink), unsafe frames leaked (must be 0), relay CPU per stream
and the streams per core it projects. Per-frame costs, and the fast path against numpy and
OpenCV (``bench.fastpath_bench``), go into the same JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import platform
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Final

import av
import cv2
import numpy as np
import skimage.data
from aiortc.rtp import RtpPacket
from numpy.typing import NDArray

from bench import fastpath_bench, provenance, relay_bench
from bench.capacity import LevelOption, Load, ServiceLevels
from bench.media_peer import nearest_keyframe
from bench.plot import plot_strict_cases
from bench.relay_clip import FPS, HEIGHT, TICKS_PER_FRAME, WIDTH, Clip, encode_clip, vp8_picture_id
from bench.search_cli import (
    LEVELS_DEST,
    SearchStep,
    add_search_options,
    check_search_args,
    comma_ints,
    describe_search,
    levels_from_args,
    run_search,
    saturated,
)
from bench.stats import summarize_ms
from fastpath.preprocess import letterboxer
from fastpath.scene import luma_signature, signature_distance
from models.batching import AsyncBatcher
from models.inference import ModelRunner
from models.letterbox import Letterbox
from relay.strict.block_policy import ModerationPolicy
from relay.strict.depacketize import Depacketizer
from relay.strict.gate import GateConfig
from relay.strict.moderation import SIGNATURE_GRID, ModeratedStream, Moderator, yuv_plane

POLICY: Final = ModerationPolicy(thresholds={"FACE_FEMALE": 0.5})
UNSAFE_PHOTOS: Final = frozenset({"astronaut"})
SEGMENTS: Final = (
    ("rocket", 55),
    ("coffee", 55),
    ("astronaut", 30),
    ("chelsea", 50),
    ("camera", 50),
)
"""(photograph, frames): 8 s looped, a cut every 1-1.8 s. The unsafe segment [110, 140) starts
in delta frames; the clip's keyframes (every 2 s: 0, 60, 120, 180) include one inside it."""
KEYFRAME_S: Final = 2.0
PAN_PX_PER_S: Final = 15
"""How fast the camera drifts within a segment: a slow pan, not a sweep (a sweep of the
textured photographs changes the scene signature within a second, which is a scene change)."""
RTP_HEADER: Final = 12
"""The generator's packets carry no CSRCs and no extensions."""
TARGET_GATE_P99_MS: Final = 50.0
"""The strict route's target: a held frame is decided within 50 ms (p99)."""


@dataclass(frozen=True)
class StrictLevels:
    """What "holds" means on the strict route: every stream keeps up (decided = released +
    dropped, at full rate: nothing piles up behind the gate), gate latency p99 under the target,
    and no unsafe frame released. A leak is not an option: it fails any load, always."""

    min_fps: float = 29.0
    max_gate_p99_ms: float = TARGET_GATE_P99_MS

    OPTIONS: ClassVar[tuple[LevelOption, ...]] = (
        LevelOption(
            "min-fps", "min_fps", "decided frames per second of every stream, released + dropped"
        ),
        LevelOption(
            "max-gate-p99-ms",
            "max_gate_p99_ms",
            "gate latency p99 in ms, a frame's last packet in -> released (the strict target)",
        ),
    )
    LOAD: ClassVar[Load] = Load("streams", None, 64)

    def words(self) -> str:
        return (
            f"every stream decided at >= {self.min_fps:g} fps, gate latency p99 < "
            f"{self.max_gate_p99_ms:g} ms and no unsafe frame leaked"
        )

    def failures(self, run: Mapping[str, Any]) -> list[str]:
        """Which levels one measured load (a result of :func:`run_streams`) misses, in words."""
        misses = []
        slowest = min(run["decided_fps_by_stream"], default=0.0)
        if not slowest >= self.min_fps:
            misses.append(f"slowest stream decided {slowest:.1f} fps < {self.min_fps:g} fps")
        p99 = run["gate_latency"]["p99_ms"]
        if not p99 < self.max_gate_p99_ms:  # NaN (nothing released) fails too
            misses.append(f"gate latency p99 {p99:.1f} ms >= {self.max_gate_p99_ms:g} ms")
        if run["leaked_unsafe_frames"]:
            misses.append(f"{run['leaked_unsafe_frames']} unsafe frames leaked")
        return misses


def segment_starts() -> list[int]:
    """Clip index of each segment's first frame."""
    starts, i = [], 0
    for _, frames in SEGMENTS:
        starts.append(i)
        i += frames
    return starts


CLIP_FRAMES: Final = sum(f for _, f in SEGMENTS)
CUTS: Final = frozenset(segment_starts())
UNSAFE: Final = frozenset(
    i
    for start, (name, frames) in zip(segment_starts(), SEGMENTS, strict=True)
    if name in UNSAFE_PHOTOS
    for i in range(start, start + frames)
)
"""Clip indexes of the frames the policy must never let through."""


@cache
def photo(name: str) -> NDArray[np.uint8]:
    """The photograph as RGB, wide enough to pan across a whole segment."""
    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    longest = max(f for _, f in SEGMENTS)
    return np.ascontiguousarray(
        cv2.resize(
            img[..., :3],
            (WIDTH + PAN_PX_PER_S * longest // FPS + 8, HEIGHT + 8),
            interpolation=cv2.INTER_AREA,
        )
    )


def draw(index: int) -> NDArray[np.uint8]:
    """Clip frame ``index``: its segment's photograph, panned, shaken and noisy like a webcam."""
    starts = segment_starts()
    seg = max(k for k, s in enumerate(starts) if s <= index % CLIP_FRAMES)
    t = index % CLIP_FRAMES - starts[seg]
    rng = np.random.default_rng(index)
    dx, dy = rng.integers(0, 5, 2)
    x = PAN_PX_PER_S * t // FPS + int(dx)
    img = photo(SEGMENTS[seg][0])[int(dy) : int(dy) + HEIGHT, x : x + WIDTH]
    noise = rng.normal(0.0, 2.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def strict_clip() -> Clip:
    """The clip every sender replays (encoded once, about 1 s)."""
    return encode_clip(seconds=CLIP_FRAMES / FPS, keyframe_s=KEYFRAME_S, draw=draw)


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
    answers a keyframe request by moving to the clip's nearest keyframe (at most one keyframe
    interval's half away: the same scene, barring a cut).

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
            jump = nearest_keyframe(index, self.clip.keyframe_interval, frames)
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

    def release(self, packets: Sequence[bytes], restart: bool, now: float) -> None:
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


def per_frame_costs(clip: Clip, runner: ModelRunner) -> dict[str, Any]:
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


def cut_distances() -> list[float]:
    """Signature distance across each cut: must exceed the gate's scene threshold, or the new
    scene would be covered by the old one's verdict and the cut would test nothing."""
    sig = [np.empty(SIGNATURE_GRID, np.float32) for _ in range(2)]
    out = []
    for s in segment_starts():
        for k, i in enumerate((s - 1, s)):
            y = np.asarray(cv2.cvtColor(draw(i % CLIP_FRAMES), cv2.COLOR_RGB2GRAY), np.uint8)
            luma_signature(y, sig[k])
        out.append(round(float(signature_distance(sig[0], sig[1])), 1))
    return out


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
    runner: ModelRunner,
    n: int,
    seconds: float,
    warmup_s: float,
    rng: random.Random,
    load_cpu: int | None = None,
) -> dict[str, Any]:
    """N moderated streams in this process (one worker) for ``warmup_s + seconds``."""
    moderator = Moderator(AsyncBatcher(runner), gate_config=GateConfig())
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
    cpu0, t0 = time.process_time(), time.monotonic()
    await gen.done.wait()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0 - gen.cpu_s
    await asyncio.sleep(0.6)  # verdicts still in flight for the last frames sent
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
    result = {
        "streams": n,
        "seconds": round(wall, 2),
        "relay_cpu_cores": round(cpu / wall, 3),
        "load_cpu_cores": round(gen.cpu_s / wall, 3),
        "cpu_per_stream_pct": round(100 * cpu_per_stream, 1),
        "streams_per_core_estimate": round(1 / cpu_per_stream, 1) if cpu_per_stream else None,
        "sent_fps_per_stream": round(len(sent) * per_stream, 1),
        "decided_fps_per_stream": round(decided * per_stream, 1),
        "decided_fps_by_stream": [round(d / wall, 1) for d in decided_each],
        "released_fps_per_stream": round(sum(len(s.released) for s in sinks) * per_stream, 1),
        "safe_fps_per_stream": round(safe_sent * per_stream, 1),
        "classifications_per_s_per_stream": round(classified * per_stream, 2),
        "requests_per_s_per_stream": {
            k: round(v * per_stream, 2) for k, v in sorted(requested.items())
        },
        "scene_cuts": cuts,
        "scene_classifications": requested["scene"],
        "no_verdict": sum(s.stats.no_verdict for s in streams),
        "gate_latency": summarize_ms(lat),
        "classify_roundtrip": summarize_ms([c for s in streams for c in s.stats.classify_s]),
        "loop_lag": summarize_ms(gen.lag),
        "leaked_unsafe_frames": sum(count_leaks(s.released_index, UNSAFE) for s in sinks),
        "blocked_events": sum(s.events.count("blocked") for s in sinks),
        "dropped": dict(dropped),
    }
    await moderator.aclose()
    return result


def _run_row(r: Mapping[str, Any]) -> str:
    g = r["gate_latency"]
    return (
        f"{r['streams']:>7} {r['relay_cpu_cores']:>6.2f} {r['cpu_per_stream_pct']:>7.1f} "
        f"{r['streams_per_core_estimate'] or 0:>8.1f} {r['released_fps_per_stream']:>5.1f} "
        f"{r['safe_fps_per_stream']:>5.1f} {min(r['decided_fps_by_stream']):>7.1f} "
        f"{r['classifications_per_s_per_stream']:>6.2f} {r['scene_cuts']:>5} "
        f"{r['scene_classifications']:>5} {g['p50_ms']:>9.1f} {g['p99_ms']:>9.1f} "
        f"{r['leaked_unsafe_frames']:>6}  " + ("; ".join(r["service_levels_missed"]) or "held")
    )


RUN_HEAD: Final = (
    f"{'streams':>7} {'cores':>6} {'%/strm':>7} {'str/core':>8} {'fps':>5} {'safe':>5} "
    f"{'decided':>7} {'cls/s':>6} {'cuts':>5} {'scene':>5} {'gate p50':>9} {'gate p99':>9} "
    f"{'leaked':>6}  service levels"
)
"""fps: released per stream; decided: the slowest stream's released + dropped per second."""


def _measure(
    n: int, clip: Clip, runner: ModelRunner, rng: random.Random, args: argparse.Namespace
) -> dict[str, Any]:
    """One load of ``n`` streams, judged against the service levels, printed as a row."""
    load_cpu = args.pin[1] if args.pin else None
    r = asyncio.run(run_streams(clip, runner, n, args.duration, args.warmup, rng, load_cpu))
    r["service_levels_missed"] = levels_from_args(args).failures(r)
    relay_cores = len(os.sched_getaffinity(0))  # 1 with --pin
    r["saturated"] = saturated(
        {
            "relay": 100 * r["relay_cpu_cores"] / relay_cores,
            "load generator": 100 * r["load_cpu_cores"],
        }
    )
    print(_run_row(r), flush=True)
    return r


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Per-frame costs, then every load of ``--pairs`` (or the capacity search): every figure."""
    if args.pin:
        os.sched_setaffinity(0, {args.pin[0]})  # before any thread: they inherit it
    loadavg = os.getloadavg()
    clip = strict_clip()
    runner = ModelRunner(intra_op_threads=1)
    costs = per_frame_costs(clip, runner)
    print(f"{'per frame':<12} {'p50 ms':>8} {'p99 ms':>8}")
    for k, v in costs.items():
        print(f"{k:<12} {v['p50_ms']:>8.2f} {v['p99_ms']:>8.2f}")
    fastpath = None
    if args.fastpath_frames:
        fastpath = fastpath_bench.bench_resolution(WIDTH, HEIGHT, max(args.fastpath_frames, 10))
        fastpath_bench.print_table([fastpath])
    rng = random.Random(args.seed)
    runs: list[dict[str, Any]] = []
    out: dict[str, Any] = {"per_frame": costs, "fastpath_640x480": fastpath, "runs": runs}
    print("\n" + RUN_HEAD, flush=True)
    if args.search:
        out["search"] = run_search(
            lambda n: _step(_measure(n, clip, runner, rng, args), runs), args
        )
    else:
        runs.extend(_measure(n, clip, runner, rng, args) for n in args.pairs)
    out["meta"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": loadavg,
        "loadavg_after": os.getloadavg(),
        "pin": args.pin,
        "seed": args.seed,
        "clip": f"640x480@30 VP8 (aiortc encoder), {CLIP_FRAMES} frames looped, "
        f"segments {list(SEGMENTS)}, keyframe every {KEYFRAME_S} s and on request, "
        f"{clip.bitrate / 1e6:.2f} Mbit/s",
        "cut_signature_distances": cut_distances(),
        "scene_threshold": GateConfig().scene_threshold,
        "settings": provenance.settings(args),
        "versions": provenance.versions(),
    }
    return out


def _step(run: dict[str, Any], runs: list[dict[str, Any]]) -> SearchStep:
    runs.append(run)
    return SearchStep(run["streams"], run["service_levels_missed"], run["saturated"])


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    """The search's answer, the JSON file and the plot (the table was printed run by run)."""
    found = result.get("search")
    if found is not None:
        print(describe_search(found, "strict route (one moderation worker)"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    if args.plot is not None:
        plot_strict_cases(
            result["runs"],
            args.plot,
            args.min_fps,
            args.max_gate_p99_ms,
            found["capacity"] if found else None,
        )
        print(f"plot written to {args.plot}")


DESCRIPTION: Final = (
    "Feed N moderated 640x480@30 VP8 streams (photographs cut every 1-1.8 s, one unsafe "
    "segment) through the strict route's moderation in this process (one worker: event loop, "
    "decode thread, inference thread) and report CPU per stream, frame rate released and "
    "decided, gate (verdict) latency and unsafe frames leaked, after per-frame costs."
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The strict workload's options, shared with ``chatguard bench strict``."""
    parser.add_argument(
        "--pairs",
        "--streams",
        type=comma_ints,
        default=[1, 4, 8],
        metavar="N,N,...",
        help="comma-separated numbers of moderated video streams (not pairs: one stream is one "
        "direction of a call) to measure one after the other, e.g. 1,4,8 (default 1,4,8); "
        "with --search, the first is where the search starts",
    )
    parser.add_argument(
        "--duration",
        "--seconds",
        type=float,
        default=6.0,
        help="measured seconds per load (default 6)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds per load before measuring; streams wait for a keyframe (default 2)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the load (default 1)")
    parser.add_argument(
        "--pin",
        type=comma_ints,
        metavar="RELAY,LOAD",
        help="pin the moderation worker to core RELAY and the load generator to core LOAD, "
        "e.g. 1,0, so that CPU per stream is of one core (default: no pinning)",
    )
    parser.add_argument(
        "--fastpath-frames",
        type=int,
        default=200,
        help="frames for the fast path vs numpy/OpenCV comparison (default 200; 0: skip it)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench/results/strict.json"),
        help="where to write every figure and the settings (default bench/results/strict.json)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also draw gate latency p50/p99, decided fps and CPU per stream against streams, "
        "one point per load measured, as a PNG",
    )
    add_search_options(parser, StrictLevels())
    parser.add_argument(
        "--service",
        action="store_true",
        help="measure the strict route of a `chatguard serve --route strict` started here "
        "(with this clip's test policy and no bans) the way users meet it: 2 simulated "
        "users per pair through signaling and a relay worker, latency and leaks seen by the "
        "receivers; instead of the moderation in this process. Implied by --target, whose "
        "policy must block FACE_FEMALE for leaks to mean anything",
    )
    relay_bench.add_service_options(parser)


def through_service(args: argparse.Namespace) -> bool:
    return bool(args.service or args.target)


def run_through_service(args: argparse.Namespace) -> tuple[dict[str, Any], argparse.Namespace]:
    """The strict route measured like the relay route (:mod:`bench.relay_bench`), with this
    clip and its levels: --pairs N streams are N/2 pairs (rounded up); every stream at
    --min-fps while its sender is not blocked; the latency the route adds (verdict wait
    included) under --max-gate-p99-ms; no unsafe frame received."""
    service_args = argparse.Namespace(**vars(args))
    levels = ServiceLevels(args.min_fps, 1.0, args.max_gate_p99_ms)
    setattr(service_args, LEVELS_DEST, levels)
    service_args.min_fps, service_args.stream_fraction = levels.min_fps, levels.stream_fraction
    service_args.max_added_p99_ms = levels.added_p99_ms
    service_args.pairs = [-(-n // 2) for n in args.pairs]
    service_args.max_pairs = -(-args.max_pairs // 2)
    service_args.no_naive, service_args.micro = True, False
    media = relay_bench.strict_media(service_args)
    return relay_bench.run(service_args, "strict", media), service_args


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, in words, or None: checked before anything starts."""
    if not args.pairs or min(args.pairs) < 1:
        return "--pairs: give one or more numbers of moderated streams >= 1, e.g. 1,4,8"
    if args.duration <= 0 or args.warmup < 0:
        return "--duration must be > 0 and --warmup >= 0 seconds"
    if args.fastpath_frames < 0:
        return "--fastpath-frames must be >= 0"
    cores = os.sched_getaffinity(0)
    if args.pin is not None and (len(args.pin) != 2 or not set(args.pin) <= cores):
        pin = ",".join(map(str, args.pin))
        return f"--pin {pin}: give two cores RELAY,LOAD among {sorted(cores)}, e.g. 1,0"
    if through_service(args) and (problem := relay_bench.check_service_args(args)):
        return problem
    return check_search_args(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.strict_bench", description=DESCRIPTION)
    add_options(parser)
    args = parser.parse_args(argv)
    if (problem := check_args(args)) is not None:
        raise SystemExit(f"strict bench: {problem}")
    run_and_report(args)
    return 0


def run_and_report(args: argparse.Namespace) -> None:
    """In this process, or through the service (``--service``/``--target``)."""
    if through_service(args):
        relay_bench.report(*run_through_service(args))
    else:
        report(run(args), args)


if __name__ == "__main__":
    raise SystemExit(main())
