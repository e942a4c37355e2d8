"""What every ``chatguard bench`` workload is, and the output options they share.

A workload is a module under ``bench/`` with a ``WORKLOAD`` object of this shape, named in
:mod:`bench.registry`; ``chatguard bench NAME`` imports that module alone, adds its options,
refuses bad ones (:meth:`Workload.check`, before any process starts), runs it and reports.
Its result is a msgspec Struct (the schema of the JSON it writes: ``bench/results.py``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec

from bench.extra import require

R = TypeVar("R", bound=msgspec.Struct)


class RunError(Exception):
    """A run that cannot go on (a service out of reach, a clip the encoder refuses), in words
    that name the cause; ``chatguard bench`` prints it as one line and exits with 1."""


class Workload(Protocol[R]):
    """One sub-command of ``chatguard bench``; its one-line help is in the registry."""

    name: str
    description: str
    """The sub-command's ``--help`` text: what it loads, and how it measures."""

    def add_options(self, parser: argparse.ArgumentParser) -> None: ...

    def check(self, args: argparse.Namespace) -> str | None:
        """What is wrong with the options, in words, or None. May fill derived options.

        Raises ModuleNotFoundError (:func:`bench.extra.require`) for a missing extra.
        """

    def run(self, args: argparse.Namespace) -> R:
        """Measure, printing progress; every figure, for :meth:`report`."""

    def report(self, result: R, args: argparse.Namespace) -> None:
        """The summary, the JSON at ``--json`` and the plot at ``--plot``."""


def default_json(name: str) -> Path:
    """Where a workload writes its JSON unless told: under the current directory."""
    return Path("bench") / "results" / f"{name}.json"


def add_output_options(parser: argparse.ArgumentParser, name: str, plot_what: str | None) -> None:
    """``--json`` and ``--plot`` (``plot_what`` None: a workload that draws nothing), the same
    for every workload."""
    parser.add_argument(
        "--json",
        type=Path,
        default=default_json(name),
        metavar="PATH",
        help="write every figure, the settings and the versions that produced them to PATH, "
        f"as given (default {default_json(name)} under the current directory; missing folders "
        "are made)",
    )
    if plot_what is None:
        return
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help=f"also draw {plot_what}, as a PNG at PNG (needs the bench extra: matplotlib)",
    )


def check_output(args: argparse.Namespace) -> str | None:
    """Whether ``--json`` and ``--plot`` can be written: known before a run, not after it."""
    plot = getattr(args, "plot", None)  # None too for a workload without --plot
    if plot is not None:
        require("matplotlib")
    for option, path in (("--json", args.json), ("--plot", plot)):
        if path is not None and (problem := _unwritable(path)) is not None:
            return f"{option} {path}: {problem}"
    return None


def _unwritable(path: Path) -> str | None:
    if path.is_dir():
        return "is a folder; give a file name"
    if path.exists():
        return None if os.access(path, os.W_OK) else "cannot be written"
    folder = path.parent
    while not folder.exists():  # the first folder that exists is where new ones are made
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder"
    return None if os.access(folder, os.W_OK | os.X_OK) else f"cannot write in {folder}"


def write_json(result: msgspec.Struct, path: Path) -> None:
    """``result`` as indented JSON at exactly ``path`` (no figure is NaN: absent ones are null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n")
