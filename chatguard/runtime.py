"""Process-wide tuning for long-running chatguard servers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Final

GC_THRESHOLDS: Final = (5_000, 5, 1000)
"""Young collections every 5,000 net allocations, the middle generation every 5 of them, full
collections after 1,000 of those (and, as Python has it, only once the old generation grew by a
quarter). Why small young thresholds: a collection's pause is the number of objects it walks
(~0.7 µs each on the 2-core bench machine), and the middle generation holds up to threshold0 x
threshold1 survivors; at (20,000, 50) a ramp to 10,000 clients made one of 1 million objects,
a 449 ms stop of the event loop."""

YOUNG_COLLECTION_INTERVAL_S: Final = 0.25
"""How often :func:`collect_young_garbage` collects the young generations."""


def tune_gc_for_serving() -> None:
    """Make cyclic-GC pauses short and full collections rare, because the pauses are what a
    pairing's p99 latency is made of.

    With 5,000 WebSocket clients the signaling process holds a few million live objects, and
    every full collection walks all of them: 100-300 ms pauses were measured, while the
    collector found no cycles at all (connections and messages are freed by reference
    counting). Freezing what start-up created and raising the last threshold took pairing p99
    in ``bench.signaling_bench`` from ~35-50 ms to ~20 ms. Collection still runs, only less
    often; :func:`collect_young_garbage` keeps the young collections small.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def collect_young_garbage(interval_s: float = YOUNG_COLLECTION_INTERVAL_S) -> None:
    """Collect the young generation every ``interval_s``, and the middle one when its
    threshold is due, until cancelled.

    Why by the clock: Python starts a young collection when allocations minus deallocations
    pass the first threshold, and under churn an old object freed for each new one keeps that
    count low while the young generation keeps growing. Measured with 10,000 clients in calls
    of 10-30 s (``chatguard bench signaling``, ``chatguard_gc_pause_seconds``): young
    collections came every ~10 s and walked 155,000-200,000 objects, 113-138 ms each, the
    pairing p99 of their second. Collected every 0.25 s they hold what a quarter of a second
    made. Python only promotes to a full collection from its own trigger, so full collections
    stay as rare as :func:`tune_gc_for_serving` makes them."""
    middle_threshold = gc.get_threshold()[1]
    while True:
        await asyncio.sleep(interval_s)
        gc.collect(1 if gc.get_count()[1] >= middle_threshold else 0)


class YoungCollections:
    """:func:`collect_young_garbage` as a service's background task (``start``/``stop``)."""

    def __init__(self, interval_s: float = YOUNG_COLLECTION_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(collect_young_garbage(self.interval_s))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
