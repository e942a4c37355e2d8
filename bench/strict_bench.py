"""Strict route: what inline moderation of 640x480@30 VP8 costs per stream and per frame.

Run ``chatguard bench strict [--pairs 1,4,8] [--duration 6] [--pin 1,0] [--json FILE]``
(``--pairs`` counts moderated streams; ``--streams``/``--seconds`` are the same options under
their older names). ``--search`` finds the most streams one worker moderates at full rate
within the strict route's latency target, with no leak (:class:`StrictLevels`); ``--plot FILE``
draws the figures against streams. ``--service`` (or ``--target``) measures the strict route
of a service instead, the way ``chatguard bench relay`` measures the relay route.

The clip is :mod:`bench.strict_clip`'s, the load in this process :mod:`bench.strict_load`'s.
``--pin RELAY,LOAD`` puts the relay (event loop, decode thread, inference thread: one worker)
on core RELAY and the load generator on core LOAD, so "per core" means one core.

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
import importlib.util
import os
import platform
import random
from dataclasses import dataclass
from typing import ClassVar, Final

import msgspec

from bench import provenance, relay_cases, relay_options, relay_report
from bench.capacity import LevelOption, Load, ServiceLevels
from bench.extra import require
from bench.plot import plot_strict_cases
from bench.relay_clip import FPS, HEIGHT, WIDTH, Clip, encode_audio_clip
from bench.relay_media import Media
from bench.results import RelayResult, SearchResult, StrictMeta, StrictResult, StrictRun
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
from bench.stats import below
from bench.strict_clip import (
    CLIP_FRAMES,
    KEYFRAME_S,
    NEEDS,
    POLICY,
    SEGMENTS,
    UNSAFE,
    cut_distances,
    strict_clip,
)
from bench.strict_load import per_frame_costs, run_streams
from bench.table import cell
from bench.workload import Workload, add_output_options, check_output, write_json
from models.inference import Runner
from models.manifest import default_manifest
from models.runtime import open_runner
from relay.strict.gate import GateConfig

TARGET_GATE_P99_MS: Final = 50.0
"""The strict route's target: a held frame is decided within 50 ms (p99)."""


@dataclass(frozen=True)
class StrictLevels:
    """What "holds" means on the strict route: every stream keeps up (decided = released +
    dropped, at full rate: nothing piles up behind the gate), the wait for verdicts p99 under
    the target, and no unsafe frame released. A leak is not an option: it fails any load,
    always.

    Why the verdict wait and not every frame's: frames of a cut wait ``GateConfig.settle_s``
    (1 s) for it to settle, by design and whatever the load, so a p99 over all frames is over
    a second at one stream and says nothing of capacity; the wait for verdicts is what a
    saturated classifier lengthens. Both are reported."""

    min_fps: float = 29.0
    max_gate_p99_ms: float = TARGET_GATE_P99_MS

    OPTIONS: ClassVar[tuple[LevelOption, ...]] = (
        LevelOption(
            "min-fps", "min_fps", "decided frames per second of every stream, released + dropped"
        ),
        LevelOption(
            "max-gate-p99-ms",
            "max_gate_p99_ms",
            "gate latency p99 in ms of frames that waited for verdicts, a frame's last packet "
            "in -> released (frames held while a cut settled, settle_s by design, aside)",
        ),
    )
    LOAD: ClassVar[Load] = Load("streams", None, 64)

    def words(self) -> str:
        return (
            f"every stream decided at >= {self.min_fps:g} fps, verdict wait p99 < "
            f"{self.max_gate_p99_ms:g} ms and no unsafe frame leaked"
        )

    def failures(self, run: StrictRun) -> list[str]:
        """Which levels one measured load misses, in words."""
        misses = []
        slowest = min(run.decided_fps_by_stream, default=0.0)
        if not slowest >= self.min_fps:
            misses.append(f"slowest stream decided {slowest:.1f} fps < {self.min_fps:g} fps")
        p99 = run.verdict_wait.p99_ms
        if p99 is None:
            misses.append("no frame released on a verdict: no verdict wait")
        elif not below(p99, self.max_gate_p99_ms):
            misses.append(f"verdict wait p99 {p99:.1f} ms >= {self.max_gate_p99_ms:g} ms")
        if run.leaked_unsafe_frames:
            misses.append(f"{run.leaked_unsafe_frames} unsafe frames leaked")
        return misses


RUN_HEAD: Final = (
    f"{'streams':>7} {'cores':>6} {'%/strm':>7} {'str/core':>8} {'fps':>5} {'safe':>5} "
    f"{'decided':>7} {'cls/s':>6} {'cuts':>5} {'scene':>5} {'gate p50':>9} {'gate p99':>9} "
    f"{'vrdct p99':>9} {'settle p50':>10} {'leaked':>6}  service levels"
)
"""fps: released per stream; decided: the slowest stream's released + dropped per second;
gate: every frame released, at the sink; vrdct: frames that waited for verdicts only, settle:
frames held while a cut settled (both at the gate)."""


def run_row(r: StrictRun) -> str:
    g, slowest = r.gate_latency, min(r.decided_fps_by_stream, default=None)
    return (
        f"{r.streams:>7} {r.relay_cpu_cores:>6.2f} {r.cpu_per_stream_pct:>7.1f} "
        f"{cell(r.streams_per_core_estimate, '>8.1f')} {r.released_fps_per_stream:>5.1f} "
        f"{r.safe_fps_per_stream:>5.1f} {cell(slowest, '>7.1f')} "
        f"{r.classifications_per_s_per_stream:>6.2f} {r.scene_cuts:>5} "
        f"{r.scene_classifications:>5} {cell(g.p50_ms, '>9.1f')} {cell(g.p99_ms, '>9.1f')} "
        f"{cell(r.verdict_wait.p99_ms, '>9.1f')} {cell(r.settle_wait.p50_ms, '>10.1f')} "
        f"{r.leaked_unsafe_frames:>6}  " + ("; ".join(r.service_levels_missed) or "held")
    )


def _measure(
    n: int, clip: Clip, runner: Runner, rng: random.Random, args: argparse.Namespace
) -> StrictRun:
    """One load of ``n`` streams, judged against the service levels, printed as a row."""
    load_cpu = args.pin[1] if args.pin else None
    r = asyncio.run(run_streams(clip, runner, n, args.duration, args.warmup, rng, load_cpu))
    r.service_levels_missed = levels_from_args(args).failures(r)
    relay_cores = len(os.sched_getaffinity(0))  # 1 with --pin
    r.saturated = saturated(
        {"relay": 100 * r.relay_cpu_cores / relay_cores, "load generator": 100 * r.load_cpu_cores}
    )
    print(run_row(r), flush=True)
    return r


def run_here(args: argparse.Namespace) -> StrictResult:
    """Per-frame costs, then every load of ``--pairs`` (or the capacity search): every figure."""
    if args.pin:
        os.sched_setaffinity(0, {args.pin[0]})  # before any thread: they inherit it
    loadavg = os.getloadavg()
    clip = strict_clip()
    runners = [engine_runner(engine) for engine in args.engines]
    costs = {}
    print(f"{'per frame':<12} {'p50 ms':>8} {'p99 ms':>8}")
    for runner in runners:
        label = f"{runner.engine} {runner.precision}"
        costs[label] = per_frame_costs(clip, runner)
        for k, v in costs[label].items():
            if k == "inference" or runner is runners[0]:
                name = f"{k} ({label})" if k == "inference" else k
                print(f"{name:<12} {cell(v.p50_ms, '>8.2f')} {cell(v.p99_ms, '>8.2f')}")
    fastpath = None
    if args.fastpath_frames:
        from bench import fastpath_bench

        fastpath = fastpath_bench.bench_resolution(WIDTH, HEIGHT, max(args.fastpath_frames, 10))
        fastpath_bench.print_table([fastpath])
    runs: list[StrictRun] = []
    searches: dict[str, SearchResult] = {}
    for runner in runners:  # the same loads, the same random phases, one engine after the other
        rng = random.Random(args.seed)
        label = f"{runner.engine} {runner.precision}"
        print(f"\n{label}\n" + RUN_HEAD, flush=True)
        if args.search:

            def probe(n: int, runner: Runner = runner, rng: random.Random = rng) -> SearchStep:
                return _step(_measure(n, clip, runner, rng, args), runs)

            searches[label] = run_search(probe, args)
        else:
            runs.extend(_measure(n, clip, runner, rng, args) for n in args.pairs)
    meta = StrictMeta(
        python=platform.python_version(),
        cpus=os.cpu_count(),
        loadavg_before=loadavg,
        loadavg_after=os.getloadavg(),
        pin=args.pin,
        seed=args.seed,
        clip=f"640x480@{FPS} VP8 (aiortc encoder), {CLIP_FRAMES} frames looped, "
        f"segments {list(SEGMENTS)}, keyframe every {KEYFRAME_S} s and on request, "
        f"{clip.bitrate / 1e6:.2f} Mbit/s",
        cut_signature_distances=cut_distances(),
        scene_threshold=GateConfig().scene_threshold,
        settings=provenance.settings(args),
        versions=provenance.versions(),
    )
    return StrictResult(costs, fastpath, runs, meta, searches)


ENGINES: Final = ("onnxruntime", "openvino")


def default_engines() -> list[str]:
    """onnxruntime (the baseline every machine has) and, where it is installed, OpenVINO."""
    return ["onnxruntime", "openvino"] if importlib.util.find_spec("openvino") else ["onnxruntime"]


def engine_runner(engine: str) -> Runner:
    """The runner a worker would open with ``[runtime] engine`` set to ``engine`` (precision
    auto: OpenVINO in bf16 where the CPU has it, with its fp32 re-check, as in production)."""
    manifest = default_manifest()
    runtime = msgspec.structs.replace(manifest.runtime, engine=engine, precision="auto")
    return open_runner(msgspec.structs.replace(manifest, runtime=runtime))


def _step(run: StrictRun, runs: list[StrictRun]) -> SearchStep:
    runs.append(run)
    return SearchStep(run.streams, run.service_levels_missed, run.saturated)


def report_here(result: StrictResult, args: argparse.Namespace) -> None:
    """The search's answer, the JSON file and the plot (the table was printed run by run)."""
    for engine, found in result.searches.items():
        print(describe_search(found, f"strict route (one moderation worker, {engine})"))
    write_json(result, args.json)
    print(f"\nresults written to {args.json}")
    if args.plot is not None:  # the capacity marked is the last engine's (the fastest, usually)
        last = list(result.searches.values())[-1:]
        capacity = last[0].capacity if last else None
        plot_strict_cases(result.runs, args.plot, args.min_fps, args.max_gate_p99_ms, capacity)
        print(f"plot written to {args.plot}")


# ---------------------------------------------------------------------- through a service

STRICT_SERVICE_CONFIG: Final = """
[moderation]
block = {{ {block} }}
strikes_to_ban = 1000000
"""
"""The strict service started here: the clip's test policy, and no bans: every simulated user
shows the unsafe segment every loop of the clip, all from one address, and a service that
banned them would end the benchmark (a deployment under --target needs the same)."""


def strict_media(args: argparse.Namespace) -> Media:
    """The clip every simulated user replays, which of its frames must never reach a receiver,
    and the service configuration whose policy makes them unsafe."""
    block = ", ".join(f"{label} = {score}" for label, score in POLICY.thresholds.items())
    config = STRICT_SERVICE_CONFIG.format(block=block)
    return Media(strict_clip(), None if args.no_audio else encode_audio_clip(), UNSAFE, config)


def through_service(args: argparse.Namespace) -> bool:
    return bool(args.service or args.target)


def service_args(args: argparse.Namespace) -> argparse.Namespace:
    """The options of ``chatguard bench relay`` that measure the strict route with this clip
    and its levels: --pairs N streams are N/2 pairs (rounded up); every stream at --min-fps
    while its sender is not blocked; the latency the route adds under --max-gate-p99-ms (from
    abs-send-time, which the relay moves by the time it held a frame, so the verdict wait is
    not in it: the workers' gate latency from /stats is); no unsafe frame received."""
    relay_args = argparse.Namespace(**vars(args))
    levels = ServiceLevels(args.min_fps, 1.0, args.max_gate_p99_ms)
    setattr(relay_args, LEVELS_DEST, levels)
    relay_args.min_fps, relay_args.stream_fraction = levels.min_fps, levels.stream_fraction
    relay_args.max_added_p99_ms = levels.added_p99_ms
    relay_args.pairs = [-(-n // 2) for n in args.pairs]
    relay_args.max_pairs = -(-args.max_pairs // 2)
    relay_args.no_naive, relay_args.micro = True, False
    return relay_args


# ---------------------------------------------------------------------- the workload


DESCRIPTION: Final = (
    "Feed N moderated 640x480@30 VP8 streams (photographs cut every 1-1.8 s, one unsafe "
    "segment) through the strict route's moderation in this process (one worker: event loop, "
    "decode thread, inference thread) and report CPU per stream, frame rate released and "
    "decided, gate (verdict) latency and unsafe frames leaked, after per-frame costs. "
    "Or through a service with --service or --target. Needs the bench extra (the clip is "
    "made from scikit-image's sample photographs)."
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The strict workload's options."""
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
        "--engines",
        type=lambda text: text.split(","),
        default=default_engines(),
        metavar="ENGINE,...",
        help="inference engines to measure one after the other, the same loads each: "
        "onnxruntime (fp32) and openvino (bf16 where the CPU has it, with the fp32 re-check "
        "near thresholds, as a worker runs it) (default: both where openvino is installed)",
    )
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
    add_output_options(
        parser,
        "strict",
        "gate latency p50/p99, decided fps and CPU per stream against streams, one point per "
        "load measured (with --service: frame rate and added latency against pairs)",
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
    relay_options.add_service_options(parser)


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, in words, or None: checked before anything starts."""
    require(*NEEDS)
    if not args.pairs or min(args.pairs) < 1:
        return "--pairs: give one or more numbers of moderated streams >= 1, e.g. 1,4,8"
    if args.duration <= 0 or args.warmup < 0:
        return "--duration must be > 0 and --warmup >= 0 seconds"
    if args.fastpath_frames < 0:
        return "--fastpath-frames must be >= 0"
    unknown = [engine for engine in args.engines if engine not in ENGINES]
    if unknown or not args.engines:
        return f"--engines: choose from {', '.join(ENGINES)}, comma-separated, got {unknown}"
    if "openvino" in args.engines and not importlib.util.find_spec("openvino"):
        return "--engines openvino needs the openvino extra: pip install 'chatguard[openvino]'"
    cores = os.sched_getaffinity(0)
    if args.pin is not None and (len(args.pin) != 2 or not set(args.pin) <= cores):
        pin = ",".join(map(str, args.pin))
        return f"--pin {pin}: give two cores RELAY,LOAD among {sorted(cores)}, e.g. 1,0"
    if through_service(args) and (problem := relay_options.check_service_args(args)):
        return problem
    return check_search_args(args) or check_output(args)


class StrictWorkload:
    name = "strict"
    description = DESCRIPTION

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        add_options(parser)

    def check(self, args: argparse.Namespace) -> str | None:
        return check_args(args)

    def run(self, args: argparse.Namespace) -> StrictResult | RelayResult:
        """In this process, or through the service (``--service``/``--target``)."""
        if through_service(args):
            relay_args = service_args(args)
            return relay_cases.run(relay_args, "strict", strict_media(relay_args))
        return run_here(args)

    def report(self, result: StrictResult | RelayResult, args: argparse.Namespace) -> None:
        if isinstance(result, RelayResult):
            relay_report.report(result, service_args(args))
        else:
            report_here(result, args)


WORKLOAD: Workload[StrictResult | RelayResult] = StrictWorkload()
