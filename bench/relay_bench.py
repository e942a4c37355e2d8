"""Relay benchmark: N random-chat pairs on the relay route, both directions, audio and video.

Run ``chatguard bench relay --pairs 4,16,50`` (or ``python -m bench.relay_bench``). For each N:

* ``forward``: the service's relay route. The benchmark starts ``chatguard serve --route relay``
  on this machine with ``--relay-workers`` worker processes (default 1, so figures are per
  relay core), or drives an existing deployment (``--target URL``). Load-generator processes
  (:mod:`bench.chat_load`) run 2N simulated users that join through signaling, are paired,
  connect to the relay, replay a pre-encoded clip (VP8 or H.264, 640x480 or 1280x720, plus
  Opus audio) and press Next after a random dwell (``--next-after``), as random chat does.
* ``naive``: aiortc's ``MediaRelay`` (decode, re-encode) in a process of its own
  (:mod:`bench.relay_procs`), at ``--naive-pairs`` (small N: it collapses early): the
  baseline a forwarding relay is compared with.
* ``direct``: inside every case, pairs connected client to client without a relay.

It prints a progress line per second and, at the end, a table, and writes every figure as JSON
(default ``bench/results/relay.json``).

Figures, and why they are measured this way:

* delivered frame rate: complete frames per second at each receiver over the time it was in
  a call (from its first frame, or 3 s after pairing if none came: a stalled call counts);
  a stream holds full rate at >= 29 fps. Receivers never decode (complete = no sequence gap
  up to the marker); naive receivers decode, as a browser would have to.
* latency: from the send time each video packet carries (``abs-send-time``, which the relay
  forwards unchanged) to the arrival of the frame's last packet; the naive relay re-encodes,
  so its receivers decode and read each frame's barcode instead. Added latency = relayed minus
  direct percentile, same run.
* switch time: pairing to the new partner's first complete frame (what Next feels like).
* relay CPU and memory: the relay workers' own: from ``/proc`` when the service runs on this
  machine, else the figures the workers report in the deployment's ``/stats``. Per stream =
  CPU / one-way video streams (2 per pair); per session = (RSS loaded - RSS idle) / legs.
* loss: packets sent while in a call that never arrived, video and audio apart.

The load generators also report their own CPU and how late their senders ran, so a run says
which side saturated. ``--micro`` adds the relay's per-packet CPU without I/O.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from bench import provenance
from bench.capacity import ServiceLevels
from bench.chat_load import ChatLoadSpec, chat_load_main
from bench.media_peer import StreamWindow
from bench.plot import plot_relay_cases
from bench.procfs import (
    cpu_pressure_us,
    cpu_seconds,
    percent_of_core,
    rss_kib,
    run_delay_s,
)
from bench.procs import call_sync
from bench.relay_clip import FPS, AudioClip, Clip, encode_audio_clip, encode_clip
from bench.relay_procs import LoadSpec, loadgen_main, relay_main
from bench.search_cli import (
    SearchStep,
    add_search_options,
    check_search_args,
    comma_ints,
    describe_search,
    levels_from_args,
    run_search,
)
from bench.service import (
    EmbeddedService,
    Endpoints,
    ServiceError,
    endpoints_from_target,
    read_stats,
    wait_for_relays,
    wait_until_up,
)
from bench.stats import percentile, summarize_ms

FULL_RATE_FPS = 29.0
TARGET_STREAMS_PER_CORE = 100
TARGET_ADDED_P99_MS = 5.0


# ---------------------------------------------------------------------- figures


def added_latency_ms(relayed: dict[str, float], direct: dict[str, float]) -> dict[str, float]:
    """What the relay adds: relayed minus direct, percentile by percentile (ms)."""
    return {k: relayed[k] - direct[k] for k in ("p50_ms", "p90_ms", "p99_ms")}


GROUPS = ("relayed", "direct")
MIN_MEDIA_S = 1.0
"""A stream's frame rate is judged only over at least this much call time in the span."""


@dataclass
class Tally:
    """Load-generator reports summed over a span: per receiving stream frames and call time."""

    frames: dict[str, dict[tuple[int, int], int]] = field(
        default_factory=lambda: {g: {} for g in GROUPS}
    )
    media_s: dict[str, dict[tuple[int, int], float]] = field(
        default_factory=lambda: {g: {} for g in GROUPS}
    )
    latency_s: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    send_lag_s: list[float] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {g: Counter() for g in GROUPS})
    """Per group, the :attr:`StreamWindow.TOTALS`."""
    receive_errors: dict[int, int] = field(default_factory=dict)
    """Per worker, cumulative since the worker started."""
    calls: Counter[str] = field(default_factory=Counter)
    switch_s: list[float] = field(default_factory=list)
    routes: Counter[str] = field(default_factory=Counter)
    moderation: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, worker: int, report: dict[str, Any]) -> None:
        for group in GROUPS:
            part = report[group]
            frames, media = self.frames[group], self.media_s[group]
            for i, (n, s) in enumerate(zip(part["frames"], part["media_s"], strict=True)):
                frames[worker, i] = frames.get((worker, i), 0) + n
                media[worker, i] = media.get((worker, i), 0.0) + s
            self.latency_s[group].extend(part["latency_s"])
            for key in StreamWindow.TOTALS:
                self.counts[group][key] += part[key]
        self.send_lag_s.extend(report["send_lag_s"])
        self.receive_errors[worker] = report["receive_errors"]
        calls = report.get("calls")
        if calls is not None:
            for key in ("started", "reused", "nexts", "ended", "without_media", "error_count"):
                self.calls[key] += calls[key]
            self.switch_s.extend(calls["switch_s"])
            self.routes.update(calls["routes"])
            self.moderation.update(calls["moderation"])
            self.errors.extend(calls["errors"][: 20 - len(self.errors)])

    def fps(self, group: str, min_media_s: float = MIN_MEDIA_S) -> list[float]:
        """Frames per second of each receiving stream over the call time it had in the span."""
        return [
            self.frames[group][key] / s
            for key, s in sorted(self.media_s[group].items())
            if s >= min_media_s
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


# ---------------------------------------------------------------------- relay CPU and memory


class RelayMeter:
    """The relay's CPU and memory: its processes' /proc here, else the service's /stats; and
    the workers' own moderation figures (gate latency) from /stats where there is a service.

    Why both: /proc is exact and also gives run-queue waits, but only on the relay's own
    machine; a deployment elsewhere is measured by what its workers report every second.
    """

    def __init__(self, pids: list[int], stats_url: str | None) -> None:
        self.pids = pids
        self.stats_url = stats_url
        self._cpu_marks: list[float] = []
        self._wait_marks: list[float] = []
        self._stats_cpu: list[float] = []
        self._moderation: list[list[dict[str, Any]]] = []
        self._last = (time.monotonic(), self._cpu_total())

    def _cpu_total(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids)

    def _workers(self) -> list[dict[str, Any]]:
        assert self.stats_url is not None
        workers: list[dict[str, Any]] = read_stats(self.stats_url).get("relay_workers", [])
        return workers

    def rss_kib(self) -> int:
        if self.pids:
            return sum(rss_kib(p) for p in self.pids)
        return round(sum(float(w["rss_mib"]) for w in self._workers()) * 1024)

    def mark(self) -> None:
        """Start of the measured span."""
        self._cpu_marks = [cpu_seconds(p) for p in self.pids]
        self._wait_marks = [run_delay_s(p) for p in self.pids]
        self._stats_cpu = []
        self._moderation = []

    def sample(self) -> float:
        """About once a second: the relay's CPU in % of a core since the last sample.

        Remote: what the workers last reported (over their own last second), kept for
        :meth:`span`.
        """
        workers = self._workers() if self.stats_url is not None else []
        reports = [w["moderation"] for w in workers if w.get("moderation")]
        if reports:
            self._moderation.append(reports)
        if not self.pids:
            total = float(sum(w["cpu_percent"] for w in workers))
            self._stats_cpu.append(total)
            return total
        now, cpu = time.monotonic(), self._cpu_total()
        (then, before), self._last = self._last, (now, cpu)
        return percent_of_core(before, cpu, now - then)

    def span(self, wall_s: float) -> tuple[float, float | None]:
        """(CPU in % of a core, run-queue wait in % of the span or None) since :meth:`mark`."""
        if not self.pids:
            cpu = sum(self._stats_cpu) / len(self._stats_cpu) if self._stats_cpu else math.nan
            return cpu, None
        cpu = sum(
            percent_of_core(a, cpu_seconds(p), wall_s)
            for p, a in zip(self.pids, self._cpu_marks, strict=True)
        )
        waited = max(
            100 * (run_delay_s(p) - w) / wall_s
            for p, w in zip(self.pids, self._wait_marks, strict=True)
        )
        return cpu, waited

    def moderation(self) -> dict[str, Any] | None:
        """The workers' strict-route reports since :meth:`mark`, or None if there were none."""
        return summarize_moderation(self._moderation)


def summarize_moderation(samples: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any] | None:
    """Per-second worker reports (each a list, one per worker) over a span, in a few figures.

    The gate's p99 is the worst second's worst worker (a per-second p99 cannot be averaged
    into a span's p99; the worst is the honest bound), its p50 the median second's.
    """
    if not samples:
        return None
    p50s = sorted(r["gate_p50_ms"] for s in samples for r in s if r["gate_p50_ms"] is not None)
    p99s = [r["gate_p99_ms"] for s in samples for r in s if r["gate_p99_ms"] is not None]
    return {
        "seconds": len(samples),
        "streams": max(sum(r["streams"] for r in s) for s in samples),
        "classified_per_s": sum(r["classified_per_s"] for s in samples for r in s) / len(samples),
        "withheld_per_s": sum(r["withheld_per_s"] for s in samples for r in s) / len(samples),
        "no_verdict": sum(r["no_verdict"] for s in samples for r in s),
        "gate_p50_ms_median_second": p50s[len(p50s) // 2] if p50s else None,
        "gate_p99_ms_worst_second": max(p99s) if p99s else None,
    }


# ---------------------------------------------------------------------- one case


@dataclass
class Media:
    """What every simulated client sends."""

    clip: Clip
    audio: AudioClip | None
    unsafe: frozenset[int] = frozenset()
    """Clip indexes a receiver must never get (strict route)."""
    service_config: str = ""
    """TOML for the service started here, e.g. a policy that makes those frames unsafe."""


@dataclass
class Load:
    """The processes of one case (load generators, maybe a relay) and how to measure them."""

    ctls: list[Connection]
    loadgen_pids: list[int]
    meter: RelayMeter
    rss_idle_kib: int
    """The relay's memory before any client of this case connected."""
    connected: list[tuple[Any, ...]]
    stop_relay: Callable[[], dict[str, Any]]


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


def _split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as whole numbers allow."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def _start_service_load(
    endpoints: Endpoints, pairs: int, media: Media, args: argparse.Namespace, local_relay: bool
) -> Load:
    workers = wait_for_relays(endpoints.stats_url, 1, args.connect_timeout)
    relay_pids = [w["pid"] for w in workers] if local_relay else []
    meter = RelayMeter(relay_pids, endpoints.stats_url)
    rss_idle = meter.rss_kib()
    ctx = mp.get_context("spawn")
    ctls, procs, pids = [], [], []
    for i, users in enumerate(_split(2 * pairs, max(1, min(args.loadgen_procs, pairs)))):
        ctl, ctl_child = ctx.Pipe()
        spec = ChatLoadSpec(
            url=endpoints.ws_url,
            users=users,
            clip=media.clip,
            audio=media.audio,
            dwell_s=args.next_after,
            seed=args.seed * 1000 + i,
            ice_address=args.ice_address,
            unsafe=media.unsafe,
            connect_timeout_s=args.connect_timeout,
        )
        proc = ctx.Process(target=chat_load_main, args=(spec, ctl_child), daemon=True)
        pids.append(_launch(proc, args.nice))
        procs.append(proc)
        ctls.append(ctl)
    connected = _connected(ctls)

    def stop() -> dict[str, Any]:
        for ctl in ctls:
            ctl.send("stop")
        _drain_until_done(ctls)
        for proc in procs:
            proc.join(20)
        return read_stats(endpoints.stats_url)

    return Load(ctls, pids, meter, rss_idle, connected, stop)


def _start_naive_load(pairs: int, media: Media, args: argparse.Namespace) -> Load:
    """aiortc's MediaRelay in a process of its own, load generators wired to it by pipes."""
    ctx = mp.get_context("spawn")
    relay_ctl, relay_ctl_child = ctx.Pipe()
    n_workers = max(1, min(args.loadgen_procs, pairs))
    links = [ctx.Pipe() for _ in range(n_workers)]
    relay = ctx.Process(
        target=relay_main,
        args=([relay_ctl_child, *(r for r, _ in links)], args.ice_address or "127.0.0.1"),
        daemon=True,
    )
    relay_pid = _launch(relay, args.nice)
    call_sync(relay_ctl, "counters")  # ready
    meter = RelayMeter([relay_pid], None)
    rss_idle = meter.rss_kib()
    ctls, procs, pids = [], [], []
    for i, ((_, to_relay), n) in enumerate(zip(links, _split(pairs, n_workers), strict=True)):
        ctl, ctl_child = ctx.Pipe()
        spec = LoadSpec(media.clip, n, args.seed * 1000 + i, args.ice_address or "127.0.0.1")
        proc = ctx.Process(target=loadgen_main, args=(spec, to_relay, ctl_child), daemon=True)
        pids.append(_launch(proc, args.nice))
        procs.append(proc)
        ctls.append(ctl)
    connected = _connected(ctls)
    for ctl in ctls:
        ctl.send("start")

    def stop() -> dict[str, Any]:
        for ctl in ctls:
            ctl.send("stop")
        _drain_until_done(ctls)
        counters: dict[str, Any] = call_sync(relay_ctl, "stop")
        relay.join(20)
        for proc in procs:
            proc.join(20)
        return counters

    return Load(ctls, pids, meter, rss_idle, connected, stop)


def _connected(ctls: list[Connection]) -> list[tuple[Any, ...]]:
    """Each load generator's ``connected`` message; a clear error if one died before it."""
    try:
        return [ctl.recv() for ctl in ctls]
    except EOFError:
        raise ServiceError(
            "a load-generator process exited before its users connected (its traceback is above)"
        ) from None


def _drain_until_done(ctls: list[Connection]) -> None:
    """Wait for every load generator's goodbye; reports after the measured span don't count."""
    for ctl in ctls:
        while ctl.recv()[0] != "done":
            pass


def run_case(mode: str, pairs: int, media: Media, args: argparse.Namespace) -> dict[str, Any]:
    """Connect ``pairs`` pairs (+ direct ones), warm up, measure, tear down.

    ``mode``: ``forward`` or ``strict`` (the service's route; started here unless
    ``--target``), or ``naive`` (aiortc's MediaRelay).
    """
    load_before = os.getloadavg()
    service: EmbeddedService | None = None
    if mode != "naive" and args.target is None:
        service = EmbeddedService(
            ["--route", _ROUTE[mode], "--relay-workers", str(args.relay_workers)],
            media.service_config,
        )
    try:
        if mode == "naive":
            print(f"naive: connecting {pairs} pairs through aiortc's MediaRelay", flush=True)
            load = _start_naive_load(pairs, media, args)
        else:
            endpoints = service.endpoints if service else endpoints_from_target(args.target)
            wait_until_up(endpoints.ws_url, args.connect_timeout)
            where = "here" if service else endpoints.ws_url
            print(f"{mode}: {2 * pairs} users joining the service ({where})", flush=True)
            load = _start_service_load(
                endpoints, pairs, media, args, local_relay=service is not None
            )
        rss_idle = load.rss_idle_kib
        measured, cpu, rss_loaded = _measure(mode, pairs, load, args)
        final = load.stop_relay()
        _check_route(mode, measured.routes)
    finally:
        if service is not None:
            service.stop()
    up = sum(c[1] for c in load.connected)
    result = _figures(mode, pairs, measured, cpu, args)
    result.update(
        {
            "peers_connected": f"{up}/{sum(c[2] for c in load.connected)}",
            "relay_rss_kib": {"idle": rss_idle, "loaded": rss_loaded},
            "memory_per_session_kib": (rss_loaded - rss_idle) / (2 * pairs),
            "relay_counters" if mode == "naive" else "service_stats": final,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        }
    )
    return result


_ROUTE = {"forward": "relay", "strict": "strict"}


def _check_route(mode: str, routes: Counter[str]) -> None:
    """A deployment that put the calls on another route measured something else: say so."""
    if mode == "naive" or not routes:
        return
    if routes.get(_ROUTE[mode], 0) < sum(n for r, n in routes.items() if ":" not in r):
        raise ServiceError(
            f"the service put calls on routes {dict(routes)}, but this workload measures the "
            f"{_ROUTE[mode]!r} route (start it with `chatguard serve --route {_ROUTE[mode]}`, "
            "or configure the region the load generator's address falls in)"
        )


def _measure(
    mode: str, pairs: int, load: Load, args: argparse.Namespace
) -> tuple[Tally, dict[str, Any], int]:
    """Progress lines every second; sums reports that arrive inside the measured span.

    The warm-up starts once every load generator said its users are connected, so a short
    ``--warmup`` never counts connection time as a missed load.
    """
    started = time.monotonic()
    measure_from = started + args.warmup
    measure_to = measure_from + args.duration
    measured, window = Tally(), Tally()
    progress_at = started
    mark: tuple[float, list[float]] | None = None
    psi_mark: int | None = None
    rss_loaded = 0
    while (now := time.monotonic()) < measure_to:
        for conn in wait(load.ctls, timeout=0.1):
            assert isinstance(conn, Connection)
            kind, *rest = conn.recv()
            if kind != "window":
                continue
            report = rest[0]
            worker = load.ctls.index(conn)
            window.add(worker, report)
            if report["start"] >= measure_from:  # whole report inside the measured span
                measured.add(worker, report)
        if mark is None and now >= measure_from:
            load.meter.mark()
            mark = (now, [cpu_seconds(p) for p in load.loadgen_pids])
            psi_mark = cpu_pressure_us()
        if now - progress_at >= 1.0:
            relay_pct = load.meter.sample()
            _progress(mode, pairs, now - started, now >= measure_from, window, relay_pct)
            progress_at, window = now, Tally()
            rss_loaded = max(rss_loaded, load.meter.rss_kib())
    end = time.monotonic()
    psi_end = cpu_pressure_us()
    assert mark is not None
    wall = end - mark[0]
    relay_cpu, relay_wait = load.meter.span(wall)
    loadgen_waits = [100 * run_delay_s(p) for p in load.loadgen_pids]
    cpu = {
        "relay_percent_of_core": relay_cpu,
        "relay_measured_by": "/proc" if load.meter.pids else "/stats",
        "worker_moderation": load.meter.moderation(),
        "loadgen_percent_of_core": [
            percent_of_core(a, cpu_seconds(p), wall)
            for p, a in zip(load.loadgen_pids, mark[1], strict=True)
        ],
        "measured_s": wall,
        "relay_runqueue_wait_percent": relay_wait,
        "loadgen_runqueue_wait_percent_since_start": [w / (end - started) for w in loadgen_waits],
        "machine_cpu_pressure_percent": (
            None if psi_mark is None or psi_end is None else (psi_end - psi_mark) / wall / 1e4
        ),
    }
    return measured, cpu, rss_loaded


def _progress(mode: str, pairs: int, t: float, measuring: bool, w: Tally, relay_pct: float) -> None:
    fps = fps_summary(w.fps("relayed", min_media_s=0.5))
    rel = summarize_ms(w.latency_s["relayed"])
    direct = summarize_ms(w.latency_s["direct"])
    phase = "measure" if measuring else "warm-up"
    churn = f"  calls +{w.calls['started']}" if w.calls["started"] else ""
    print(
        f"[{t:5.1f}s {phase}] {mode:7} pairs {pairs:3d} streams {fps['streams']:3d}  "
        f"fps {fps['mean']:5.1f} (min {fps['min']:5.1f})  "
        f"latency p50 {rel['p50_ms']:6.2f} p99 {rel['p99_ms']:7.2f} ms "
        f"(direct {direct['p50_ms']:5.2f}/{direct['p99_ms']:6.2f})  "
        f"relay CPU {relay_pct:5.1f}%{churn}",
        flush=True,
    )


def _figures(
    mode: str, pairs: int, t: Tally, cpu: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    relayed = summarize_ms(t.latency_s["relayed"])
    direct = summarize_ms(t.latency_s["direct"])
    added = added_latency_ms(relayed, direct)
    fps_list = t.fps("relayed")
    streams = 2 * pairs
    per_stream = cpu["relay_percent_of_core"] / streams
    lag = summarize_ms(t.send_lag_s)
    missed = levels_from_args(args).failures(fps_list, added["p99_ms"])
    leaked = t.counts["relayed"]["unsafe_frames"]
    if leaked:
        missed.append(f"{leaked} unsafe frames reached a receiver")
    loss = {
        g: {
            "video": packet_loss(t.counts[g]["sent"], t.counts[g]["packets"]),
            "audio": packet_loss(t.counts[g]["audio_sent"], t.counts[g]["audio_packets"]),
        }
        for g in GROUPS
    }
    relay_wait = cpu["relay_runqueue_wait_percent"]
    return {
        "relay": mode,
        "pairs": pairs,
        "one_way_streams": streams,
        "legs": 2 * pairs,
        "delivered_fps": fps_summary(fps_list),
        "fps_per_stream": fps_list,
        "service_levels_missed": missed,
        "direct_fps": fps_summary(t.fps("direct")),
        "latency_ms": {"relayed": relayed, "direct": direct, "added": added},
        "switch_ms": summarize_ms(t.switch_s),
        "calls": dict(t.calls),
        "routes": dict(t.routes),
        "moderation_notices": dict(t.moderation),
        "unsafe_frames_received": leaked,
        "errors": t.errors,
        "relay_cpu_percent_of_core": cpu["relay_percent_of_core"],
        "relay_cpu_measured_by": cpu["relay_measured_by"],
        "worker_moderation": cpu["worker_moderation"],
        "relay_cpu_percent_per_stream": per_stream,
        "streams_per_core_at_this_cost": 100.0 / per_stream if per_stream > 0 else math.inf,
        "loadgen_cpu_percent_of_core": cpu["loadgen_percent_of_core"],
        "loadgen_send_lag_ms": lag,
        "loadgen_srtp_errors": sum(t.receive_errors.values()),
        "packets": {g: dict(t.counts[g]) for g in GROUPS},
        "packet_loss": loss,
        "streams_without_frames": sum(f == 0 for f in fps_list),
        "measured_s": cpu["measured_s"],
        "relay_runqueue_wait_percent": relay_wait,
        "machine_cpu_pressure_percent": cpu["machine_cpu_pressure_percent"],
        "saturated": bottleneck(
            cpu["relay_percent_of_core"],
            cpu["loadgen_percent_of_core"],
            lag["p90_ms"],
            relay_wait or 0.0,
        ),
    }


# ---------------------------------------------------------------------- micro (no I/O)


def micro_hub_us(n: int = 30_000) -> float:
    """µs per packet for ``ForwardingHub.on_rtp`` (stats, keyframe cache, forwarder, copy)."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from relay.forwarding_hub import ForwardingHub
    from relay.legs import NegotiatedMedia

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
    hub.pair(a, b)
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
        on_rtp(a, data, i * 0.0001)
    dt = time.perf_counter() - t0
    assert b.sent == n, (b.sent, hub.dropped)
    return dt / n * 1e6


# ---------------------------------------------------------------------- CLI


def dwell_range(text: str) -> tuple[float, float] | None:
    """``--next-after``: ``LO:HI`` seconds (uniform), ``S`` (fixed), or ``0``/``off`` (no Next)."""
    if text in ("0", "off", "none"):
        return None
    lo_text, _, hi_text = text.partition(":")
    try:
        lo, hi = float(lo_text), float(hi_text or lo_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give seconds as LO:HI (e.g. 10:30), one number, or off"
        ) from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 < LO <= HI")
    return lo, hi


SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
DEFAULT_BITRATE = {
    ("vp8", "640x480"): 1_000_000,
    ("h264", "640x480"): 1_000_000,
    ("vp8", "1280x720"): 1_500_000,  # the most aiortc's VP8 encoder allows
    ("h264", "1280x720"): 2_500_000,
}

DESCRIPTION = (
    "Relay route under random-chat load: 2N simulated users join the service through "
    "signaling, are paired, connect through the relay, send pre-encoded video (VP8 or H.264, "
    "640x480 or 1280x720 at 30 fps) and Opus audio both ways, and press Next after a random "
    "dwell. Starts `chatguard serve --route relay` here (one relay worker by default, so "
    "figures are per relay core) or drives --target. Compared in the same run with pairs "
    "connected directly (the latency baseline) and with aiortc's naive MediaRelay."
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.relay_bench", description=DESCRIPTION)
    add_options(p)
    return p


def add_options(p: argparse.ArgumentParser) -> None:
    """The relay workload's options, shared by this module's CLI and ``chatguard bench relay``."""
    p.add_argument(
        "--pairs",
        type=comma_ints,
        default=[4, 16],
        help="comma-separated numbers of pairs to measure, e.g. 4,16,50 (default 4,16); "
        "with --search, the first is where the search starts",
    )
    p.add_argument(
        "--naive-pairs",
        type=comma_ints,
        default=[1, 2],
        help="pairs for the naive aiortc relay, the baseline (default 1,2; it collapses early; "
        "VP8 only)",
    )
    p.add_argument("--no-naive", action="store_true", help="skip the naive relay")
    p.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per load (default 10)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=4.0,
        help="seconds per load between every user having media and measuring (default 4)",
    )
    add_load_options(p)
    p.add_argument("--micro", action="store_true", help="also time ForwardingHub.on_rtp alone")
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
        help="also draw frame rate and added latency against pairs, relay route and naive "
        "baseline, as a PNG",
    )
    add_search_options(p, ServiceLevels(added_p99_ms=TARGET_ADDED_P99_MS))


def add_load_options(p: argparse.ArgumentParser) -> None:
    """Options of the service, the simulated users and their clip (relay route)."""
    group = add_service_options(p)
    group.add_argument(
        "--codec", choices=("vp8", "h264"), default="vp8", help="video codec (default vp8)"
    )
    group.add_argument(
        "--size", choices=tuple(SIZES), default="640x480", help="video size (default 640x480)"
    )
    group.add_argument(
        "--bitrate",
        type=int,
        help="video bitrate in bit/s (default 1000000 at 640x480; at 1280x720 1500000 for "
        "VP8, the most aiortc's encoder allows, 2500000 for H.264)",
    )
    group.add_argument(
        "--clip-seconds",
        type=float,
        default=4.0,
        help="length of the clip encoded once at start and replayed in a loop, at most 8 "
        "(default 4)",
    )
    group.add_argument("--seed", type=int, default=1, help="random seed of the load (default 1)")


def add_service_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Options of the service and the simulated users, shared by the relay and strict routes."""
    group = p.add_argument_group("service and load")
    group.add_argument(
        "--target",
        metavar="URL",
        help="an existing deployment, e.g. http://HOST:8080 (its /ws and /stats are used; "
        "its relays must be reachable over UDP from here); default: start `chatguard serve` "
        "on this machine",
    )
    group.add_argument(
        "--relay-workers",
        type=int,
        default=1,
        help="relay worker processes of the service started here (default 1: per-core figures)",
    )
    group.add_argument(
        "--next-after",
        type=dwell_range,
        default=(10.0, 30.0),
        metavar="LO:HI",
        help="each pair presses Next after a uniform random LO..HI seconds (default 10:30); "
        "'off' for calls that last the whole run",
    )
    group.add_argument("--no-audio", action="store_true", help="video only (default: + Opus)")
    group.add_argument(
        "--loadgen-procs", type=int, default=1, help="load-generator processes (default 1)"
    )
    group.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the service and for every user's first call (default 60)",
    )
    group.add_argument(
        "--ice-address",
        help="the only address the simulated users gather ICE candidates on (default "
        "127.0.0.1 for a service on this machine, every interface for --target)",
    )
    group.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value for the load generators and the naive relay, e.g. -5 on a shared "
        "machine (negative needs root; default 0)",
    )
    return group


def _table(cases: list[dict[str, Any]]) -> str:
    head = (
        f"{'relay':7} {'pairs':>5} {'streams':>7} {'fps mean/min':>13} {'full':>7} "
        f"{'relayed p50/p99 ms':>19} {'direct p50/p99':>15} {'added p50/p99':>14} "
        f"{'switch p50':>10} {'relay CPU':>9} {'CPU/stream':>10} {'str/core':>8} "
        f"{'KiB/sess':>8} {'loadgen CPU':>11} {'loss v/a':>13} {'saturated':>14} "
        f"{'pressure':>8}"
    )
    lines = [head, "-" * len(head)]
    for c in cases:
        lat = c["latency_ms"]
        fps = c["delivered_fps"]
        loss = c["packet_loss"]["relayed"]
        lines.append(
            f"{c['relay']:7} {c['pairs']:5d} {c['one_way_streams']:7d} "
            f"{fps['mean']:6.1f}/{fps['min']:5.1f} "
            f"{fps['streams_at_full_rate']:>3d}/{fps['streams']:<3d} "
            f"{lat['relayed']['p50_ms']:8.2f}/{lat['relayed']['p99_ms']:8.2f}  "
            f"{lat['direct']['p50_ms']:6.2f}/{lat['direct']['p99_ms']:7.2f}  "
            f"{lat['added']['p50_ms']:6.2f}/{lat['added']['p99_ms']:6.2f}  "
            f"{c['switch_ms']['p50_ms']:8.0f}ms "
            f"{c['relay_cpu_percent_of_core']:8.1f}% {c['relay_cpu_percent_per_stream']:9.2f}% "
            f"{c['streams_per_core_at_this_cost']:8.0f} {c['memory_per_session_kib']:8.0f} "
            f"{'+'.join(f'{x:.0f}' for x in c['loadgen_cpu_percent_of_core']):>10}% "
            f"{_loss(loss['video']):>6}/{_loss(loss['audio']):>6} "
            f"{c['saturated']:>14} {_pct(c['machine_cpu_pressure_percent']):>8}"
        )
    return "\n".join(lines)


def _dwell_text(dwell: tuple[float, float] | None) -> str:
    return "never" if dwell is None else f"{dwell[0]:g}-{dwell[1]:g} s"


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
    if not 0 < args.clip_seconds <= 8:
        return "--clip-seconds must be in (0, 8]"
    return check_service_args(args) or check_search_args(args)


def check_service_args(args: argparse.Namespace) -> str | None:
    """What is wrong with :func:`add_service_options`' options, in words, or None."""
    if args.loadgen_procs < 1 or args.relay_workers < 1:
        return "--loadgen-procs and --relay-workers must be >= 1"
    if args.connect_timeout <= 0:
        return "--connect-timeout must be > 0"
    if args.target is not None:
        try:
            endpoints_from_target(args.target)
        except ValueError as exc:
            return str(exc)
    return None


def make_media(args: argparse.Namespace) -> Media:
    """Encode the clip (and the audio) every simulated user replays: once, before any timing."""
    width, height = SIZES[args.size]
    bitrate = args.bitrate or DEFAULT_BITRATE[args.codec, args.size]
    clip = encode_clip(args.clip_seconds, bitrate, codec=args.codec, width=width, height=height)
    return Media(clip, None if args.no_audio else encode_audio_clip())


STRICT_SERVICE_CONFIG = """
[moderation]
block = {{ {block} }}
strikes_to_ban = 1000000
"""
"""The strict service started here: the clip's test policy, and no bans: every simulated user
shows the unsafe segment every loop of the clip, all from one address, and a service that
banned them would end the benchmark (a deployment under --target needs the same)."""


def strict_media(args: argparse.Namespace) -> Media:
    """The strict benchmark's clip (photographs with cuts, one segment unsafe under its test
    policy) and which of its frames must never reach a receiver."""
    from bench.strict_bench import POLICY, UNSAFE, strict_clip

    block = ", ".join(f"{label} = {score}" for label, score in POLICY.thresholds.items())
    config = STRICT_SERVICE_CONFIG.format(block=block)
    return Media(strict_clip(), None if args.no_audio else encode_audio_clip(), UNSAFE, config)


def describe_media(media: Media) -> dict[str, Any]:
    clip = media.clip
    return {
        "codec": clip.codec,
        "width": clip.width,
        "height": clip.height,
        "fps": FPS,
        "frames": len(clip.payloads),
        "bitrate_bps": clip.bitrate,
        "packets_per_second": clip.packets_per_second,
        "keyframe_interval_frames": clip.keyframe_interval,
        "audio": media.audio is not None,
    }


def _resolve_ice_address(args: argparse.Namespace) -> None:
    """Loopback for a service here (stable while other work adds interfaces), else all."""
    if args.ice_address is None and args.target is None:
        args.ice_address = "127.0.0.1"


def run(
    args: argparse.Namespace, mode: str = "forward", media: Media | None = None
) -> dict[str, Any]:
    """Measure every case (or search for the capacity) and return every figure."""
    print(f"load average at start: {os.getloadavg()} on {os.cpu_count()} CPUs", flush=True)
    _resolve_ice_address(args)
    try:
        media = media or make_media(args)
    except ValueError as exc:  # e.g. a bitrate the encoder would not honour
        raise SystemExit(f"relay bench: cannot encode the clip: {exc}") from None
    clip = describe_media(media)
    print(
        f"clip: {clip['frames']} frames {clip['codec']} {clip['width']}x{clip['height']}@{FPS}, "
        f"{clip['bitrate_bps'] / 1e6:.2f} Mbit/s, {clip['packets_per_second']:.0f} packets/s"
        f"{', + Opus audio' if clip['audio'] else ''}",
        flush=True,
    )
    levels = levels_from_args(args)
    result: dict[str, Any] = {
        "benchmark": "relay" if mode == "forward" else mode,
        "service": args.target or "embedded (chatguard serve on this machine)",
        "settings": provenance.settings(args),
        "versions": provenance.versions(),
        "machine": provenance.machine(),
        "cpus": os.cpu_count(),
        "clip": clip,
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
    try:
        if args.search:
            result["search"] = run_search(
                lambda n: _case_holds(run_case(mode, n, media, args), result["cases"]), args
            )
        else:
            for n in args.pairs:
                result["cases"].append(run_case(mode, n, media, args))
        if mode == "forward" and not args.no_naive and media.clip.codec == "vp8":
            for n in args.naive_pairs:
                result["cases"].append(run_case("naive", n, media, args))
    except ServiceError as exc:
        raise SystemExit(f"relay bench: {exc}") from None
    result["loadavg_end"] = os.getloadavg()
    return result


def _case_holds(case: dict[str, Any], cases: list[dict[str, Any]]) -> SearchStep:
    cases.append(case)
    return SearchStep(case["pairs"], case["service_levels_missed"], case["saturated"])


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    """The summary table, the search's answer, the JSON file and the plot."""
    print("\n" + _table(result["cases"]))
    for case in result["cases"]:
        calls = case.get("calls") or {}
        if calls:
            print(
                f"{case['relay']} {case['pairs']} pairs: {calls.get('started', 0)} calls started "
                f"({calls.get('reused', 0)} on a kept relay connection), "
                f"{calls.get('without_media', 0)} without media; routes {case['routes']}"
                + (f"; errors: {case['errors'][:3]}" if case["errors"] else "")
            )
        if (mod := case.get("worker_moderation")) is not None:
            print(
                f"{case['relay']} {case['pairs']} pairs, the workers' own moderation figures: "
                f"{mod['classified_per_s']:.1f} classifications/s, gate p50 "
                f"{mod['gate_p50_ms_median_second']} ms (median second), p99 "
                f"{mod['gate_p99_ms_worst_second']} ms (worst second), "
                f"{mod['no_verdict']} without verdict"
            )
    print(
        f"\nload average at end: {result['loadavg_end']}; pressure: share of the measured "
        "time some task on the machine waited for a CPU (Linux PSI); switch: pairing to the "
        "new partner's first frame"
    )
    if "search" in result:
        print(describe_search(result["search"], f"{result['benchmark']} route"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"results written to {args.json}")
    if args.plot is not None:
        clip = result["clip"]
        title = (
            f"chatguard bench {result['benchmark']}: {clip['width']}x{clip['height']}@{FPS} "
            f"{clip['codec'].upper()}{' + Opus' if clip['audio'] else ''}, both directions, "
            f"Next after {_dwell_text(args.next_after)}"
        )
        plot_relay_cases(result["cases"], args.plot, result["target"], result.get("search"), title)
        print(f"plot written to {args.plot}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (problem := check_args(args)) is not None:
        raise SystemExit(f"relay bench: {problem}")
    report(run(args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
