"""The workloads of ``chatguard bench``, by name: where each lives and what it measures in a line.

Why a table of module names: listing the workloads (``chatguard bench --help``) must not import
them, since each pulls in what it drives (aiortc, PyAV, the model); only the one asked for is
imported, by :func:`load`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Final

from bench.workload import Workload


@dataclass(frozen=True)
class Entry:
    module: str
    """The module whose ``WORKLOAD`` this is."""
    help: str
    """One line for the list of workloads."""


WORKLOADS: Final = {
    "signaling": Entry("bench.signaling_bench", "connections, pairing rate and pairing latency"),
    "relay": Entry(
        "bench.relay_bench",
        "pairs through the forwarding relay: frame rate, added latency, CPU, memory",
    ),
    "strict": Entry(
        "bench.strict_bench",
        "strict route: moderation CPU per stream, verdict latency, leaked frames",
    ),
    "strict-browser": Entry(
        "bench.strict_browser_bench",
        "strict route vs relay route, real Chromium: leaks, sender quality, safe frames",
    ),
}


def load(name: str) -> Workload[Any]:
    """Import workload ``name``'s module (KeyError for a name not in :data:`WORKLOADS`)."""
    workload: Workload[Any] = importlib.import_module(WORKLOADS[name].module).WORKLOAD
    return workload
