"""Small statistics shared by the benchmarks; a figure with no samples is None, never NaN.

Why None: it is what the JSON says (null), what a table prints as a dash, and what a service
level refuses explicitly, where a NaN would print as "nan" and compare false everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec


class Percentiles(msgspec.Struct, frozen=True):
    """Durations in milliseconds, nearest rank; None where there were no samples."""

    count: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(seconds: Sequence[float]) -> Percentiles:
    """p50/p90/p99/max of durations given in seconds, in milliseconds."""

    def ms(fraction: float) -> float | None:
        value = percentile(seconds, fraction)
        return None if value is None else value * 1000

    return Percentiles(len(seconds), ms(0.50), ms(0.90), ms(0.99), ms(1.0))


def below(value: float | None, limit: float) -> bool:
    """``value < limit``; a figure that was not measured is not below anything."""
    return value is not None and value < limit
