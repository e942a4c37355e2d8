"""Smoke run of the signaling benchmark: checks the measuring code, never the timings."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from bench.results import SignalingResult
from bench.signaling_bench import SignalingLevels, table
from chatguard import cli
from tests.support.bench_results import signaling_case
from tests.support.ports import free_port


@pytest.mark.slow
def test_smoke_run_measures_pairs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "signaling.json"
    code = cli.main(
        [
            "bench",
            "signaling",
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
    msgspec.json.decode(out.read_bytes(), type=SignalingResult)  # what it wrote is its schema


def test_signaling_levels_hold_only_with_every_client_connected_no_error_and_p99_under() -> None:
    levels = SignalingLevels(max_pairing_p99_ms=50.0)
    assert levels.failures(signaling_case(49.9)) == []
    (latency,) = levels.failures(signaling_case(50.0))
    assert latency == "pairing latency p99 50.0 ms >= 50 ms"
    assert levels.failures(signaling_case(None)) == ["nobody was paired: no pairing latency"]
    (connected,) = levels.failures(signaling_case(1.0, connected=9))
    assert connected == "9 of 10 clients connected"
    (errors,) = levels.failures(signaling_case(1.0, errors=3))
    assert errors.startswith("3 client errors, e.g. ConnectionClosedError")
    assert len(levels.failures(signaling_case(80.0, connected=2, errors=1))) == 3


def test_the_table_shows_a_dash_where_nothing_was_measured() -> None:
    remote = signaling_case(None)  # a --target service: no server CPU or memory, nobody paired
    row = table([remote]).splitlines()[2]
    assert "nan" not in row.lower() and "–" in row and "None" not in row
