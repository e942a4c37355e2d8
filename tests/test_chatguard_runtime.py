"""The serving processes' collector settings: short young collections by the clock, rare full
ones (``chatguard.runtime``)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from chatguard.runtime import GC_THRESHOLDS, YoungCollections, tune_gc_for_serving


@pytest.fixture
def collector_settings() -> Iterator[list[int]]:
    """Restores the thresholds and unfreezes after a test; yields the generations collected
    meanwhile (from ``gc.callbacks``)."""
    thresholds = gc.get_threshold()
    seen: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def test_serving_sets_the_thresholds(collector_settings: list[int]) -> None:
    tune_gc_for_serving()
    assert gc.get_threshold() == GC_THRESHOLDS


async def test_young_collections_come_by_the_clock_and_the_middle_one_when_due(
    collector_settings: list[int],
) -> None:
    """With the allocation trigger out of reach, every collection seen is the clock's: the
    young generation each interval, the middle one once three young ones made its count reach
    its threshold (3 here): every fourth collection. Never a full one."""
    gc.set_threshold(10**9, 3, 10**9)
    collections = YoungCollections(interval_s=0.01)
    await collections.start()
    await asyncio.sleep(0.3)
    await collections.stop()
    seen = list(collector_settings)
    assert len(seen) >= 9, seen
    assert 2 not in seen
    assert abs(seen.count(1) - len(seen) / 4) <= 1, seen
    collections_after_stop = len(collector_settings)
    await asyncio.sleep(0.05)
    assert len(collector_settings) == collections_after_stop
