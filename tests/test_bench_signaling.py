"""Smoke run of the signaling benchmark: checks the measuring code, never the timings."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench import signaling_bench
from bench.signaling_bench import SignalingLevels
from bench.stats import percentile, summarize_ms
from tests.conftest import free_port


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.99) == 5.0
    assert percentile(values, 0.0) == 1.0
    assert math.isnan(percentile([], 0.5))
    summary = summarize_ms([0.001] * 99 + [0.1])
    assert summary["p50_ms"] == 1.0 and summary["p99_ms"] == 1.0 and summary["max_ms"] == 100.0


def test_smoke_run_measures_pairs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "signaling.json"
    code = signaling_bench.main(
        [
            "--clients",
            "20",
            "--duration",
            "2",
            "--ramp",
            "0.5",
            "--dwell-min",
            "0.2",
            "--dwell-max",
            "0.4",
            "--port",
            str(free_port()),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    (result,) = json.loads(out.read_text())["cases"]
    assert result["peak_connected_clients"] == 20
    assert result["errors"] == 0
    assert result["pairs_per_second"] > 0
    assert result["pairing_latency"]["count"] > 0
    assert 0 < result["pairing_latency"]["p50_ms"] <= result["pairing_latency"]["p99_ms"]
    assert result["signal_relay_latency"]["count"] > 0
    assert result["server_cpu_percent_of_one_core"] > 0


def _signaling_case(p99_ms: float, connected: int = 10, errors: int = 0) -> dict[str, object]:
    return {
        "clients_requested": 10,
        "peak_connected_clients": connected,
        "errors": errors,
        "error_examples": ["ConnectionClosedError: no close frame"] * min(errors, 1),
        "pairing_latency": {"p99_ms": p99_ms},
    }


def test_signaling_levels_hold_only_with_every_client_connected_no_error_and_p99_under() -> None:
    levels = SignalingLevels(max_pairing_p99_ms=50.0)
    assert levels.failures(_signaling_case(49.9)) == []
    (latency,) = levels.failures(_signaling_case(50.0))
    assert latency == "pairing latency p99 50.0 ms >= 50 ms"
    assert levels.failures(_signaling_case(math.nan)) != []  # nobody paired
    (connected,) = levels.failures(_signaling_case(1.0, connected=9))
    assert connected == "9 of 10 clients connected"
    (errors,) = levels.failures(_signaling_case(1.0, errors=3))
    assert errors.startswith("3 client errors, e.g. ConnectionClosedError")
    assert len(levels.failures(_signaling_case(80.0, connected=2, errors=1))) == 3
