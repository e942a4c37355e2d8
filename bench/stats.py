"""Small, dependency-free statistics shared by the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in [0, 1]); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max of durations given in seconds, reported in milliseconds."""
    return {
        "count": float(len(seconds)),
        "p50_ms": percentile(seconds, 0.50) * 1000,
        "p90_ms": percentile(seconds, 0.90) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "max_ms": (max(seconds) * 1000) if seconds else math.nan,
    }
