"""Strict route: what inline moderation of 640x480@30 VP8 costs per stream and per frame.

Run: ``python -m bench.strict_bench [--streams 1,4,8] [--seconds 4] [--json FILE]``.

Per-frame costs (decode, scene signature, letterbox, inference) are timed one by one on the
same frames. The stream runs feed N :class:`relay.moderation.ModeratedStream` s in this process
(one event loop, one decode thread, one inference thread: one worker) with real VP8 packets
at 30 fps each, from a clip pre-encoded with aiortc's encoder: a safe photograph panning
slowly, then an unsafe one for a second (in delta frames), then the safe one again; keyframes
every 1.5 s stand in for the PLIs a live sender would answer. Reported per N: CPU used (process
time / wall time), frames the gate decided per stream per second (30 = keeping up), verdicts
per stream per second, gate latency (last packet in -> released), and unsafe frames released
("leaked", must be 0). The policy blocks FACE_FEMALE only (``astronaut`` is the unsafe photo).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import skimage.data
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from numpy.typing import NDArray

from bench.stats import summarize_ms
from fastpath.preprocess import letterboxer
from fastpath.scene import luma_signature
from models.batching import AsyncBatcher
from models.inference import ModelRunner
from models.letterbox import Letterbox
from relay.depacketize import Depacketizer
from relay.moderation import SIGNATURE_GRID, Moderator, yuv_plane
from relay.policy import ModerationPolicy

W, H, FPS = 640, 480, 30
POLICY = ModerationPolicy(thresholds={"FACE_FEMALE": 0.5})
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
SAFE_UNTIL, UNSAFE_UNTIL, CLIP = 60, 90, 120
"""Frame indexes: safe [0, 60), unsafe [60, 90), safe [90, 120); the clip loops."""
KEYFRAMES = (0, 45, 95)


def photo(name: str, shift: int = 0) -> NDArray[np.uint8]:
    img = np.asarray(getattr(skimage.data, name)())[..., :3]
    img = cv2.resize(img, (W + 64, H), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[:, shift : shift + W])


def encode_clip() -> list[list[bytes]]:
    """VP8 payloads (descriptor included) per frame, joined later into packets."""
    enc = get_encoder(VP8)
    out: list[list[bytes]] = []
    for i in range(CLIP):
        name = "astronaut" if SAFE_UNTIL <= i < UNSAFE_UNTIL else "rocket"
        f = av.VideoFrame.from_ndarray(photo(name, (i % 64)), format="rgb24")
        f.pts, f.time_base = i * 3000, fractions.Fraction(1, 90000)
        payloads, _ = enc.encode(f, force_keyframe=i in KEYFRAMES)
        out.append(payloads)
    return out


class Packetizer:
    """Loops the clip with continuous seq/ts, as a live sender would."""

    def __init__(self, clip: Sequence[Sequence[bytes]], ssrc: int) -> None:
        self.clip, self.ssrc, self.seq, self.n = clip, ssrc, ssrc & 0xFFFF, 0

    def next_frame(self) -> tuple[int, list[bytes]]:
        payloads = self.clip[self.n % CLIP]
        ts = (self.n * 3000) & 0xFFFFFFFF
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
        return ts, pkts


class Sink:
    """Counts what the gate releases; knows which timestamps carried the unsafe photo."""

    def __init__(self) -> None:
        self.released_ts: list[int] = []
        self.events: list[str] = []

    def release(self, packets: Sequence[bytes], restart: bool, now: float) -> None:
        self.released_ts.append(int.from_bytes(packets[0][4:8], "big"))

    def request_keyframe(self, media_ssrc: int, now: float) -> None:
        pass

    def moderation_event(self, state: str, label: str, score: float) -> None:
        self.events.append(state)


def leaked(ts_list: list[int]) -> int:
    return sum(SAFE_UNTIL <= (ts // 3000) % CLIP < UNSAFE_UNTIL for ts in ts_list)


def per_frame_costs(clip: list[list[bytes]], runner: ModelRunner) -> dict[str, Any]:
    pk = Packetizer(clip, 1)
    d = Depacketizer("vp8")
    ctx = av.CodecContext.create("vp8", "r")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.thread_count = 1
    lb = letterboxer(W, H, runner.input_size)
    box = Letterbox.for_frame(W, H, runner.input_size)
    tensor = np.empty((3, runner.input_size, runner.input_size), np.float32)
    sig = np.empty(SIGNATURE_GRID, np.float32)
    times: dict[str, list[float]] = {k: [] for k in ("depacketize", "decode", "signature")}
    times.update(letterbox=[], inference=[])
    for i in range(CLIP):
        _, pkts = pk.next_frame()
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


async def run_streams(
    clip: list[list[bytes]], runner: ModelRunner, n: int, seconds: float
) -> dict[str, Any]:
    moderator = Moderator(AsyncBatcher(runner))
    sinks = [Sink() for _ in range(n)]
    streams = [moderator.open_stream({96: "vp8"}, POLICY, s) for s in sinks]
    senders = [Packetizer(clip, 1000 + i) for i in range(n)]
    frames = int(seconds * FPS)
    lag: list[float] = []
    cpu0, t0 = time.process_time(), time.monotonic()
    for i in range(frames):
        for k, (st, snd) in enumerate(zip(streams, senders, strict=True)):
            if i == 0 and k:  # senders at spread-out frame phases, as real clients are
                await asyncio.sleep(1 / FPS / n)
            for p in snd.next_frame()[1]:
                st.on_packet(p, time.monotonic())
        due = t0 + (i + 1) / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        lag.append(max(0.0, time.monotonic() - due))
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    await asyncio.sleep(0.5)
    decided = sum(s.stats.released + sum(s.stats.dropped.values()) for s in streams)
    result = {
        "streams": n,
        "seconds": round(wall, 2),
        "cpu_cores": round(cpu / wall, 3),
        "cpu_per_stream_pct": round(100 * cpu / wall / n, 1),
        "decided_fps_per_stream": round(decided / n / wall, 1),
        "released_fps_per_stream": round(sum(s.stats.released for s in streams) / n / wall, 1),
        "classifications_per_s_per_stream": round(
            sum(s.stats.classified for s in streams) / n / wall, 2
        ),
        "no_verdict": sum(s.stats.no_verdict for s in streams),
        "gate_latency": summarize_ms([h for s in streams for h in s.stats.hold_s]),
        "classify_roundtrip": summarize_ms([c for s in streams for c in s.stats.classify_s]),
        "loop_lag": summarize_ms(lag),
        "leaked_unsafe_frames": sum(leaked(s.released_ts) for s in sinks),
        "blocked_events": sum(s.events.count("blocked") for s in sinks),
    }
    await moderator.aclose()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", default="1,4,8")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/strict.json"))
    args = parser.parse_args(argv)
    clip = encode_clip()
    runner = ModelRunner(intra_op_threads=1)
    costs = per_frame_costs(clip, runner)
    print(f"{'per frame':<12} {'p50 ms':>8} {'p99 ms':>8}")
    for k, v in costs.items():
        print(f"{k:<12} {v['p50_ms']:>8.2f} {v['p99_ms']:>8.2f}")
    runs = []
    print(
        f"\n{'streams':>7} {'cores':>6} {'%/strm':>7} {'fps':>5} {'cls/s':>6} "
        f"{'gate p50':>9} {'gate p99':>9} {'leaked':>6}"
    )
    for n in (int(x) for x in args.streams.split(",")):
        r = asyncio.run(run_streams(clip, runner, n, args.seconds))
        runs.append(r)
        g = r["gate_latency"]
        print(
            f"{n:>7} {r['cpu_cores']:>6.2f} {r['cpu_per_stream_pct']:>7.1f} "
            f"{r['decided_fps_per_stream']:>5.1f} {r['classifications_per_s_per_stream']:>6.2f} "
            f"{g['p50_ms']:>9.1f} {g['p99_ms']:>9.1f} {r['leaked_unsafe_frames']:>6}"
        )
    meta = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "clip": "640x480@30 VP8 (aiortc encoder), safe 2 s / unsafe 1 s / safe 1 s, looped",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"meta": meta, "per_frame": costs, "runs": runs}, indent=2) + "\n"
    )
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
