"""The collector's pauses, per generation, as the admin listener serves them."""

from __future__ import annotations

import gc

from chatguard.gc_pauses import GcPauses, GcPausesCollector, process_gc_pauses


def test_each_collection_is_timed_in_its_generation() -> None:
    now = [10.0]
    pauses = GcPauses(clock=lambda: now[0])
    for generation, took in ((0, 0.0005), (2, 0.3), (2, 0.04)):
        pauses.on_collection("start", {"generation": generation})
        now[0] += took
        pauses.on_collection("stop", {"generation": generation, "collected": 0})
    young, middle, full = pauses.by_generation
    assert sum(young.counts) == 1 and young.counts[0] == 1  # under the first bound, 1 ms
    assert sum(middle.counts) == 0
    assert sum(full.counts) == 2 and abs(full.sum - 0.34) < 1e-9


def test_the_process_recorder_is_hooked_once_and_sees_a_full_collection() -> None:
    pauses = process_gc_pauses()
    assert process_gc_pauses() is pauses
    assert gc.callbacks.count(pauses.on_collection) == 1
    before = sum(pauses.by_generation[2].counts)
    gc.collect()
    assert sum(pauses.by_generation[2].counts) == before + 1
    (family,) = GcPausesCollector(pauses).collect()
    counts = {s.labels["generation"]: s.value for s in family.samples if s.name.endswith("_count")}
    assert counts["2"] == before + 1
