"""Printed figures: a figure that was not measured is a dash as wide as the number would be."""

from __future__ import annotations

from bench.table import DASH, cell


def test_a_missing_figure_is_a_dash_of_the_same_width() -> None:
    assert cell(12.345, "7.2f") == "  12.35"
    assert cell(None, "7.2f") == " " * 6 + DASH
    assert cell(3.0, ">5.0f", "%") == "    3%"
    assert cell(None, ">5.0f", "%") == "    " + DASH + " "  # the suffix's width kept
    assert cell(None, ".1f") == DASH
