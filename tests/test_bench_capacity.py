"""Capacity search against simulated services whose capacity is known."""

from __future__ import annotations

import random

import pytest

from bench.capacity import CapacitySearch, ServiceLevels, search


class SimulatedRelay:
    """A relay that carries ``capacity`` pairs at full rate and degrades above it.

    Frame rate per stream is 30 fps less up to 0.5 fps of noise up to capacity; past it the
    relay's queues overflow and drop (at least 1.5 fps less, more with the overload); added
    latency grows with load. Each measurement costs ``probe_s`` of a fake
    clock, so the time budget is exercised without sleeping.
    """

    def __init__(
        self, capacity: int, seed: int, probe_s: float = 20.0, spike_chance: float = 0.0
    ) -> None:
        self.capacity = capacity
        self.rng = random.Random(seed)
        self.probe_s = probe_s
        self.now = 0.0
        self.levels = ServiceLevels(min_fps=29.0, stream_fraction=0.99, added_p99_ms=5.0)
        self.measured: list[int] = []
        self.spike_chance = spike_chance
        """Chance that other work on the machine spoils one measurement at any load."""

    def clock(self) -> float:
        return self.now

    def measure(self, pairs: int) -> bool:
        self.now += self.probe_s
        self.measured.append(pairs)
        if self.rng.random() < self.spike_chance:
            return False
        overload = max(1.0, pairs / self.capacity)
        drop = 1.5 if pairs > self.capacity else 0.0
        fps = [30.0 / overload - drop - self.rng.uniform(0, 0.5) for _ in range(2 * pairs)]
        added_p99 = 1.0 + 3.0 * min(pairs, self.capacity) / self.capacity + 20 * (overload - 1)
        return not self.levels.failures(fps, added_p99 + self.rng.uniform(0, 0.5))


@pytest.mark.parametrize("capacity", [1, 3, 4, 7, 37, 150, 999])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_search_finds_the_known_capacity_within_its_resolution(capacity: int, seed: int) -> None:
    service = SimulatedRelay(capacity, seed)
    strategy = CapacitySearch(start=4, resolution=0.1, max_pairs=2000, budget_s=10_000)
    found = search(service.measure, strategy, service.clock)
    assert found <= capacity, "reported a load the service does not carry"
    assert found >= capacity - max(1, 0.1 * capacity), (found, service.measured)
    assert strategy.stop_reason.startswith(("capacity bracketed", "even"))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_one_spoiled_measurement_does_not_cut_the_capacity(seed: int) -> None:
    """A failure is measured again before the search bisects below it."""
    service = SimulatedRelay(capacity=100, seed=seed, spike_chance=0.2)
    strategy = CapacitySearch(start=4, resolution=0.1, max_pairs=1000, budget_s=10_000)
    found = search(service.measure, strategy, service.clock)
    assert 90 <= found <= 100, (found, service.measured)


def test_a_single_failure_is_measured_again() -> None:
    outcomes = iter([True, False, True, True, False, False, True])
    strategy = CapacitySearch(start=4, max_pairs=64, resolution=0.5, budget_s=100)
    search(lambda pairs: next(outcomes), strategy, lambda: 0.0)
    assert [(p.pairs, p.holds) for p in strategy.probes] == [
        (4, True),
        (8, False),
        (8, True),  # the failure at 8 was not confirmed: 8 is good
        (16, True),
        (32, False),
        (32, False),  # confirmed: bisect between 16 and 32
        (24, True),  # 32 - 24 <= 0.5 * 24: done
    ]
    assert strategy.good == 24 and strategy.bad == 32


def test_search_stops_within_its_time_budget_and_reports_the_best_so_far() -> None:
    service = SimulatedRelay(capacity=500, seed=1, probe_s=60.0)
    strategy = CapacitySearch(start=2, budget_s=300.0, max_pairs=5000)
    found = search(service.measure, strategy, service.clock)
    assert service.now <= 300.0
    assert "time budget" in strategy.stop_reason
    assert found == max(p for p in service.measured if p <= 500)


def test_search_stops_at_max_pairs_when_everything_holds() -> None:
    service = SimulatedRelay(capacity=10_000, seed=1)
    strategy = CapacitySearch(start=4, max_pairs=50, budget_s=10_000)
    assert search(service.measure, strategy, service.clock) == 50
    assert service.measured == [4, 8, 16, 32, 50]
    assert "max-pairs" in strategy.stop_reason


def test_search_reports_zero_when_even_one_pair_fails() -> None:
    strategy = CapacitySearch(start=8, budget_s=100)
    assert search(lambda pairs: False, strategy, lambda: 0.0) == 0
    assert [p.pairs for p in strategy.probes] == [8, 8, 4, 4, 2, 2, 1, 1]  # each confirmed


def test_service_levels_name_what_failed() -> None:
    levels = ServiceLevels(min_fps=29.0, stream_fraction=0.99, added_p99_ms=5.0)
    assert levels.failures([30.0] * 100, 4.9) == []
    assert levels.failures([30.0] * 99 + [10.0], 1.0) == []  # 99 % is enough
    (fps_miss,) = levels.failures([30.0] * 98 + [10.0] * 2, 1.0)
    assert "98.0% of streams" in fps_miss
    (latency_miss,) = levels.failures([30.0] * 10, 5.0)
    assert "added latency p99 5.00 ms" in latency_miss
    assert levels.failures([30.0], float("nan")) != []
    assert levels.failures([], 1.0) == ["no streams delivered anything"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CapacitySearch(start=0)
    with pytest.raises(ValueError):
        CapacitySearch(factor=1.0)
