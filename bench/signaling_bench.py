"""Signaling load benchmark: N concurrent WebSocket clients cycling join -> pair -> SDP/ICE -> next.

Run ``chatguard bench signaling --clients 5000 --duration 30``. It starts ``chatguard serve``
(signaling alone: no relay worker) in its own process (or targets ``--target
ws://HOST:PORT/ws``), opens the clients from ``--processes`` load-generator processes, and
prints a progress line every second: connected clients, pairs per second, and pairing
latency. At the end it prints a summary and writes JSON.
Several loads (``--clients 100,1000``) are measured one after the other, each against a fresh
service; ``--search`` finds the most pairs whose pairing latency p99 stays under the target.
The service runs as ``--procs N`` processes, its pool in memory or in Redis (``--redis URL``,
or ``--redis local`` for a throw-away ``redis-server``); ``--compare memory,redis,redis-procs2``
measures each of those setups in one run. With Redis, Redis's own counters give its commands
and round trips per pairing, and every setup is also measured with ``--waiting-clients`` users
waiting (memory per waiting user in the service and in Redis).

Pairing latency is measured where it is the server's doing: from a client's join/next to its
``paired`` message, for the member of each pair that acted last (the other was already waiting;
``bench.signaling_load.PairingClock``). Time spent queued because nobody else was free is
reported separately as queue time.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import resource
import time
import urllib.parse
from dataclasses import dataclass
from typing import ClassVar, Final

from bench import provenance
from bench.capacity import LevelOption, Load
from bench.plot import plot_signaling_cases
from bench.procfs import cpu_pressure_us, cpu_seconds, process_tree, rss_kib, run_delay_s
from bench.redis_probe import LocalRedis, RedisCounters, bytes_under, read_counters
from bench.results import (
    RedisWork,
    SetupResult,
    SignalingCase,
    SignalingResult,
    WaitingProbe,
)
from bench.search_cli import (
    SearchStep,
    add_search_options,
    check_search_args,
    comma_ints,
    describe_search,
    levels_from_args,
    run_search,
    saturated,
)
from bench.service import EmbeddedService, wait_until_up
from bench.signaling_load import COMPRESSION_CHOICES, PairingClock, hold_waiting, worker_main
from bench.signaling_setups import Setup, comma_setups, new_key_prefix, service_config
from bench.stats import below, summarize_ms
from bench.table import DASH, cell
from bench.workload import Workload, add_output_options, check_output, write_json

TARGET_PAIRING_P99_MS = 50.0
"""The signaling service's target: pairing latency p99 under 50 ms (with 5000 clients)."""
WAITING_FALLBACK_S = 3600.0
"""The interest fallback of the service the waiting users are measured on: longer than the
measurement, so that nobody is paired with anyone."""


@dataclass(frozen=True)
class SignalingLevels:
    """What "holds" means for signaling: every client connected, none saw an error, and pairing
    latency p99 under the target. Connections and errors are not options: a service that
    refuses clients or drops them has no pairing latency worth the name."""

    max_pairing_p99_ms: float = TARGET_PAIRING_P99_MS

    OPTIONS: ClassVar[tuple[LevelOption, ...]] = (
        LevelOption(
            "max-pairing-p99-ms",
            "max_pairing_p99_ms",
            "pairing latency p99 in ms, join/Next to paired (the signaling target)",
        ),
    )
    LOAD: ClassVar[Load] = Load("pairs", (2, "clients"), 5000)

    def words(self) -> str:
        return (
            f"pairing latency p99 < {self.max_pairing_p99_ms:g} ms with every client "
            "connected and no errors"
        )

    def failures(self, case: SignalingCase) -> list[str]:
        """Which levels one measured load misses, in words."""
        misses = []
        if case.peak_connected_clients < case.clients_requested:
            misses.append(
                f"{case.peak_connected_clients} of {case.clients_requested} clients connected"
            )
        if case.errors:
            example = next(iter(case.error_examples), "")
            misses.append(f"{case.errors} client errors, e.g. {example}")
        p99 = case.pairing_latency.p99_ms
        if p99 is None:
            misses.append("nobody was paired: no pairing latency")
        elif not below(p99, self.max_pairing_p99_ms):
            misses.append(f"pairing latency p99 {p99:.1f} ms >= {self.max_pairing_p99_ms:g} ms")
        return misses


def check_target(url: str | None) -> str | None:
    """What is wrong with a ``--target`` URL, or None; checked before connecting."""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return f"--target {url!r}: give the service's WebSocket URL, e.g. ws://HOST:8080/ws"
    return None


def _children_cpu_seconds() -> float:
    """User + system CPU time of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def setups(args: argparse.Namespace) -> list[Setup]:
    """The setups to measure: ``--compare``'s, or the one ``--procs``/``--redis`` describe."""
    return args.compare or [Setup(args.procs, args.redis is not None)]


def run(args: argparse.Namespace) -> SignalingResult:
    """Measure every load of ``--clients`` (or search for the capacity) in every setup; with
    a Redis setup and ``--redis local`` (or no ``--redis``), a ``redis-server`` started here for
    the run and stopped after."""
    result = SignalingResult(
        benchmark="signaling",
        settings=provenance.settings(args),
        versions=provenance.versions(),
        machine=provenance.machine(),
    )
    chosen = setups(args)
    local = None
    if args.target is None and any(s.redis for s in chosen) and args.redis in (None, "local"):
        local = LocalRedis()
    redis_url = local.url if local else args.redis
    try:
        for setup in chosen:
            print(f"--- setup: {setup.name}", flush=True)
            result.setups.append(_run_setup(args, setup, redis_url, result.cases))
    finally:
        if local is not None:
            local.stop()
    return result


def _run_setup(
    args: argparse.Namespace, setup: Setup, redis_url: str | None, cases: list[SignalingCase]
) -> SetupResult:
    done = SetupResult(setup.name)

    def measure(clients: int) -> SignalingCase:
        case = run_case(args, clients, setup, redis_url)
        cases.append(case)
        return case

    if args.search:
        done.search = run_search(lambda pairs: _step(measure(2 * pairs)), args)
    else:
        for clients in args.clients:
            measure(clients)
    if args.target is None and args.waiting_clients:
        done.waiting = measure_waiting(args, setup, redis_url)
    return done


def _step(case: SignalingCase) -> SearchStep:
    return SearchStep(case.clients_requested // 2, case.service_levels_missed, case.saturated)


def _service(
    args: argparse.Namespace,
    setup: Setup,
    redis_url: str | None,
    key_prefix: str,
    interest_fallback_s: float | None = None,
) -> EmbeddedService:
    config = service_config(args.server_compression, key_prefix, interest_fallback_s)
    return EmbeddedService(setup.serve_args(redis_url), config, port=args.port)


def _tree_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def _tree_rss_kib(pids: list[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


def _wait_for_processes(pid: int, count: int) -> list[int]:
    """The service's processes once all of them run (``--procs N``: the parent and N)."""
    deadline = time.monotonic() + 30
    while len(tree := process_tree(pid)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return tree


def run_case(
    args: argparse.Namespace, clients: int, setup: Setup, redis_url: str | None
) -> SignalingCase:
    """One load: ``clients`` users against a fresh ``chatguard serve`` (or ``--target``).

    The service started here has no relay worker: the load is signaling's alone (pairs are on
    the direct route), and no worker competes with it for the machine.
    """
    server = None if args.target else _service(args, setup, redis_url, new_key_prefix())
    url = server.endpoints.ws_url if server else args.target
    try:
        wait_until_up(url, args.connect_timeout if server is None else 30.0)
        pids = (
            _wait_for_processes(server.process.pid, setup.procs + (setup.procs > 1))
            if server
            else []
        )
        started_cpu = _tree_cpu_seconds(pids)
        started_wait = sum(run_delay_s(pid) for pid in pids)
        started_psi = cpu_pressure_us()
        redis_before = read_counters(redis_url) if setup.redis and redis_url else None
        loadgen_cpu = _children_cpu_seconds()
        started = time.monotonic()
        case = _drive(url, args, clients)
        wall = time.monotonic() - started
        case.setup = setup.name
        if redis_before is not None and redis_url is not None:
            work = read_counters(redis_url).minus(redis_before)
            case.redis = _redis_work(work, case.pairs_total, wall)
        loadgen_pct = 100 * (_children_cpu_seconds() - loadgen_cpu) / wall / args.processes
        case.loadgen_cpu_percent_of_one_core = loadgen_pct
        if started_psi is not None and (ended_psi := cpu_pressure_us()) is not None:
            case.machine_cpu_pressure_percent = (ended_psi - started_psi) / wall / 1e4
        cpu = {"load generator": loadgen_pct}
        if server is not None:
            used = _tree_cpu_seconds(pids) - started_cpu
            case.server_cpu_percent_of_one_core = 100 * used / wall
            waited = sum(run_delay_s(pid) for pid in pids) - started_wait
            case.server_cpu_wait_percent = 100 * waited / wall / setup.procs
            cpu["server"] = case.server_cpu_percent_of_one_core / setup.procs
            server_kib = _tree_rss_kib(pids)
            case.server_rss_mib = server_kib / 1024
            case.server_rss_kib_per_client = server_kib / max(1, case.peak_connected_clients)
            case.saturated = saturated(cpu)  # a remote service's CPU is unknown: None
        case.service_levels_missed = levels_from_args(args).failures(case)
        return case
    finally:
        if server is not None:
            server.stop()


def _redis_work(work: RedisCounters, pairs: int, wall_s: float) -> RedisWork:
    return RedisWork(
        commands=work.commands,
        round_trips=work.reads,
        commands_per_pairing=work.commands / pairs if pairs else None,
        round_trips_per_pairing=work.reads / pairs if pairs else None,
        by_command={name: calls for name, calls in work.by_command.items() if calls},
        cpu_percent_of_one_core=100 * work.cpu_s / wall_s,
        cpu_ms_per_pairing=1000 * work.cpu_s / pairs if pairs else None,
    )


def measure_waiting(args: argparse.Namespace, setup: Setup, redis_url: str | None) -> WaitingProbe:
    """``--waiting-clients`` users waiting, on a fresh service: its memory and Redis's, per user."""
    prefix = new_key_prefix()
    server = _service(args, setup, redis_url, prefix, WAITING_FALLBACK_S)
    try:
        wait_until_up(server.endpoints.ws_url, 30.0)
        pids = _wait_for_processes(server.process.pid, setup.procs + (setup.procs > 1))
        use_redis = setup.redis and redis_url is not None

        def reading() -> tuple[int, int | None]:
            time.sleep(1.0)  # let the service and Redis settle
            redis_bytes = bytes_under(redis_url, prefix) if use_redis and redis_url else None
            return _tree_rss_kib(pids), redis_bytes

        kib_before, redis_before = reading()
        clients = args.waiting_clients
        extensions, (kib_after, redis_after) = hold_waiting(
            server.endpoints.ws_url, clients, args.client_compression, reading
        )
        redis_per_client = None
        if redis_after is not None and redis_before is not None:
            redis_per_client = (redis_after - redis_before) / clients
        probe = WaitingProbe(
            clients, extensions, (kib_after - kib_before) / clients, redis_per_client
        )
        print(
            f"{clients} waiting users ({setup.name}): service +{probe.server_kib_per_client:.1f} "
            f"KiB each, Redis {cell(redis_per_client, '.0f')} bytes each",
            flush=True,
        )
        return probe
    finally:
        server.stop()


ALL_IN: Final = 0.995
"""Share of the requested clients that must be connected before the measured seconds start."""


@dataclass
class MeasuredWindow:
    """When the measured seconds start: at the end of the ramp once nearly every client is
    connected (:data:`ALL_IN`), at the latest half-way through ``--duration``.

    Why not at the end of the ramp: at 5,000 clients and more the ramp's last connections
    still landed in the first seconds of the window, and their handshakes made that load's
    pairing p99 (5-49 ms per second once all were in, over 50 ms over the window). A load is
    held when its clients are; how fast they arrive is the ramp's figure, printed apart.
    """

    ramp_end: float
    latest_start: float
    clients: int
    started_at: float | None = None

    def measuring(self, now: float, connected: int) -> bool:
        all_in = connected >= ALL_IN * self.clients or now >= self.latest_start
        if self.started_at is None and now >= self.ramp_end and all_in:
            self.started_at = now
        return self.started_at is not None

    def seconds(self, end: float) -> float:
        return 0.0 if self.started_at is None else max(end - self.started_at, 0.0)


def _drive(url: str, args: argparse.Namespace, clients: int) -> SignalingCase:
    """Run ``clients`` users from ``--processes`` processes; the load's figures."""
    context = mp.get_context("spawn")
    pipes, processes = [], []
    share = [
        clients // args.processes + (i < clients % args.processes) for i in range(args.processes)
    ]
    for index, count in enumerate(share):
        parent, child = context.Pipe(duplex=False)
        process = context.Process(
            target=worker_main,
            args=(
                url,
                count,
                args.duration,
                args.ramp,
                (args.dwell_min, args.dwell_max),
                args.seed + index,
                args.client_compression,
                child,
            ),
        )
        process.start()
        pipes.append(parent)
        processes.append(process)

    latency: list[float] = []
    queue: list[float] = []
    signal: list[float] = []
    clock = PairingClock()
    measured_pairs = all_pairs = 0
    extensions = ""
    peak_connected = 0
    errors: list[str] = []
    error_count = 0
    connected = [0] * len(pipes)
    finished = [False] * len(pipes)
    started = time.monotonic()
    window = MeasuredWindow(started + args.ramp, started + args.ramp + args.duration / 2, clients)
    window_pairs = 0
    window_latency: list[float] = []
    window_started = time.monotonic()
    while not all(finished):
        for index, pipe in enumerate(pipes):
            while not finished[index] and pipe.poll(0.05):
                snapshot = pipe.recv()
                finished[index] = snapshot["final"]
                connected[index] = snapshot["connected"]
                error_count += snapshot["error_count"]
                errors.extend(snapshot["errors"])
                window_pairs += snapshot["pairs"]
                all_pairs += snapshot["pairs"]
                extensions = extensions or snapshot["extensions"]
                measuring = window.measuring(time.monotonic(), sum(connected))
                for pairing in snapshot["pairings"]:
                    if (both := clock.add(*pairing)) is not None:
                        window_latency.append(both[0])
                        if measuring:
                            latency.append(both[0])
                            queue.append(both[1])
                if measuring:
                    measured_pairs += snapshot["pairs"]
                    signal.extend(snapshot["signal_latency_s"])
        peak_connected = max(peak_connected, sum(connected))
        elapsed = time.monotonic() - window_started
        if elapsed < 1.0 and not all(finished):
            continue
        second = summarize_ms(window_latency)
        now = time.monotonic()
        phase = "measure" if window.measuring(now, sum(connected)) else "ramp"
        print(
            f"[{now - started:6.1f}s {phase:7}] connected {sum(connected):6d}  "
            f"pairs/s {window_pairs / elapsed:7.1f}  pairing p50 {cell(second.p50_ms, '6.1f')} "
            f"ms  p99 {cell(second.p99_ms, '6.1f')} ms  errors {error_count}",
            flush=True,
        )
        window_pairs, window_latency, window_started = 0, [], time.monotonic()
    measured_s = window.seconds(time.monotonic())
    for process in processes:
        process.join(timeout=10)

    return SignalingCase(
        target=url,
        clients_requested=clients,
        peak_connected_clients=peak_connected,
        pairs_per_second=measured_pairs / measured_s if measured_s > 0 else 0.0,
        measured_s=round(measured_s, 2),
        pairing_latency=summarize_ms(latency),
        queue_time=summarize_ms(queue),
        signal_relay_latency=summarize_ms(signal),
        errors=error_count,
        error_examples=errors[:5],
        loadgen_cpu_percent_of_one_core=0.0,
        websocket_extensions=extensions,
        pairs_total=all_pairs,
    )


DESCRIPTION = (
    "Load the signaling service with simulated random-chat users (join, pair, offer/answer/"
    "candidates, Next after a random dwell) and measure pairing rate and latency."
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The signaling workload's options."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--clients",
        type=comma_ints,
        default=[1000],
        help="comma-separated numbers of concurrent clients, one load after the other, e.g. "
        "100,1000 (default 1000); with --search, half the first is where the search starts",
    )
    size.add_argument(
        "--pairs",
        type=comma_ints,
        help="comma-separated numbers of concurrent pairs: the same as --clients 2*N,...; with "
        "--search, the first is where the search starts",
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds after the ramp (default 20)"
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=10.0,
        help="seconds over which clients connect; not measured (default 10)",
    )
    parser.add_argument(
        "--dwell-min",
        type=float,
        default=2.0,
        help="churn: shortest time a pair stays together before Next (default 2 s)",
    )
    parser.add_argument(
        "--dwell-max",
        type=float,
        default=6.0,
        help="churn: longest time a pair stays together before Next (default 6 s)",
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="load-generator processes (default 1)"
    )
    parser.add_argument(
        "--target",
        metavar="URL",
        help="WebSocket URL of a running service, e.g. ws://HOST:8080/ws "
        "(default: start `chatguard serve` on this machine)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="give up on an unreachable --target after this long (default 5)",
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port for the service it starts (default 8765)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the load (default 1)")
    service = parser.add_argument_group(
        "the service started here",
        "How `chatguard serve` runs; each setup is a service started afresh for every load.",
    )
    service.add_argument(
        "--procs",
        type=int,
        default=1,
        help="signaling processes sharing the port (serve --procs N); above 1 needs --redis "
        "(default 1)",
    )
    service.add_argument(
        "--redis",
        metavar="URL",
        help="the pool in this Redis (serve --redis URL), or `local`: a redis-server started "
        "here on a free port for the run (default: the pool in memory)",
    )
    service.add_argument(
        "--compare",
        type=comma_setups,
        metavar="SETUPS",
        help="measure each of these setups in turn, e.g. memory,redis,redis-procs2 (memory: "
        "one process, pool in memory; redis: one process on Redis; redis-procsN: N processes "
        "on Redis; Redis is --redis, or one started here); replaces --procs",
    )
    service.add_argument(
        "--server-compression",
        action="store_true",
        help="let the service accept permessage-deflate ([server] websocket_compression; "
        "default: off, as the service ships)",
    )
    service.add_argument(
        "--waiting-clients",
        type=int,
        default=1000,
        metavar="N",
        help="after each setup's loads, N users waiting for a partner on a fresh service: "
        "memory per waiting user in the service and in Redis (default 1000; 0: skip)",
    )
    parser.add_argument(
        "--client-compression",
        choices=COMPRESSION_CHOICES,
        default="browser",
        help="what the simulated users offer: browser (permessage-deflate as Chromium and "
        "Firefox offer it) or none (default browser)",
    )
    add_output_options(
        parser,
        "signaling",
        "pairing latency p50/p99 and pairs per second against clients, one point per load measured",
    )
    add_search_options(parser, SignalingLevels())


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, in words, or None.

    Fills --clients from --pairs, and --pairs from --clients (rounded down): the search counts
    pairs, a pair being two clients.
    """
    if args.pairs is not None:
        args.clients = [2 * n for n in args.pairs]
    args.pairs = [n // 2 for n in args.clients]
    if not args.clients or min(args.clients) < 2:
        return "need --clients >= 2 (--pairs >= 1), e.g. --clients 100,1000"
    if args.processes < 1 or args.duration <= 0 or args.ramp < 0:
        return "need --processes >= 1, --duration > 0, --ramp >= 0"
    if not 0 <= args.dwell_min <= args.dwell_max:
        return "need 0 <= --dwell-min <= --dwell-max"
    if args.connect_timeout <= 0:
        return "--connect-timeout must be > 0"
    return (
        check_target(args.target)
        or check_setups(args)
        or check_search_args(args)
        or check_output(args)
    )


def check_setups(args: argparse.Namespace) -> str | None:
    """What is wrong with --procs, --redis, --compare and --waiting-clients, or None."""
    if args.procs < 1 or args.waiting_clients < 0:
        return "need --procs >= 1 and --waiting-clients >= 0"
    if args.procs > 1 and args.redis is None:
        return "--procs above 1 needs a shared pool: --redis URL or --redis local"
    if args.compare and args.procs > 1:
        return "--compare names the processes of each setup; leave out --procs"
    if args.compare and len(args.compare) > 1 and args.plot is not None:
        return "--plot draws one setup; leave out --plot, or compare one setup at a time"
    chosen = setups(args)
    if args.target is not None and (args.compare or args.procs > 1 or args.server_compression):
        return "--compare, --procs and --server-compression start a service; not with --target"
    if args.target is not None and args.redis == "local":
        return "--redis local starts a Redis for the service started here; not with --target"
    if args.redis not in (None, "local"):
        parts = urllib.parse.urlsplit(args.redis)
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            return f"--redis {args.redis!r}: give redis://HOST:PORT/DB or `local`"
    if any(s.redis for s in chosen) and importlib.util.find_spec("redis") is None:
        return "a Redis setup needs the Redis client: pip install 'chatguard[redis]'"
    return None


def table(cases: list[SignalingCase]) -> str:
    """One row per load; a figure that was not measured is a dash."""
    head = (
        f"{'setup':>12} {'clients':>7} {'connected':>9} {'pairs/s':>8} "
        f"{'pairing p50/p99 ms':>19} {'queue p99':>9} {'errors':>6} {'server CPU':>10} "
        f"{'MiB':>5} {'loadgen CPU':>11} {'Redis cmd/RT/CPU ms per pair':>28} {'deflate':>7} "
        f"{'saturated':>14} {'CPU wait':>8} {'pressure':>8}  service levels"
    )
    lines = [head, "-" * len(head)]
    for c in cases:
        pairing = c.pairing_latency
        redis = (
            f"{cell(c.redis.commands_per_pairing, '.1f')}/"
            f"{cell(c.redis.round_trips_per_pairing, '.1f')}/"
            f"{cell(c.redis.cpu_ms_per_pairing, '.2f')}"
            if c.redis
            else DASH
        )
        deflate = "no" if c.websocket_extensions in ("", "none") else "yes"
        lines.append(
            f"{c.setup:>12} {c.clients_requested:7d} {c.peak_connected_clients:9d} "
            f"{c.pairs_per_second:8.0f} {cell(pairing.p50_ms, '9.1f')}/"
            f"{cell(pairing.p99_ms, '<9.1f')} {cell(c.queue_time.p99_ms, '9.1f')} {c.errors:6d} "
            f"{cell(c.server_cpu_percent_of_one_core, '9.0f', '%')} "
            f"{cell(c.server_rss_mib, '5.0f')} "
            f"{c.loadgen_cpu_percent_of_one_core:10.0f}% {redis:>28} {deflate:>7} "
            f"{c.saturated or DASH:>14} {cell(c.server_cpu_wait_percent, '7.0f', '%')} "
            f"{cell(c.machine_cpu_pressure_percent, '7.0f', '%')}  "
            + ("; ".join(c.service_levels_missed) or "held")
        )
    return "\n".join(lines)


def describe_setups(done: list[SetupResult]) -> str:
    """Each setup's capacity, against the first setup's, and what a waiting user costs."""
    lines = []
    base = next((d.search.capacity for d in done if d.search), 0)
    for d in done:
        if d.search is not None:
            ratio = f" ({d.search.capacity / base:.2f} x {done[0].setup})" if base else ""
            lines.append(describe_search(d.search, f"signaling service, {d.setup}") + ratio)
        if d.waiting is not None:
            w = d.waiting
            redis = (
                ""
                if w.redis_bytes_per_client is None
                else (f", Redis {w.redis_bytes_per_client:.0f} bytes")
            )
            lines.append(
                f"{d.setup}: {w.clients} waiting users cost the service "
                f"{w.server_kib_per_client:.1f} KiB each{redis} (compression: "
                f"{w.websocket_extensions})"
            )
    return "\n".join(lines)


def report(result: SignalingResult, args: argparse.Namespace) -> None:
    """The summary table, the search's answer, the JSON file and the plot."""
    print("\n" + table(result.cases))
    print(
        f"(target: p99 < {TARGET_PAIRING_P99_MS:g} ms with 5000 clients; CPU: % of one core on "
        "average over ramp and measurement, all the service's processes; MiB: their resident "
        "memory at the end; Redis cmd/RT/CPU ms per pair: commands, round trips and Redis "
        "CPU per pairing, over the whole load; CPU wait: share of the time a service process "
        "was ready to run and waited for a CPU; pressure: share of the time some task on this "
        "machine waited)"
    )
    print(describe_setups(result.setups))
    write_json(result, args.json)
    print(f"results written to {args.json}")
    if args.plot is not None:
        found = result.setups[0].search
        capacity_clients = 2 * found.capacity if found else None
        plot_signaling_cases(result.cases, args.plot, args.max_pairing_p99_ms, capacity_clients)
        print(f"plot written to {args.plot}")


class SignalingWorkload:
    name = "signaling"
    description = DESCRIPTION + " Starts `chatguard serve` on this machine, or drives --target."

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        add_options(parser)

    def check(self, args: argparse.Namespace) -> str | None:
        return check_args(args)

    def run(self, args: argparse.Namespace) -> SignalingResult:
        return run(args)

    def report(self, result: SignalingResult, args: argparse.Namespace) -> None:
        report(result, args)


WORKLOAD: Workload[SignalingResult] = SignalingWorkload()
