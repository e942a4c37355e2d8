"""Command-line glue for the capacity search, shared by the workloads that support ``--search``.

The strategy itself is :mod:`bench.capacity` (sans-I/O, tested on a simulated service); this
module turns options into a strategy and service levels, runs it over a workload's "measure
at N pairs" function, and words the answer, including which side ran out of CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.capacity import CapacitySearch, ServiceLevels, search


@dataclass(frozen=True)
class SearchStep:
    """One measured load: the service levels it missed (none: it held) and what saturated."""

    pairs: int
    missed: list[str]
    saturated: str


def add_search_options(p: argparse.ArgumentParser, default_added_p99_ms: float) -> None:
    levels = ServiceLevels(added_p99_ms=default_added_p99_ms)
    group = p.add_argument_group(
        "capacity search",
        "With --search the benchmark ramps the number of pairs up geometrically from the "
        "first --pairs value while the service levels hold, then bisects between the last "
        "load that held and the first that did not, and prints the largest that held.",
    )
    group.add_argument(
        "--search", action="store_true", help="find the capacity instead of measuring --pairs"
    )
    group.add_argument(
        "--min-fps",
        type=float,
        default=levels.min_fps,
        help=f"service level: delivered frame rate per stream (default {levels.min_fps:g})",
    )
    group.add_argument(
        "--stream-fraction",
        type=float,
        default=levels.stream_fraction,
        help="service level: share of streams that must reach --min-fps "
        f"(default {levels.stream_fraction:g})",
    )
    group.add_argument(
        "--max-added-p99-ms",
        type=float,
        default=levels.added_p99_ms,
        help="service level: p99 latency the route adds over direct, in ms "
        f"(default {levels.added_p99_ms:g}, the route's target)",
    )
    group.add_argument(
        "--max-pairs",
        type=int,
        default=500,
        help="never load more pairs than this (default 500)",
    )
    group.add_argument(
        "--search-budget",
        type=float,
        default=420.0,
        metavar="SECONDS",
        help="stop searching when the next load would not finish within this many seconds "
        "(default 420; each load takes about --warmup + --duration + start-up)",
    )
    group.add_argument(
        "--search-resolution",
        type=float,
        default=0.1,
        metavar="FRACTION",
        help="stop when the first failing load is within this fraction of the last one that "
        "held (default 0.1)",
    )


def check_search_args(args: argparse.Namespace) -> str | None:
    if args.min_fps <= 0 or not 0 < args.stream_fraction <= 1 or args.max_added_p99_ms <= 0:
        return "need --min-fps > 0, 0 < --stream-fraction <= 1, --max-added-p99-ms > 0"
    if args.max_pairs < 1 or args.search_budget <= 0 or not 0 <= args.search_resolution < 1:
        return "need --max-pairs >= 1, --search-budget > 0, 0 <= --search-resolution < 1"
    if args.search and args.pairs[0] > args.max_pairs:
        return f"--search starts at --pairs {args.pairs[0]}, above --max-pairs {args.max_pairs}"
    return None


def levels_from_args(args: argparse.Namespace) -> ServiceLevels:
    return ServiceLevels(args.min_fps, args.stream_fraction, args.max_added_p99_ms)


def run_search(measure: Callable[[int], SearchStep], args: argparse.Namespace) -> dict[str, Any]:
    """Search with ``measure``; returns the answer and every probe, for the JSON."""
    strategy = CapacitySearch(
        start=args.pairs[0],
        max_pairs=args.max_pairs,
        resolution=args.search_resolution,
        budget_s=args.search_budget,
    )
    steps: list[SearchStep] = []

    def holds(pairs: int) -> bool:
        step = measure(pairs)
        steps.append(step)
        verdict = "held" if not step.missed else "missed: " + "; ".join(step.missed)
        print(f"search: {pairs} pairs {verdict} (saturated: {step.saturated})", flush=True)
        return not step.missed

    started = time.monotonic()
    capacity = search(holds, strategy, time.monotonic)
    first_failure = next((s for s in steps if s.missed and s.pairs > capacity), None)
    return {
        "capacity_pairs": capacity,
        "capacity_one_way_streams": 2 * capacity,
        "stop_reason": strategy.stop_reason,
        "elapsed_s": time.monotonic() - started,
        "service_levels": asdict(levels_from_args(args)),
        "saturated_at_first_failure": first_failure.saturated if first_failure else None,
        "probes": [
            {**asdict(step), "holds": not step.missed, "seconds": probe.seconds}
            for step, probe in zip(steps, strategy.probes, strict=True)
        ],
    }


def describe_search(found: dict[str, Any], route: str) -> str:
    """The search's answer in one paragraph, for the end of a run."""
    levels = found["service_levels"]
    text = (
        f"\ncapacity on the {route}: {found['capacity_pairs']} pairs "
        f"({found['capacity_one_way_streams']} one-way streams) holding >= "
        f"{levels['min_fps']:g} fps for {100 * levels['stream_fraction']:g}% of streams and "
        f"added latency p99 < {levels['added_p99_ms']:g} ms; {found['stop_reason']}; "
        f"searched for {found['elapsed_s']:.0f} s."
    )
    if found["saturated_at_first_failure"] is not None:
        text += (
            f" At the first load that failed, what ran out of CPU: "
            f"{found['saturated_at_first_failure']}."
        )
    return text
