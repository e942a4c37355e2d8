"""Percentiles of the benchmarks: nearest rank, and no figure (not NaN) without samples."""

from __future__ import annotations

from bench.stats import Percentiles, below, percentile, summarize_ms


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.99) == 5.0
    assert percentile(values, 0.0) == 1.0
    summary = summarize_ms([0.001] * 99 + [0.1])
    assert summary == Percentiles(100, 1.0, 1.0, 1.0, 100.0)


def test_no_samples_is_no_figure_and_below_no_limit() -> None:
    assert percentile([], 0.5) is None  # null in the JSON, a dash in a table
    assert summarize_ms([]) == Percentiles(0, None, None, None, None)
    assert below(1.0, 2.0) and not below(2.0, 2.0) and not below(None, 2.0)
