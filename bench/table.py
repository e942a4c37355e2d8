"""Numbers in the benchmarks' printed tables and progress lines: a figure that was not measured
(None) is a dash of the same width, never "nan"."""

from __future__ import annotations

from typing import Final

DASH: Final = "–"


def cell(value: float | None, spec: str, suffix: str = "") -> str:
    """``value`` formatted with ``spec`` (e.g. ``"6.2f"``) plus ``suffix``; a right-aligned
    dash as wide as ``spec`` asks for where there is no value."""
    if value is None:
        width = spec.split(".")[0].lstrip("<>^")
        return f"{DASH:>{width or 1}}" + " " * len(suffix)
    return f"{value:{spec}}{suffix}"
