"""Signaling load benchmark: N concurrent WebSocket clients cycling join -> pair -> SDP/ICE -> next.

Run ``chatguard bench signaling --clients 5000 --duration 30``. It starts ``chatguard serve``
(signaling alone: no relay worker) in its own process (or targets ``--target
ws://HOST:PORT/ws``), opens the clients from ``--processes`` load-generator processes, and
prints a progress line every second: connected clients, pairs per second, and pairing
latency. At the end it prints a summary and writes JSON.
Several loads (``--clients 100,1000``) are measured one after the other, each against a fresh
service; ``--search`` finds the most pairs whose pairing latency p99 stays under the target.

Pairing latency is measured where it is the server's doing: from a client's join/next to its
``paired`` message, for clients that were paired at once (no ``waiting`` in between). Time spent
queued because nobody else was free is reported separately as queue time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
import urllib.parse
from dataclasses import dataclass
from typing import ClassVar

from bench import provenance
from bench.capacity import LevelOption, Load
from bench.plot import plot_signaling_cases
from bench.procfs import cpu_seconds, rss_kib
from bench.results import SignalingCase, SignalingResult
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
from bench.signaling_load import worker_main
from bench.stats import below, summarize_ms
from bench.table import DASH, cell
from bench.workload import Workload, add_output_options, check_output, write_json

TARGET_PAIRING_P99_MS = 50.0
"""The signaling service's target: pairing latency p99 under 50 ms (with 5000 clients)."""


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


def run(args: argparse.Namespace) -> SignalingResult:
    """Measure every load of ``--clients`` (or search for the capacity); every figure."""
    result = SignalingResult(
        benchmark="signaling",
        settings=provenance.settings(args),
        versions=provenance.versions(),
        machine=provenance.machine(),
    )
    cases = result.cases
    if args.search:
        result.search = run_search(lambda pairs: _step(run_case(args, 2 * pairs), cases), args)
    else:
        cases.extend(run_case(args, clients) for clients in args.clients)
    return result


def _step(case: SignalingCase, cases: list[SignalingCase]) -> SearchStep:
    cases.append(case)
    return SearchStep(case.clients_requested // 2, case.service_levels_missed, case.saturated)


def run_case(args: argparse.Namespace, clients: int) -> SignalingCase:
    """One load: ``clients`` users against a fresh ``chatguard serve`` (or ``--target``).

    The service started here has no relay worker: the load is signaling's alone (pairs are on
    the direct route), and no worker competes with it for the machine.
    """
    server = None if args.target else EmbeddedService(["--relay-workers", "0"], port=args.port)
    url = server.endpoints.ws_url if server else args.target
    try:
        wait_until_up(url, args.connect_timeout if server is None else 30.0)
        started_cpu = cpu_seconds(server.process.pid) if server else 0.0
        loadgen_cpu = _children_cpu_seconds()
        started = time.monotonic()
        case = _drive(url, args, clients)
        wall = time.monotonic() - started
        loadgen_pct = 100 * (_children_cpu_seconds() - loadgen_cpu) / wall / args.processes
        case.loadgen_cpu_percent_of_one_core = loadgen_pct
        cpu = {"load generator": loadgen_pct}
        if server is not None:
            used = cpu_seconds(server.process.pid) - started_cpu
            case.server_cpu_percent_of_one_core = cpu["server"] = 100 * used / wall
            server_kib = rss_kib(server.process.pid)
            case.server_rss_mib = server_kib / 1024
            case.server_rss_kib_per_client = server_kib / max(1, case.peak_connected_clients)
            case.saturated = saturated(cpu)  # a remote service's CPU is unknown: None
        case.service_levels_missed = levels_from_args(args).failures(case)
        return case
    finally:
        if server is not None:
            server.stop()


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
                child,
            ),
        )
        process.start()
        pipes.append(parent)
        processes.append(process)

    latency: list[float] = []
    queue: list[float] = []
    signal: list[float] = []
    measured_pairs = 0
    peak_connected = 0
    errors: list[str] = []
    error_count = 0
    connected = [0] * len(pipes)
    finished = [False] * len(pipes)
    started = time.monotonic()
    measuring_from = started + args.ramp
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
                window_latency.extend(snapshot["pair_latency_s"])
                if time.monotonic() >= measuring_from:
                    measured_pairs += snapshot["pairs"]
                    latency.extend(snapshot["pair_latency_s"])
                    queue.extend(snapshot["queue_time_s"])
                    signal.extend(snapshot["signal_latency_s"])
        peak_connected = max(peak_connected, sum(connected))
        elapsed = time.monotonic() - window_started
        if elapsed < 1.0 and not all(finished):
            continue
        window = summarize_ms(window_latency)
        phase = "ramp" if time.monotonic() < measuring_from else "measure"
        print(
            f"[{time.monotonic() - started:6.1f}s {phase:7}] connected {sum(connected):6d}  "
            f"pairs/s {window_pairs / elapsed:7.1f}  pairing p50 {cell(window.p50_ms, '6.1f')} "
            f"ms  p99 {cell(window.p99_ms, '6.1f')} ms  errors {error_count}",
            flush=True,
        )
        window_pairs, window_latency, window_started = 0, [], time.monotonic()
    for process in processes:
        process.join(timeout=10)

    return SignalingCase(
        target=url,
        clients_requested=clients,
        peak_connected_clients=peak_connected,
        pairs_per_second=measured_pairs / args.duration,
        pairing_latency=summarize_ms(latency),
        queue_time=summarize_ms(queue),
        signal_relay_latency=summarize_ms(signal),
        errors=error_count,
        error_examples=errors[:5],
        loadgen_cpu_percent_of_one_core=0.0,
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
    return check_target(args.target) or check_search_args(args) or check_output(args)


def table(cases: list[SignalingCase]) -> str:
    """One row per load; a figure that was not measured is a dash."""
    head = (
        f"{'clients':>7} {'connected':>9} {'pairs/s':>8} {'pairing p50/p99 ms':>19} "
        f"{'queue p99':>9} {'errors':>6} {'server CPU':>10} {'MiB':>5} {'loadgen CPU':>11} "
        f"{'saturated':>14}  service levels"
    )
    lines = [head, "-" * len(head)]
    for c in cases:
        pairing = c.pairing_latency
        lines.append(
            f"{c.clients_requested:7d} {c.peak_connected_clients:9d} "
            f"{c.pairs_per_second:8.0f} {cell(pairing.p50_ms, '9.1f')}/"
            f"{cell(pairing.p99_ms, '<9.1f')} {cell(c.queue_time.p99_ms, '9.1f')} {c.errors:6d} "
            f"{cell(c.server_cpu_percent_of_one_core, '9.0f', '%')} "
            f"{cell(c.server_rss_mib, '5.0f')} "
            f"{c.loadgen_cpu_percent_of_one_core:10.0f}% {c.saturated or DASH:>14}  "
            + ("; ".join(c.service_levels_missed) or "held")
        )
    return "\n".join(lines)


def report(result: SignalingResult, args: argparse.Namespace) -> None:
    """The summary table, the search's answer, the JSON file and the plot."""
    print("\n" + table(result.cases))
    print(
        f"(target: p99 < {TARGET_PAIRING_P99_MS:g} ms with 5000 clients; CPU: % of one core on "
        "average over ramp and measurement; MiB: server resident at the end)"
    )
    found = result.search
    if found is not None:
        print(describe_search(found, "signaling service"))
    write_json(result, args.json)
    print(f"results written to {args.json}")
    if args.plot is not None:
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
