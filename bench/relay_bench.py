"""Relay benchmark: N relayed pairs of 640x480@30 VP8 (~1 Mbit/s), both directions.

Run ``python -m bench.relay_bench --pairs 4,16,50 --duration 10``. For each N it starts the
relay under test in its own process and one or more load-generator processes
(``bench.relay_procs``), replays one pre-encoded clip (``bench.relay_clip``) from every
client, prints a progress line per second and, at the end, a table comparing

* ``forward``: the real relay (``ForwardingHub`` + ``AiortcLeg``, packet-level forwarding),
* ``naive``: aiortc's ``MediaRelay`` (decode, re-encode), at ``--naive-pairs`` (small N:
  it collapses early),
* ``direct``: client to client without a relay, measured in the same run,

and writes every figure as JSON (default ``bench/results/relay.json``).

Figures, and why they are measured this way:

* delivered frame rate: frames completed per second at each receiver; a stream holds full
  rate at >= 29 fps. Forward/direct receivers never decode (complete = no sequence gap up to
  the marker); naive receivers decode (aiortc's receiver), as a browser would have to.
* latency: send time of a frame to arrival of its last packet (forward, and its direct
  pairs) or to its decoded picture (naive, and its direct pairs, so both include the
  receiver's jitter buffer); added latency = relayed minus direct percentile, same run.
* relay CPU: user+system time of the relay process from ``/proc/PID/stat`` over the measured
  seconds; per stream = that / one-way streams (2 per pair).
* memory per session: (relay RSS with N pairs connected - RSS before any) / legs (2 per pair).

The load generator also reports its own CPU and how late its senders ran, so a run says
which side saturated. ``--micro`` adds the relay's per-packet CPU without I/O.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import pstats
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from bench import provenance
from bench.capacity import ServiceLevels
from bench.plot import plot_relay_cases
from bench.relay_clip import FPS, HEIGHT, WIDTH, Clip, encode_clip
from bench.relay_procs import LoadSpec, Mode, call_sync, loadgen_main, relay_main
from bench.search_cli import (
    SearchStep,
    add_search_options,
    check_search_args,
    describe_search,
    levels_from_args,
    run_search,
)
from bench.stats import percentile, summarize_ms

FULL_RATE_FPS = 29.0
TARGET_STREAMS_PER_CORE = 100
TARGET_ADDED_P99_MS = 5.0


# ---------------------------------------------------------------------- /proc readings


def cpu_seconds_from_stat(stat: str, clock_ticks: int) -> float:
    """User + system CPU seconds from the text of ``/proc/PID/stat`` (all threads).

    Fields are counted after the last ``)``: the command name may contain spaces.
    """
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / clock_ticks


def rss_kib_from_status(status: str) -> int:
    """Resident set size in KiB from the text of ``/proc/PID/status``."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line")


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_from_stat(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))


def rss_kib(pid: int) -> int:
    return rss_kib_from_status(Path(f"/proc/{pid}/status").read_text())


def run_delay_s_from_schedstat(schedstat: str) -> float:
    """Seconds a thread was runnable but waiting for a CPU, from ``/proc/PID/schedstat``."""
    return int(schedstat.split()[1]) / 1e9


def run_delay_s(pid: int) -> float:
    """Run-queue wait of a process's main thread (for the relay: its event loop).

    Why: a packet that arrives while the loop waits for a CPU waits with it; this separates
    latency the relay causes from latency the machine's other work causes.
    """
    return run_delay_s_from_schedstat(Path(f"/proc/{pid}/schedstat").read_text())


def cpu_pressure_us_from_psi(psi: str) -> int:
    """Total µs some runnable task waited for a CPU, from ``/proc/pressure/cpu`` text."""
    for line in psi.splitlines():
        if line.startswith("some "):
            return int(line.rsplit("total=", 1)[1])
    raise ValueError("no 'some' line")


def cpu_pressure_us() -> int | None:
    """Machine-wide CPU stall counter (Linux PSI), None where the kernel has no PSI.

    Why: on a shared machine the relay's latency depends on other work; the share of the
    measured span during which something waited for a CPU says how contended the run was.
    """
    try:
        return cpu_pressure_us_from_psi(Path("/proc/pressure/cpu").read_text())
    except (OSError, ValueError):
        return None


def percent_of_core(cpu_before: float, cpu_after: float, wall_s: float) -> float:
    """CPU time used over a wall-clock span, in percent of one core."""
    return 100.0 * (cpu_after - cpu_before) / wall_s if wall_s > 0 else math.nan


# ---------------------------------------------------------------------- figures


def added_latency_ms(relayed: dict[str, float], direct: dict[str, float]) -> dict[str, float]:
    """What the relay adds: relayed minus direct, percentile by percentile (ms)."""
    return {k: relayed[k] - direct[k] for k in ("p50_ms", "p90_ms", "p99_ms")}


@dataclass
class Tally:
    """Load-generator reports summed over a span: frames per receiving stream, samples."""

    frames: dict[str, dict[tuple[int, int], int]] = field(
        default_factory=lambda: {"relayed": {}, "direct": {}}
    )
    seconds: dict[int, float] = field(default_factory=dict)
    latency_s: dict[str, list[float]] = field(default_factory=lambda: {"relayed": [], "direct": []})
    send_lag_s: list[float] = field(default_factory=list)
    packets: dict[str, int] = field(default_factory=lambda: {"relayed": 0, "direct": 0})
    sent: dict[str, int] = field(default_factory=lambda: {"relayed": 0, "direct": 0})
    receive_errors: dict[int, int] = field(default_factory=dict)
    """Per worker, cumulative since the worker started."""

    def add(self, worker: int, report: dict[str, Any]) -> None:
        self.seconds[worker] = self.seconds.get(worker, 0.0) + report["interval_s"]
        for group in ("relayed", "direct"):
            counts = self.frames[group]
            for i, n in enumerate(report[group]["frames"]):
                counts[worker, i] = counts.get((worker, i), 0) + n
            self.latency_s[group].extend(report[group]["latency_s"])
            self.packets[group] += report[group]["packets"]
            self.sent[group] += report[group]["sent"]
        self.send_lag_s.extend(report["send_lag_s"])
        self.receive_errors[worker] = report["receive_errors"]

    def fps(self, group: str) -> list[float]:
        """Frames per second of each receiving stream over the time its worker reported."""
        return [
            n / self.seconds[w]
            for (w, _), n in sorted(self.frames[group].items())
            if self.seconds[w]
        ]


def packet_loss(sent: int, received: int) -> float | None:
    """Share of the packets sent that never arrived; None where senders are not counted.

    Senders and receivers are the same set of clients (both ends of every pair), so over a
    span of many frames the packets in flight at its edges are a rounding error; a negative
    difference (more arrived than were counted as sent) is that error, reported as 0.
    """
    if sent == 0:
        return None
    return max(0.0, 1.0 - received / sent)


def fps_summary(fps: Sequence[float]) -> dict[str, float]:
    """Delivered frame rate over streams; full rate is >= ``FULL_RATE_FPS``."""
    return {
        "streams": len(fps),
        "mean": sum(fps) / len(fps) if fps else math.nan,
        "min": min(fps) if fps else math.nan,
        "p5": percentile(fps, 0.05),
        "streams_at_full_rate": sum(f >= FULL_RATE_FPS for f in fps),
    }


def bottleneck(
    relay_cpu: float, loadgen_cpu: list[float], send_lag_p90_ms: float, relay_wait_pct: float
) -> str:
    """Which side ran out of CPU: a process near one core, else the machine as a whole.

    "machine": neither process was busy, but the relay's loop waited for a CPU a fifth of
    the time, or senders were late as a rule (p90 and not p99 of the lag: one stall from
    other work makes a few frames late without anybody being short of CPU).
    """
    if relay_cpu >= 90:
        return "relay"
    if any(c >= 90 for c in loadgen_cpu):
        return "load generator"
    if relay_wait_pct >= 20 or send_lag_p90_ms > 5:
        return "machine"
    return "none"


# ---------------------------------------------------------------------- one case


@dataclass
class Procs:
    """The processes of one case and the orchestrator's ends of their pipes."""

    relay: Any
    relay_ctl: Connection
    rss_idle_kib: int
    workers: list[Any]
    ctls: list[Connection]


def _start(mode: Mode, pairs: int, clip: Clip, args: argparse.Namespace, tag: str) -> Procs:
    ctx = mp.get_context("spawn")
    relay_ctl, relay_ctl_child = ctx.Pipe()
    n_workers = max(1, min(args.loadgen_procs, pairs))
    links = [ctx.Pipe() for _ in range(n_workers)]
    profile = str(_profile_path(args, tag)) if args.profile and mode == "forward" else None
    relay = ctx.Process(
        target=relay_main,
        args=(
            mode,
            [relay_ctl_child, *(r for r, _ in links)],
            args.relay_loop == "uvloop",
            not args.aiortc_receive,
            profile,
            args.ice_address,
        ),
        daemon=True,
    )
    relay_pid = _launch(relay, args.nice)
    call_sync(relay_ctl, "counters")  # ready
    time.sleep(0.5)
    rss_idle = rss_kib(relay_pid)
    workers, ctls = [], []
    for i, (_, to_relay) in enumerate(links):
        ctl, ctl_child = ctx.Pipe()
        spec = LoadSpec(
            mode=mode,
            clip=clip,
            pairs=pairs // n_workers + (i < pairs % n_workers),
            use_uvloop=True,
            seed=args.seed * 1000 + i,
            ice_address=args.ice_address,
        )
        w = ctx.Process(target=loadgen_main, args=(spec, to_relay, ctl_child), daemon=True)
        _launch(w, args.nice)
        workers.append(w)
        ctls.append(ctl)
    return Procs(relay, relay_ctl, rss_idle, workers, ctls)


def _launch(proc: Any, nice: int) -> int:
    """Start a process and give it (and the threads it will start) ``nice``.

    Why: on a shared machine other work competes for the same cores, and a relay waiting in
    the run queue shows up as latency. Threads inherit the value from the main thread.
    """
    proc.start()
    pid = int(proc.pid)
    if nice:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    return pid


def _profile_path(args: argparse.Namespace, tag: str) -> Path:
    return Path(args.json).with_name(f"relay-{tag}.prof")


def run_case(mode: Mode, pairs: int, clip: Clip, args: argparse.Namespace) -> dict[str, Any]:
    """Connect ``pairs`` relayed pairs (+ direct ones), warm up, measure, tear down."""
    tag = f"{mode}-{pairs}"
    load_before = os.getloadavg()
    procs = _start(mode, pairs, clip, args, tag)
    print(f"{mode}: connecting {pairs} pairs through the relay", flush=True)
    connected = [ctl.recv() for ctl in procs.ctls]
    peers_up = sum(c[1] for c in connected)
    peers_all = sum(c[2] for c in connected)
    rss_idle, rss_connected = procs.rss_idle_kib, rss_kib(procs.relay.pid)
    for ctl in procs.ctls:
        ctl.send("start")
    measured, cpu, rss_loaded = _measure(mode, pairs, procs, args)
    for ctl in procs.ctls:
        ctl.send("stop")
    for ctl in procs.ctls:
        while ctl.recv()[0] != "done":
            pass  # reports after the measured span are not counted
    counters = call_sync(procs.relay_ctl, "stop")
    procs.relay.join(20)
    for w in procs.workers:
        w.join(20)
    result = _figures(mode, pairs, measured, cpu, args)
    result.update(
        {
            "peers_connected": f"{peers_up}/{peers_all}",
            "relay_rss_kib": {"idle": rss_idle, "connected": rss_connected, "loaded": rss_loaded},
            "memory_per_session_kib": (rss_loaded - rss_idle) / (2 * pairs),
            "relay_counters": counters,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        }
    )
    if args.profile and mode == "forward":
        result["profile"] = _profile_top(_profile_path(args, tag))
    return result


def _measure(
    mode: Mode, pairs: int, procs: Procs, args: argparse.Namespace
) -> tuple[Tally, dict[str, Any], int]:
    """Progress lines every second; sums reports that arrive inside the measured span."""
    started = time.monotonic()
    measure_from = started + args.warmup
    measure_to = measure_from + args.duration
    measured = Tally()
    window = Tally()
    pids = [procs.relay.pid] + [w.pid for w in procs.workers]
    prev = (started, [cpu_seconds(p) for p in pids])
    mark: tuple[float, list[float]] | None = None
    waits_mark: list[float] = []
    psi_mark: int | None = None
    rss_loaded = 0
    while (now := time.monotonic()) < measure_to:
        for conn in wait(procs.ctls, timeout=0.1):
            assert isinstance(conn, Connection)
            _, report = conn.recv()
            worker = procs.ctls.index(conn)
            window.add(worker, report)
            if report["start"] >= measure_from:  # whole report inside the measured span
                measured.add(worker, report)
        if mark is None and now >= measure_from:
            mark = (now, [cpu_seconds(p) for p in pids])
            waits_mark = [run_delay_s(p) for p in pids]
            psi_mark = cpu_pressure_us()
        if now - prev[0] >= 1.0:
            cpus = [cpu_seconds(p) for p in pids]
            relay_pct = percent_of_core(prev[1][0], cpus[0], now - prev[0])
            _progress(mode, pairs, now - started, now >= measure_from, window, relay_pct)
            prev, window = (now, cpus), Tally()
            rss_loaded = max(rss_loaded, rss_kib(procs.relay.pid))
    end = (time.monotonic(), [cpu_seconds(p) for p in pids])
    psi_end = cpu_pressure_us()
    assert mark is not None
    wall = end[0] - mark[0]
    waits = [100 * (run_delay_s(p) - w) / wall for p, w in zip(pids, waits_mark, strict=True)]
    cpu = {
        "relay_percent_of_core": percent_of_core(mark[1][0], end[1][0], wall),
        "loadgen_percent_of_core": [
            percent_of_core(a, b, wall) for a, b in zip(mark[1][1:], end[1][1:], strict=True)
        ],
        "measured_s": wall,
        "relay_runqueue_wait_percent": waits[0],
        "loadgen_runqueue_wait_percent": waits[1:],
        "machine_cpu_pressure_percent": (
            None if psi_mark is None or psi_end is None else (psi_end - psi_mark) / wall / 1e4
        ),
    }
    return measured, cpu, rss_loaded


def _progress(
    mode: Mode, pairs: int, t: float, measuring: bool, w: Tally, relay_pct: float
) -> None:
    fps = w.fps("relayed")
    rel = summarize_ms(w.latency_s["relayed"])
    direct = summarize_ms(w.latency_s["direct"])
    phase = "measure" if measuring else "warm-up"
    print(
        f"[{t:5.1f}s {phase}] {mode:7} pairs {pairs:3d} streams {len(fps):3d}  "
        f"fps {fps_summary(fps)['mean']:5.1f} (min {fps_summary(fps)['min']:5.1f})  "
        f"latency p50 {rel['p50_ms']:6.2f} p99 {rel['p99_ms']:7.2f} ms "
        f"(direct {direct['p50_ms']:5.2f}/{direct['p99_ms']:6.2f})  relay CPU {relay_pct:5.1f}%",
        flush=True,
    )


def _figures(
    mode: Mode, pairs: int, t: Tally, cpu: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    relayed = summarize_ms(t.latency_s["relayed"])
    direct = summarize_ms(t.latency_s["direct"])
    added = added_latency_ms(relayed, direct)
    fps = fps_summary(t.fps("relayed"))
    streams = 2 * pairs
    per_stream = cpu["relay_percent_of_core"] / streams
    lag = summarize_ms(t.send_lag_s)
    return {
        "relay": mode,
        "pairs": pairs,
        "one_way_streams": streams,
        "legs": 2 * pairs,
        "delivered_fps": fps,
        "fps_per_stream": t.fps("relayed"),
        "service_levels_missed": levels_from_args(args).failures(t.fps("relayed"), added["p99_ms"]),
        "direct_fps": fps_summary(t.fps("direct")),
        "latency_ms": {"relayed": relayed, "direct": direct, "added": added},
        "relay_cpu_percent_of_core": cpu["relay_percent_of_core"],
        "relay_cpu_percent_per_stream": per_stream,
        "streams_per_core_at_this_cost": 100.0 / per_stream if per_stream > 0 else math.inf,
        "loadgen_cpu_percent_of_core": cpu["loadgen_percent_of_core"],
        "loadgen_send_lag_ms": lag,
        "loadgen_srtp_errors": sum(t.receive_errors.values()),
        "packets_received": t.packets,
        "packets_sent": t.sent,
        "packet_loss": {g: packet_loss(t.sent[g], t.packets[g]) for g in ("relayed", "direct")},
        "streams_without_frames": sum(f == 0 for f in t.fps("relayed")),
        "measured_s": cpu["measured_s"],
        "relay_runqueue_wait_percent": cpu["relay_runqueue_wait_percent"],
        "loadgen_runqueue_wait_percent": cpu["loadgen_runqueue_wait_percent"],
        "machine_cpu_pressure_percent": cpu["machine_cpu_pressure_percent"],
        "saturated": bottleneck(
            cpu["relay_percent_of_core"],
            cpu["loadgen_percent_of_core"],
            lag["p90_ms"],
            cpu["relay_runqueue_wait_percent"],
        ),
        "profiled": bool(args.profile and mode == "forward"),
    }


def _profile_top(path: Path, n: int = 20) -> list[dict[str, Any]]:
    """The relay's functions by own time (cProfile), for the JSON and the printout."""
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    entries = stats.stats.items()  # type: ignore[attr-defined]
    for (file, line, func), (_, calls, tottime, cumtime, _) in sorted(
        entries, key=lambda e: -e[1][2]
    )[:n]:
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({func})",
                "calls": calls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
                "share_of_total": tottime / total if total else math.nan,
            }
        )
    return rows


# ---------------------------------------------------------------------- micro (no I/O)


def micro_hub_us(n: int = 30_000) -> float:
    """µs per packet for ``ForwardingHub.on_rtp`` (stats, keyframe cache, forwarder, copy)."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from relay.aiortc_adapter import NegotiatedMedia
    from relay.hub import ForwardingHub

    class FakeLeg:
        def __init__(self, ssrc: int) -> None:
            vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
            self.media = {"video": NegotiatedMedia("video", (vp8,), (), ssrc)}
            self.kind_by_pt = {97: "video"}
            self.sent = 0

        def send(self, data: bytes) -> bool:
            self.sent += 1
            return True

    hub = ForwardingHub(rng=random.Random(0))
    a, b = FakeLeg(1), FakeLeg(2)
    hub.pair(a, b)  # type: ignore[arg-type]
    packets = [
        bytes([0x80, 97 | (0x80 if i % 4 == 3 else 0)])
        + (i & 0xFFFF).to_bytes(2, "big")
        + (3000 * (i // 4)).to_bytes(4, "big")
        + (0x99).to_bytes(4, "big")
        + (b"\x10\x00" if i % 120 == 0 else b"\x00\x01")
        + bytes(1198)
        for i in range(n)
    ]
    on_rtp = hub.on_rtp
    t0 = time.perf_counter()
    for i, data in enumerate(packets):
        on_rtp(a, data, i * 0.0001)  # type: ignore[arg-type]
    dt = time.perf_counter() - t0
    assert b.sent == n, (b.sent, hub.dropped)
    return dt / n * 1e6


# ---------------------------------------------------------------------- CLI


def _ints(text: str) -> list[int]:
    """A comma-separated list of whole numbers, e.g. ``4,16,50``."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of whole numbers, e.g. 4,16,50"
        ) from None


DESCRIPTION = (
    "Forwarding relay vs aiortc MediaRelay vs direct: N pairs of 640x480@30 VP8 ~1 Mbit/s, "
    "both directions, pre-encoded once and replayed. Starts its own relay process and "
    "load-generator processes on this machine."
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.relay_bench", description=DESCRIPTION)
    add_options(p)
    return p


def add_options(p: argparse.ArgumentParser) -> None:
    """The relay workload's options, shared by this module's CLI and ``chatguard bench relay``."""
    p.add_argument(
        "--pairs",
        type=_ints,
        default=[4, 16],
        help="comma-separated numbers of pairs to measure, e.g. 4,16,50 (default 4,16); "
        "with --search, the first is where the search starts",
    )
    p.add_argument(
        "--naive-pairs",
        type=_ints,
        default=[1, 2],
        help="pairs for the naive aiortc relay, the baseline (default 1,2; it collapses early)",
    )
    p.add_argument("--no-naive", action="store_true", help="skip the naive relay")
    p.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per load (default 10)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=4.0,
        help="seconds per load between connecting and measuring (default 4)",
    )
    p.add_argument(
        "--loadgen-procs", type=int, default=1, help="load-generator processes (default 1)"
    )
    p.add_argument(
        "--clip-seconds",
        type=float,
        default=4.0,
        help="length of the clip encoded once at start and replayed in a loop (default 4)",
    )
    p.add_argument(
        "--bitrate",
        type=int,
        default=1_000_000,
        help="target bitrate of the clip in bit/s (default 1000000)",
    )
    p.add_argument(
        "--relay-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of the relay process (default uvloop, as `chatguard serve` uses)",
    )
    p.add_argument(
        "--aiortc-receive",
        action="store_true",
        help="forward relay receives through aiortc's queue + DTLS task, not the ICE socket hook",
    )
    p.add_argument(
        "--profile", action="store_true", help="cProfile the forwarding relay (inflates its CPU)"
    )
    p.add_argument("--micro", action="store_true", help="also time ForwardingHub.on_rtp alone")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value for the relay and load generator, e.g. -5 on a shared machine "
        "(negative needs root; default 0)",
    )
    p.add_argument(
        "--ice-address",
        default="127.0.0.1",
        help="the only address ICE gathers on, relay and clients (default 127.0.0.1)",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed of the load (default 1)")
    p.add_argument(
        "--json",
        type=Path,
        default=Path("bench/results/relay.json"),
        help="where to write every figure, the settings and versions "
        "(default bench/results/relay.json)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also draw frame rate and added latency against pairs, forwarding relay and "
        "naive baseline, as a PNG",
    )
    add_search_options(p, ServiceLevels(added_p99_ms=TARGET_ADDED_P99_MS))


def _table(cases: list[dict[str, Any]]) -> str:
    head = (
        f"{'relay':7} {'pairs':>5} {'streams':>7} {'fps mean/min':>13} {'full':>5} "
        f"{'relayed p50/p99 ms':>19} {'direct p50/p99':>15} {'added p50/p99':>14} "
        f"{'relay CPU':>9} {'CPU/stream':>10} {'str/core':>8} {'KiB/sess':>8} "
        f"{'loadgen CPU':>11} {'loss':>6} {'saturated':>14} {'pressure':>8} {'relay waited':>12}"
    )
    lines = [head, "-" * len(head)]
    for c in cases:
        lat = c["latency_ms"]
        fps = c["delivered_fps"]
        lines.append(
            f"{c['relay']:7} {c['pairs']:5d} {c['one_way_streams']:7d} "
            f"{fps['mean']:6.1f}/{fps['min']:5.1f} "
            f"{fps['streams_at_full_rate']:>2d}/{fps['streams']:<2d} "
            f"{lat['relayed']['p50_ms']:8.2f}/{lat['relayed']['p99_ms']:8.2f}  "
            f"{lat['direct']['p50_ms']:6.2f}/{lat['direct']['p99_ms']:7.2f}  "
            f"{lat['added']['p50_ms']:6.2f}/{lat['added']['p99_ms']:6.2f}  "
            f"{c['relay_cpu_percent_of_core']:8.1f}% {c['relay_cpu_percent_per_stream']:9.2f}% "
            f"{c['streams_per_core_at_this_cost']:8.0f} {c['memory_per_session_kib']:8.0f} "
            f"{'+'.join(f'{x:.0f}' for x in c['loadgen_cpu_percent_of_core']):>10}% "
            f"{_loss(c['packet_loss']['relayed']):>6} "
            f"{c['saturated']:>14} {_pct(c['machine_cpu_pressure_percent']):>8} "
            f"{_pct(c['relay_runqueue_wait_percent']):>12}"
        )
    return "\n".join(lines)


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, in words, or None: checked before anything starts."""
    if not args.pairs or min(args.pairs) < 1:
        return "--pairs: give one or more numbers of pairs >= 1, e.g. 4,16"
    if args.duration <= 0 or args.warmup < 0:
        return "--duration must be > 0 and --warmup >= 0 seconds"
    if args.loadgen_procs < 1:
        return "--loadgen-procs must be >= 1"
    return check_search_args(args)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every case (or search for the capacity) and return every figure."""
    print(f"load average at start: {os.getloadavg()} on {os.cpu_count()} CPUs", flush=True)
    clip = encode_clip(args.clip_seconds, args.bitrate)
    print(
        f"clip: {len(clip.frames)} frames {WIDTH}x{HEIGHT}@{FPS}, "
        f"{clip.bitrate / 1e6:.2f} Mbit/s, {clip.packets_per_second:.0f} packets/s",
        flush=True,
    )
    levels = levels_from_args(args)
    result: dict[str, Any] = {
        "benchmark": "relay",
        "settings": provenance.settings(args),
        "versions": provenance.versions(),
        "machine": provenance.machine(),
        "cpus": os.cpu_count(),
        "clip": {
            "width": WIDTH,
            "height": HEIGHT,
            "fps": FPS,
            "frames": len(clip.frames),
            "bitrate_bps": clip.bitrate,
            "packets_per_second": clip.packets_per_second,
            "keyframe_interval_frames": clip.keyframe_interval,
        },
        "target": {
            "streams_per_core": TARGET_STREAMS_PER_CORE,
            "added_latency_p99_ms": levels.added_p99_ms,
            "full_rate_fps": levels.min_fps,
            "streams_at_full_rate_fraction": levels.stream_fraction,
        },
        "cases": [],
    }
    if args.micro:
        result["micro_hub_us_per_packet"] = micro_hub_us()
        print(f"micro: ForwardingHub.on_rtp {result['micro_hub_us_per_packet']:.2f} µs/packet")
    if args.search:
        result["search"] = run_search(
            lambda n: _case_holds(run_case("forward", n, clip, args), result["cases"]), args
        )
    else:
        for n in args.pairs:
            result["cases"].append(run_case("forward", n, clip, args))
    if not args.no_naive:
        for n in args.naive_pairs:
            result["cases"].append(run_case("naive", n, clip, args))
    result["loadavg_end"] = os.getloadavg()
    return result


def _case_holds(case: dict[str, Any], cases: list[dict[str, Any]]) -> SearchStep:
    cases.append(case)
    return SearchStep(case["pairs"], case["service_levels_missed"], case["saturated"])


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    """The summary table, the search's answer, the JSON file and the plot."""
    print("\n" + _table(result["cases"]))
    for case in result["cases"]:
        if "profile" in case:
            print(f"\nprofile, forward relay, {case['pairs']} pairs (own time):")
            for row in case["profile"][:12]:
                print(f"  {100 * row['share_of_total']:5.1f}%  {row['function']}")
    print(
        f"\nload average at end: {result['loadavg_end']}; pressure: share of the measured "
        "time some task on the machine waited for a CPU (Linux PSI); relay waited: share "
        "the relay's event loop was runnable but not running"
    )
    if "search" in result:
        print(describe_search(result["search"], "relay route (forwarding relay)"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"results written to {args.json}")
    if args.plot is not None:
        plot_relay_cases(result["cases"], args.plot, result["target"], result.get("search"))
        print(f"plot written to {args.plot}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (problem := check_args(args)) is not None:
        raise SystemExit(f"relay bench: {problem}")
    report(run(args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
