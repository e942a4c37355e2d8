"""How long the garbage collector stops a serving process, per generation, for ``/metrics``
(``chatguard_gc_pause_seconds``).

Why: pairing latency is made on the event loop, and a collection stops the loop. A full
collection walks every object the process tracks, about 100 per connected client
(``python -m bench.signaling_gc``), so its pause grows with the clients: 0.14-0.5 s with 2,000
on the 2-core bench machine. ``chatguard.runtime`` makes full collections rare; this shows an
operator whether they are, and what each cost, without a profiler. (The number of tracked
objects is not offered as a gauge: counting them means listing them, 30 ms of stopped loop
per scrape at a million objects.)
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.control import Histogram
from signaling.metrics import PREFIX, add_histogram

GC_PAUSE_BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
GENERATIONS = 3


class GcPauses:
    """Each collection's duration, per generation, from ``gc.callbacks`` (``on_collection``);
    ``clock`` in seconds."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._started = 0.0
        self.by_generation = tuple(Histogram.empty(GC_PAUSE_BOUNDS_S) for _ in range(GENERATIONS))

    def on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = self._clock()
        else:
            self.by_generation[info["generation"]].observe(self._clock() - self._started)


class GcPausesCollector(Collector):
    def __init__(self, pauses: GcPauses) -> None:
        self._pauses = pauses

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            f"{PREFIX}_gc_pause_seconds",
            "How long each garbage collection stopped the process, by generation (2: full).",
            labels=["generation"],
        )
        for generation, histogram in enumerate(self._pauses.by_generation):
            add_histogram(family, [str(generation)], histogram)
        yield family


_process_pauses: GcPauses | None = None


def process_gc_pauses() -> GcPauses:
    """This process's recorder, hooked into ``gc.callbacks`` on the first call: the collector
    is the process's, however many services (tests) it holds."""
    global _process_pauses
    if _process_pauses is None:
        _process_pauses = GcPauses()
        gc.callbacks.append(_process_pauses.on_collection)
    return _process_pauses
