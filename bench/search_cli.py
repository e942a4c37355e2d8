"""Command-line glue for the capacity search, shared by the workloads that support ``--search``.

The strategy itself is :mod:`bench.capacity` (sans-I/O, tested on a simulated service); this
module turns options into a strategy and service levels, runs it over a workload's "measure
at N" function, and words the answer, including which side ran out of CPU.

A workload hands :func:`add_search_options` its own service levels (a :class:`Levels` instance
holding the defaults); the parser keeps that instance, so :func:`check_search_args`,
:func:`levels_from_args` and :func:`run_search` need nothing but the parsed options, and every
workload words its levels, its unit of load and its failures itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bench.capacity import CapacitySearch, LevelOption, Levels, search
from bench.results import SearchProbe, SearchResult

LEVELS_DEST = "_service_levels"
"""Where the parser keeps the workload's default levels. Not an option: the leading underscore
keeps it out of the settings written to the JSON (``bench.provenance.settings``)."""

SATURATED_PERCENT = 90.0
"""A side that used this much of the CPU it could use ran out of it."""


@dataclass(frozen=True)
class SearchStep:
    """One measured load: the service levels it missed (none: it held) and what saturated
    (None: the workload cannot tell, e.g. a remote service's CPU)."""

    load: int
    missed: list[str]
    saturated: str | None = None


def comma_ints(text: str) -> list[int]:
    """A comma-separated list of whole numbers, e.g. ``4,16,50`` (the type of ``--pairs``)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of whole numbers, e.g. 4,16,50"
        ) from None


def saturated(percent_of_available: Mapping[str, float]) -> str:
    """Which sides used nearly all the CPU they could use ("+"-joined), or "none"."""
    busy = [side for side, pct in percent_of_available.items() if pct >= SATURATED_PERCENT]
    return " + ".join(busy) or "none"


def add_search_options(p: argparse.ArgumentParser, levels: Levels) -> None:
    """``--search`` and its limits, and one option per service level, defaulting to ``levels``."""
    p.set_defaults(**{LEVELS_DEST: levels})
    unit = levels.LOAD.unit
    group = p.add_argument_group(
        "capacity search",
        f"With --search the benchmark ramps the number of {unit} up geometrically from the "
        "first --pairs value while the service levels hold (a failing load is measured a "
        "second time before it is believed), then bisects between the last load that held "
        f"and the first that did not, and prints the largest that held: {levels.words()}.",
    )
    group.add_argument(
        "--search", action="store_true", help="find the capacity instead of measuring --pairs"
    )
    for option in levels.OPTIONS:
        default = getattr(levels, option.field)
        group.add_argument(
            f"--{option.name}",
            type=float,
            default=default,
            help=f"service level: {option.help} (default {default:g})",
        )
    group.add_argument(
        "--max-pairs",
        type=int,
        default=levels.LOAD.max_default,
        help=f"never load more {unit} than this (default {levels.LOAD.max_default})",
    )
    group.add_argument(
        "--search-budget",
        type=float,
        default=420.0,
        metavar="SECONDS",
        help="stop searching when the next load would not finish within this many seconds "
        "(default 420; each load takes about as long as the longest one measured so far)",
    )
    group.add_argument(
        "--search-resolution",
        type=float,
        default=0.1,
        metavar="FRACTION",
        help="stop when the first failing load is within this fraction of the last one that "
        "held (default 0.1)",
    )


def _level_problem(option: LevelOption, value: float) -> str | None:
    if option.fraction and not 0 < value <= 1:
        return f"--{option.name} {value:g}: must be > 0 and <= 1"
    if not value > 0:
        return f"--{option.name} {value:g}: must be > 0"
    return None


def check_search_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the service levels or the search's limits, in words, or None."""
    for option in getattr(args, LEVELS_DEST).OPTIONS:
        if (problem := _level_problem(option, getattr(args, option.dest))) is not None:
            return problem
    if args.max_pairs < 1 or args.search_budget <= 0 or not 0 <= args.search_resolution < 1:
        return "need --max-pairs >= 1, --search-budget > 0, 0 <= --search-resolution < 1"
    if args.search and args.pairs[0] > args.max_pairs:
        return f"--search starts at --pairs {args.pairs[0]}, above --max-pairs {args.max_pairs}"
    return None


def levels_from_args(args: argparse.Namespace) -> Any:
    """The workload's service levels as set by the options.

    Typed Any: the parser knows the workload's own :class:`Levels` type (whose ``failures`` the
    workload calls), the type checker cannot; each caller names the type it expects.
    """
    defaults = getattr(args, LEVELS_DEST)
    options = defaults.OPTIONS
    return dataclasses.replace(defaults, **{o.field: getattr(args, o.dest) for o in options})


def run_search(measure: Callable[[int], SearchStep], args: argparse.Namespace) -> SearchResult:
    """Search with ``measure``; returns the answer and every probe, for the JSON."""
    levels: Levels = levels_from_args(args)
    strategy = CapacitySearch(
        start=args.pairs[0],
        max_pairs=args.max_pairs,
        resolution=args.search_resolution,
        budget_s=args.search_budget,
    )
    steps: list[SearchStep] = []

    def holds(load: int) -> bool:
        step = measure(load)
        steps.append(step)
        verdict = "held" if not step.missed else "missed: " + "; ".join(step.missed)
        cpu = "" if step.saturated is None else f" (saturated: {step.saturated})"
        print(f"search: {levels.LOAD.text(load)} {verdict}{cpu}", flush=True)
        return not step.missed

    started = time.monotonic()
    capacity = search(holds, strategy, time.monotonic)
    first_failure = next((s for s in steps if s.missed and s.load > capacity), None)
    return SearchResult(
        capacity=capacity,
        unit=levels.LOAD.unit,
        capacity_text=levels.LOAD.text(capacity),
        stop_reason=strategy.stop_reason,
        elapsed_s=time.monotonic() - started,
        service_levels=asdict(levels),
        service_levels_text=levels.words(),
        saturated_at_first_failure=first_failure.saturated if first_failure else None,
        probes=[
            SearchProbe(step.load, step.missed, step.saturated, not step.missed, probe.seconds)
            for step, probe in zip(steps, strategy.probes, strict=True)
        ],
    )


def describe_search(found: SearchResult, route: str) -> str:
    """The search's answer in one paragraph, for the end of a run."""
    text = (
        f"\ncapacity of the {route}: {found.capacity_text} holding "
        f"{found.service_levels_text}; {found.stop_reason}; "
        f"searched for {found.elapsed_s:.0f} s."
    )
    if found.saturated_at_first_failure is not None:
        text += " At the first load that failed, what ran out of CPU: "
        text += f"{found.saturated_at_first_failure}."
    return text
