"""The relay's CPU and memory during a load: its processes' ``/proc`` here, else ``/stats``.

Why both: /proc is exact and also gives run-queue waits, but only on the relay's own machine;
a deployment elsewhere is measured by what its workers report every second. Where there is a
service, the workers' own moderation figures (gate latency) come from ``/stats`` too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench.procfs import cpu_seconds, percent_of_core, rss_kib, run_delay_s
from bench.results import WorkerModeration
from bench.service import read_stats


class RelayMeter:
    """Samples the relay about once a second; :meth:`span` sums since :meth:`mark`."""

    def __init__(self, pids: list[int], stats_url: str | None) -> None:
        self.pids = pids
        self.stats_url = stats_url
        self._cpu_marks: list[float] = []
        self._wait_marks: list[float] = []
        self._stats_cpu: list[float] = []
        self._moderation: list[list[dict[str, Any]]] = []
        self._last = (time.monotonic(), self._cpu_total())

    def _cpu_total(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids)

    def _workers(self) -> list[dict[str, Any]]:
        assert self.stats_url is not None
        workers: list[dict[str, Any]] = read_stats(self.stats_url).get("relay_workers", [])
        return workers

    def rss_kib(self) -> int:
        if self.pids:
            return sum(rss_kib(p) for p in self.pids)
        return round(sum(float(w["rss_mib"]) for w in self._workers()) * 1024)

    def mark(self) -> None:
        """Start of the measured span."""
        self._cpu_marks = [cpu_seconds(p) for p in self.pids]
        self._wait_marks = [run_delay_s(p) for p in self.pids]
        self._stats_cpu = []
        self._moderation = []

    def sample(self) -> float:
        """About once a second: the relay's CPU in % of a core since the last sample.

        Remote: what the workers last reported (over their own last second), kept for
        :meth:`span`.
        """
        workers = self._workers() if self.stats_url is not None else []
        reports = [w["moderation"] for w in workers if w.get("moderation")]
        if reports:
            self._moderation.append(reports)
        if not self.pids:
            total = float(sum(w["cpu_percent"] for w in workers))
            self._stats_cpu.append(total)
            return total
        now, cpu = time.monotonic(), self._cpu_total()
        (then, before), self._last = self._last, (now, cpu)
        return percent_of_core(before, cpu, now - then)

    def span(self, wall_s: float) -> tuple[float | None, float | None]:
        """(CPU in % of a core, run-queue wait in % of the span) since :meth:`mark`; None
        where not known (no report from a remote service; a remote relay's waits)."""
        if not self.pids:
            cpu = sum(self._stats_cpu) / len(self._stats_cpu) if self._stats_cpu else None
            return cpu, None
        cpu = sum(
            percent_of_core(a, cpu_seconds(p), wall_s)
            for p, a in zip(self.pids, self._cpu_marks, strict=True)
        )
        waited = max(
            100 * (run_delay_s(p) - w) / wall_s
            for p, w in zip(self.pids, self._wait_marks, strict=True)
        )
        return cpu, waited

    def moderation(self) -> WorkerModeration | None:
        """The workers' strict-route reports since :meth:`mark`, or None if there were none."""
        return summarize_moderation(self._moderation)


def summarize_moderation(samples: Sequence[Sequence[dict[str, Any]]]) -> WorkerModeration | None:
    """Per-second worker reports (each a list, one per worker) over a span, in a few figures.

    The gate's p99 is the worst second's worst worker (a per-second p99 cannot be averaged
    into a span's p99; the worst is the honest bound), its p50 the median second's.
    """
    if not samples:
        return None
    p50s = sorted(r["gate_p50_ms"] for s in samples for r in s if r["gate_p50_ms"] is not None)
    p99s = [r["gate_p99_ms"] for s in samples for r in s if r["gate_p99_ms"] is not None]
    return WorkerModeration(
        seconds=len(samples),
        streams=max(sum(r["streams"] for r in s) for s in samples),
        classified_per_s=sum(r["classified_per_s"] for s in samples for r in s) / len(samples),
        withheld_per_s=sum(r["withheld_per_s"] for s in samples for r in s) / len(samples),
        no_verdict=sum(r["no_verdict"] for s in samples for r in s),
        gate_p50_ms_median_second=p50s[len(p50s) // 2] if p50s else None,
        gate_p99_ms_worst_second=max(p99s) if p99s else None,
    )
