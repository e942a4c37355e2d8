"""What Linux says about a process and the machine: CPU time, memory, run-queue waits, CPU
pressure, read from ``/proc``.

Why here and parsed from text: every benchmark measures the processes it runs (or a service's
on this machine) the same way, and the parsers are tested on sample text.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path


def cpu_seconds_from_stat(stat: str, clock_ticks: int) -> float:
    """User + system CPU seconds from the text of ``/proc/PID/stat`` (all threads).

    Fields are counted after the last ``)``: the command name may contain spaces.
    """
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / clock_ticks


def rss_kib_from_status(status: str) -> int:
    """Resident set size in KiB from the text of ``/proc/PID/status``."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line")


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_from_stat(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))


def rss_kib(pid: int) -> int:
    return rss_kib_from_status(Path(f"/proc/{pid}/status").read_text())


def run_delay_s_from_schedstat(schedstat: str) -> float:
    """Seconds a thread was runnable but waiting for a CPU, from ``/proc/PID/schedstat``."""
    return int(schedstat.split()[1]) / 1e9


def run_delay_s(pid: int) -> float:
    """Run-queue wait of a process's main thread (for the relay: its event loop).

    Why: a packet that arrives while the loop waits for a CPU waits with it; this separates
    latency the relay causes from latency the machine's other work causes.
    """
    return run_delay_s_from_schedstat(Path(f"/proc/{pid}/schedstat").read_text())


def cpu_pressure_us_from_psi(psi: str) -> int:
    """Total µs some runnable task waited for a CPU, from ``/proc/pressure/cpu`` text."""
    for line in psi.splitlines():
        if line.startswith("some "):
            return int(line.rsplit("total=", 1)[1])
    raise ValueError("no 'some' line")


def cpu_pressure_us() -> int | None:
    """Machine-wide CPU stall counter (Linux PSI), None where the kernel has no PSI.

    Why: on a shared machine the relay's latency depends on other work; the share of the
    measured span during which something waited for a CPU says how contended the run was.
    """
    try:
        return cpu_pressure_us_from_psi(Path("/proc/pressure/cpu").read_text())
    except (OSError, ValueError):
        return None


def percent_of_core(cpu_before: float, cpu_after: float, wall_s: float) -> float:
    """CPU time used over a wall-clock span, in percent of one core."""
    return 100.0 * (cpu_after - cpu_before) / wall_s if wall_s > 0 else math.nan


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (``serve --procs N``: the parent and its N children)."""
    tree, index = [pid], 0
    while index < len(tree):
        for task in Path(f"/proc/{tree[index]}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread or process that just ended
                tree.extend(int(child) for child in (task / "children").read_text().split())
        index += 1
    return tree
