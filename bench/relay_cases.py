"""The relay workload's orchestration: start the processes of one load, warm up, measure, stop.

A case is N pairs on one route: ``forward`` (the service's relay route) or ``strict`` (its
strict route), through a ``chatguard serve`` started here or ``--target``; or ``naive``
(aiortc's MediaRelay in a process of its own, the baseline). Load generators report every
second (:mod:`bench.chat_load`, :mod:`bench.relay_procs`); :mod:`bench.relay_tally` sums what
falls inside the measured span and :mod:`bench.relay_meter` measures the relay meanwhile.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Final

from bench import provenance
from bench.chat_load import ChatLoadSpec, chat_load_main
from bench.procfs import cpu_pressure_us, cpu_seconds, percent_of_core
from bench.procs import call_sync
from bench.relay_media import Media, make_media
from bench.relay_meter import RelayMeter
from bench.relay_micro import micro_hub
from bench.relay_options import TARGET_STREAMS_PER_CORE
from bench.relay_procs import LoadSpec, loadgen_main, relay_main
from bench.relay_tally import Tally, added_latency_ms, bottleneck, fps_summary, packet_loss
from bench.results import (
    GroupLoss,
    GroupPackets,
    Latency,
    Loss,
    Packets,
    RelayCase,
    RelayResult,
    RelayTarget,
    RssKib,
    WorkerModeration,
)
from bench.search_cli import SearchStep, levels_from_args, run_search
from bench.service import (
    EmbeddedService,
    Endpoints,
    ServiceError,
    endpoints_from_target,
    free_port_run,
    read_stats,
    wait_for_relays,
    wait_until_up,
)
from bench.stats import summarize_ms
from bench.table import cell
from bench.workload import RunError

ROUTE: Final = {"forward": "relay", "strict": "strict"}
"""The service's route each mode measures (``naive`` has no service)."""


def run(args: argparse.Namespace, mode: str = "forward", media: Media | None = None) -> RelayResult:
    """Measure every case (or search for the capacity) and return every figure."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at start: {load} on {os.cpu_count()} CPUs", flush=True)
    _resolve_ice_address(args)
    try:
        media = media or make_media(args)
    except ValueError as exc:  # e.g. a bitrate the encoder would not honour
        raise RunError(f"cannot encode the clip: {exc}") from None
    clip = media.describe()
    print(
        f"clip: {clip.frames} frames {clip.codec} {clip.width}x{clip.height}@{clip.fps}, "
        f"{clip.bitrate_bps / 1e6:.2f} Mbit/s, {clip.packets_per_second:.0f} packets/s"
        f"{', + Opus audio' if clip.audio else ''}",
        flush=True,
    )
    levels = levels_from_args(args)
    result = RelayResult(
        benchmark="relay" if mode == "forward" else mode,
        service=args.target or "embedded (chatguard serve on this machine)",
        settings=provenance.settings(args),
        versions=provenance.versions(),
        machine=provenance.machine(),
        clip=clip,
        target=RelayTarget(
            streams_per_core=TARGET_STREAMS_PER_CORE,
            added_latency_p99_ms=levels.added_p99_ms,
            full_rate_fps=levels.min_fps,
            streams_at_full_rate_fraction=levels.stream_fraction,
        ),
    )
    if args.micro:
        micro = micro_hub()
        result.micro_hub_us_per_packet = micro.hub_us
        result.micro_hub_without_uplink_estimate_us_per_packet = micro.hub_without_estimate_us
        result.micro_uplink_estimate_us_per_packet = micro.estimate_us
        print(
            f"micro: ForwardingHub.on_rtp {micro.hub_us:.2f} µs/packet, "
            f"{micro.hub_without_estimate_us:.2f} without the uplink estimate; "
            f"the estimate alone {micro.estimate_us:.2f}"
        )
    if args.search:
        result.search = run_search(
            lambda n: _case_holds(run_case(mode, n, media, args, args.transport), result.cases),
            args,
        )
    else:
        for n in args.pairs:
            for transport in transports(args.transport):
                result.cases.append(run_case(mode, n, media, args, transport))
    if mode == "forward" and not args.no_naive and media.clip.codec == "vp8":
        for n in args.naive_pairs:
            result.cases.append(run_case("naive", n, media, args))
    result.loadavg_end = os.getloadavg()
    return result


def transports(option: str) -> tuple[str, ...]:
    """``--transport`` as the transports to measure, in order: ``both`` is UDP then TCP at
    each load, so the two see the machine in the same state as far as a shared one allows."""
    return ("udp", "tcp") if option == "both" else (option,)


def _case_holds(case: RelayCase, cases: list[RelayCase]) -> SearchStep:
    cases.append(case)
    return SearchStep(case.pairs, case.service_levels_missed, case.saturated)


def service_relay_config(args: argparse.Namespace) -> str:
    """The ``[relay]`` section of the service started here: ICE-TCP on free ports (one per
    worker; the default port may be another service's on this machine) and candidates on the
    users' one address, where the users' own are (stable, see ``bench.procs.pin_ice_address``),
    for UDP and TCP alike, so both transports measure the same service."""
    first = free_port_run(args.relay_workers)
    return f'\n[relay]\nice_tcp_port = {first}\ngather_from = ["{args.ice_address}"]\n'


def _resolve_ice_address(args: argparse.Namespace) -> None:
    """For a service here, one stable address: this machine's first IPv4 interface address
    (network namespaces other work creates come and go during a run). Not loopback: the relay
    refuses loopback candidates from clients, as it must from strangers. For --target, all."""
    if args.ice_address is None and args.target is None:
        import aioice.ice

        addresses = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
        if not addresses:
            raise SystemExit(
                "chatguard bench relay: no IPv4 interface address here; give --ice-address"
            )
        args.ice_address = addresses[0]


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


@dataclass(frozen=True)
class Cpu:
    """Who used how much CPU in the measured span."""

    relay_percent_of_core: float | None
    relay_measured_by: str
    worker_moderation: WorkerModeration | None
    loadgen_percent_of_core: list[float]
    measured_s: float
    relay_runqueue_wait_percent: float | None
    machine_cpu_pressure_percent: float | None


def run_case(
    mode: str, pairs: int, media: Media, args: argparse.Namespace, transport: str = "udp"
) -> RelayCase:
    """Connect ``pairs`` pairs (+ direct ones), warm up, measure, tear down.

    ``mode``: ``forward`` or ``strict`` (the service's route; started here unless
    ``--target``), or ``naive`` (aiortc's MediaRelay, UDP). ``transport``: how the users
    reach the service's relay, ``udp`` or ``tcp`` (ICE-TCP).
    """
    load_before = os.getloadavg()
    service: EmbeddedService | None = None
    if mode != "naive" and args.target is None:
        service = EmbeddedService(
            ["--route", ROUTE[mode], "--relay-workers", str(args.relay_workers)],
            media.service_config + service_relay_config(args),
        )
    try:
        if mode == "naive":
            transport = "udp"
            print(f"naive: connecting {pairs} pairs through aiortc's MediaRelay", flush=True)
            load = _start_naive_load(pairs, media, args)
        else:
            endpoints = (
                service.endpoints if service else endpoints_from_target(args.target, args.admin)
            )
            wait_until_up(endpoints.ws_url, args.connect_timeout)
            where = "here" if service else endpoints.ws_url
            print(
                f"{mode}: {2 * pairs} users joining the service ({where}) over {transport}",
                flush=True,
            )
            load = _start_service_load(
                endpoints, pairs, media, args, transport, local_relay=service is not None
            )
        measured, cpu, rss_loaded = _measure(mode, pairs, load, args)
        final = load.stop_relay()
        _check_route(mode, measured.routes)
        if mode != "naive":
            check_transport(transport, measured.legs_by_transport())
    finally:
        if service is not None:
            service.stop()
    up = sum(c[1] for c in load.connected)
    return _figures(
        mode,
        pairs,
        measured,
        cpu,
        args,
        peers_connected=f"{up}/{sum(c[2] for c in load.connected)}",
        relay_rss_kib=RssKib(load.rss_idle_kib, rss_loaded),
        service_stats=None if mode == "naive" else final,
        relay_counters=final if mode == "naive" else None,
        loadavg_before=load_before,
        transport=transport,
    )


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
    endpoints: Endpoints,
    pairs: int,
    media: Media,
    args: argparse.Namespace,
    transport: str,
    local_relay: bool,
) -> Load:
    workers = wait_for_relays(endpoints, 1, args.connect_timeout)
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
            transport=transport,
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


def check_transport(transport: str, legs: dict[str, int]) -> None:
    """Legs on another protocol than asked measured something else: say so."""
    other = {t: n for t, n in legs.items() if t != transport}
    if other:
        raise ServiceError(
            f"asked for {transport} legs, but the users' nominated ICE pairs are {legs}"
            + (
                " (does the service offer ICE-TCP? [relay] ice_tcp_port)"
                if transport == "tcp"
                else ""
            )
        )


def _check_route(mode: str, routes: Counter[str]) -> None:
    """A deployment that put the calls on another route measured something else: say so."""
    if mode == "naive" or not routes:
        return
    if routes.get(ROUTE[mode], 0) < sum(n for r, n in routes.items() if ":" not in r):
        raise ServiceError(
            f"the service put calls on routes {dict(routes)}, but this workload measures the "
            f"{ROUTE[mode]!r} route (start it with `chatguard serve --route {ROUTE[mode]}`, "
            "or configure the region the load generator's address falls in)"
        )


def _measure(mode: str, pairs: int, load: Load, args: argparse.Namespace) -> tuple[Tally, Cpu, int]:
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
    cpu = Cpu(
        relay_percent_of_core=relay_cpu,
        relay_measured_by="/proc" if load.meter.pids else "/stats",
        worker_moderation=load.meter.moderation(),
        loadgen_percent_of_core=[
            percent_of_core(a, cpu_seconds(p), wall)
            for p, a in zip(load.loadgen_pids, mark[1], strict=True)
        ],
        measured_s=wall,
        relay_runqueue_wait_percent=relay_wait,
        machine_cpu_pressure_percent=(
            None if psi_mark is None or psi_end is None else (psi_end - psi_mark) / wall / 1e4
        ),
    )
    return measured, cpu, rss_loaded


def _progress(mode: str, pairs: int, t: float, measuring: bool, w: Tally, relay_pct: float) -> None:
    fps = fps_summary(w.fps("relayed", min_media_s=0.5))
    rel = summarize_ms(w.latency_s["relayed"])
    direct = summarize_ms(w.latency_s["direct"])
    phase = "measure" if measuring else "warm-up"
    churn = f"  calls +{w.calls['started']}" if w.calls["started"] else ""
    print(
        f"[{t:5.1f}s {phase}] {mode:7} pairs {pairs:3d} streams {fps.streams:3d}  "
        f"fps {cell(fps.mean, '5.1f')} (min {cell(fps.min, '5.1f')})  "
        f"latency p50 {cell(rel.p50_ms, '6.2f')} p99 {cell(rel.p99_ms, '7.2f')} ms "
        f"(direct {cell(direct.p50_ms, '5.2f')}/{cell(direct.p99_ms, '6.2f')})  "
        f"relay CPU {relay_pct:5.1f}%{churn}",
        flush=True,
    )


def _figures(
    mode: str,
    pairs: int,
    t: Tally,
    cpu: Cpu,
    args: argparse.Namespace,
    peers_connected: str,
    relay_rss_kib: RssKib,
    service_stats: dict[str, Any] | None,
    relay_counters: dict[str, Any] | None,
    loadavg_before: tuple[float, float, float],
    transport: str,
) -> RelayCase:
    relayed = summarize_ms(t.latency_s["relayed"])
    direct = summarize_ms(t.latency_s["direct"])
    added = added_latency_ms(relayed, direct)
    fps_list = t.fps("relayed")
    streams = 2 * pairs
    relay_cpu = cpu.relay_percent_of_core
    per_stream = None if relay_cpu is None else relay_cpu / streams
    lag = summarize_ms(t.send_lag_s)
    missed = levels_from_args(args).failures(fps_list, added.p99_ms)
    packets = GroupPackets(t.packets("relayed"), t.packets("direct"))
    if packets.relayed.unsafe_frames:
        missed.append(f"{packets.relayed.unsafe_frames} unsafe frames reached a receiver")
    loss = GroupLoss(_loss(packets.relayed), _loss(packets.direct))
    return RelayCase(
        relay=mode,
        pairs=pairs,
        one_way_streams=streams,
        legs=2 * pairs,
        delivered_fps=fps_summary(fps_list),
        fps_per_stream=fps_list,
        service_levels_missed=missed,
        direct_fps=fps_summary(t.fps("direct")),
        latency_ms=Latency(relayed, direct, added),
        switch_ms=summarize_ms(t.switch_s),
        calls=t.call_counts(),
        routes=dict(t.routes),
        moderation_notices=dict(t.moderation),
        unsafe_frames_received=packets.relayed.unsafe_frames,
        errors=t.errors,
        relay_cpu_percent_of_core=relay_cpu,
        relay_cpu_measured_by=cpu.relay_measured_by,
        worker_moderation=cpu.worker_moderation,
        relay_cpu_percent_per_stream=per_stream,
        streams_per_core_at_this_cost=100.0 / per_stream if per_stream else None,
        loadgen_cpu_percent_of_core=cpu.loadgen_percent_of_core,
        loadgen_send_lag_ms=lag,
        loadgen_srtp_errors=sum(t.receive_errors.values()),
        packets=packets,
        packet_loss=loss,
        streams_without_frames=sum(f == 0 for f in fps_list),
        measured_s=cpu.measured_s,
        relay_runqueue_wait_percent=cpu.relay_runqueue_wait_percent,
        machine_cpu_pressure_percent=cpu.machine_cpu_pressure_percent,
        saturated=bottleneck(
            relay_cpu,
            cpu.loadgen_percent_of_core,
            lag.p90_ms,
            cpu.relay_runqueue_wait_percent or 0.0,
        ),
        peers_connected=peers_connected,
        relay_rss_kib=relay_rss_kib,
        memory_per_session_kib=(relay_rss_kib.loaded - relay_rss_kib.idle) / (2 * pairs),
        loadavg_before=loadavg_before,
        loadavg_after=os.getloadavg(),
        transport=transport,
        legs_by_transport=t.legs_by_transport(),
        service_stats=service_stats,
        relay_counters=relay_counters,
    )


def _loss(p: Packets) -> Loss:
    return Loss(packet_loss(p.sent, p.packets), packet_loss(p.audio_sent, p.audio_packets))
