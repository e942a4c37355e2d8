"""``chatguard bench``: the load tool, one sub-command per workload.

Each sub-command is a thin front for a module under ``bench/`` (which can also be run as
``python -m bench.<name>``); the options are defined once, in those modules, so the two ways in
cannot drift apart. Bad options are refused here with the option's name, before any process
starts.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_bench_parser(commands: Any) -> None:
    """Add ``bench`` and its sub-commands to the ``chatguard`` parser's sub-parsers."""
    from bench import relay_bench, signaling_bench, strict_bench

    bench = commands.add_parser(
        "bench",
        help="measure what a deployment carries (signaling, relay, strict route)",
        description="Load tool for sizing a deployment: many small simulated random-chat "
        "pairs (relay: both directions of pre-encoded video replayed; signaling: churn "
        "through Next after a random dwell) and what they get. "
        "Each run prints a progress line per second, a summary table, and writes JSON with "
        "every figure and the settings and versions that produced it.",
    )
    workloads = bench.add_subparsers(dest="workload", required=True, metavar="WORKLOAD")
    signaling = workloads.add_parser(
        "signaling",
        help="connections, pairing rate and pairing latency",
        description=signaling_bench.DESCRIPTION
        + " Starts `chatguard serve` on this machine, or drives --target.",
    )
    signaling_bench.add_options(signaling)
    relay = workloads.add_parser(
        "relay",
        help="pairs through the forwarding relay: frame rate, added latency, CPU, memory",
        description=relay_bench.DESCRIPTION
        + " Added latency is relayed minus direct, measured in the same run from the send "
        "time each video packet carries (abs-send-time, forwarded unchanged by the relay).",
    )
    relay_bench.add_options(relay)
    strict = workloads.add_parser(
        "strict",
        help="strict route: moderation CPU per stream, verdict latency, leaked frames",
        description=strict_bench.DESCRIPTION
        + " Runs in this process (bench.strict_bench), or through a service with --service "
        "or --target.",
    )
    strict_bench.add_options(strict)


def run_bench(args: argparse.Namespace) -> int:
    """Check the options of one workload, then run it; 2 and a message for bad options."""
    if args.workload == "signaling":
        from bench import signaling_bench

        if (problem := signaling_bench.check_args(args)) is not None:
            return _refuse("signaling", problem)
        signaling_bench.report(signaling_bench.run(args), args)
        return 0
    if args.workload == "relay":
        from bench import relay_bench

        if (problem := relay_bench.check_args(args)) is not None:
            return _refuse("relay", problem)
        relay_bench.report(relay_bench.run(args), args)
        return 0
    if args.workload == "strict":
        from bench import strict_bench

        if (problem := strict_bench.check_args(args)) is not None:
            return _refuse("strict", problem)
        strict_bench.run_and_report(args)
        return 0
    raise AssertionError(f"unhandled workload {args.workload}")


def _refuse(workload: str, problem: str) -> int:
    print(f"chatguard bench {workload}: {problem}", file=sys.stderr)
    return 2
