"""The relay's own figures over a span, from the per-second reports of its workers."""

from __future__ import annotations

import pytest

from bench.relay_meter import summarize_moderation


def test_worker_moderation_reports_sum_to_a_span() -> None:
    def report(streams: int, p50: float | None, p99: float | None) -> dict[str, object]:
        return {
            "streams": streams,
            "classified_per_s": 2.0 * streams,
            "released_per_s": 30.0 * streams,
            "withheld_per_s": 1.0,
            "no_verdict": 1,
            "gate_p50_ms": p50,
            "gate_p99_ms": p99,
        }

    seconds = [
        [report(4, 1.0, 20.0), report(2, 3.0, 45.0)],  # two workers
        [report(4, 2.0, 30.0), report(2, None, None)],  # one released nothing that second
    ]
    summary = summarize_moderation(seconds)
    assert summary is not None
    assert summary.streams == 6 and summary.classified_per_s == pytest.approx(12.0)
    assert summary.gate_p99_ms_worst_second == 45.0  # the worst second's worst worker
    assert summary.gate_p50_ms_median_second == 2.0 and summary.no_verdict == 4
    assert summarize_moderation([]) is None
