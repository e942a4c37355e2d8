"""``chatguard bench``: the load tool, one sub-command per workload, each loaded only when run.

Why this shape: ``chatguard --help`` and ``chatguard serve`` must neither wait for nor need the
load tool's libraries (aiortc peers, PyAV, the model, plots). ``chatguard`` lists ``bench`` with
:data:`HELP` alone and hands everything after ``bench`` to :func:`run_bench`, which builds its
own parser: every workload of :mod:`bench.registry` by name and one line, and the options of
the one named on the command line only, imported then. Bad options are refused with the
option's name before any process starts; a missing ``bench`` extra is one line naming it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

HELP = "measure what a deployment carries (signaling, relay, strict route)"
DESCRIPTION = (
    "Load tool for sizing a deployment: many small simulated random-chat pairs (relay: both "
    "directions of pre-encoded video replayed; signaling: churn through Next after a random "
    "dwell) and what they get. Each run prints a progress line per second, a summary table, "
    "and writes JSON with every figure and the settings and versions that produced it "
    "(--json; default bench/results/WORKLOAD.json under the current directory). "
    "`chatguard bench WORKLOAD --help` lists a workload's options."
)


def add_bench_parser(commands: Any) -> None:
    """List ``bench`` among ``chatguard``'s commands; :func:`run_bench` parses what follows."""
    commands.add_parser("bench", help=HELP, description=DESCRIPTION, add_help=False)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """``chatguard bench``'s parser, with the options of the workload named in ``argv``."""
    from bench.registry import WORKLOADS, load

    parser = argparse.ArgumentParser(prog="chatguard bench", description=DESCRIPTION)
    workloads = parser.add_subparsers(dest="workload", required=True, metavar="WORKLOAD")
    chosen = next((word for word in argv if not word.startswith("-")), None)
    for name, entry in WORKLOADS.items():
        sub = workloads.add_parser(name, help=entry.help, description=entry.help)
        if name == chosen:
            workload = load(name)
            sub.description = workload.description
            workload.add_options(sub)
    return parser


def run_bench(argv: Sequence[str]) -> int:
    """Parse, check, run and report one workload: 0; 2 and one line for bad options or a
    missing extra, 1 and one line for a run that could not go on."""
    from bench.extra import INSTALL, missing_extra
    from bench.registry import load
    from bench.workload import RunError

    args = build_parser(argv).parse_args(argv)
    workload = load(args.workload)
    try:
        if (problem := workload.check(args)) is not None:
            print(f"chatguard bench {args.workload}: {problem}", file=sys.stderr)
            return 2
        workload.report(workload.run(args), args)
    except RunError as exc:
        print(f"chatguard bench {args.workload}: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if (module := missing_extra(exc)) is None:
            raise
        print(
            f"chatguard bench {args.workload} needs the bench extra ({module} is not "
            f"installed): {INSTALL}",
            file=sys.stderr,
        )
        return 2
    return 0
