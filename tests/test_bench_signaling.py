"""Smoke run of the signaling benchmark: checks the measuring code, never the timings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import msgspec
import pytest

from bench.results import SignalingResult
from bench.signaling_bench import MeasuredWindow, SignalingLevels, check_args, table
from bench.signaling_load import PairingClock
from bench.signaling_setups import Setup, comma_setups
from chatguard import cli
from tests.support.bench_results import signaling_case
from tests.support.ports import free_port
from tests.support.redis_server import require_redis_server


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
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
            "--server-compression",
            "--waiting-clients",
            "10",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    written = json.loads(out.read_text())
    (result,) = written["cases"]
    assert result["setup"] == "memory" and result["redis"] is None
    # the clients offered compression as a browser does, and the service was told to accept it
    assert result["websocket_extensions"].startswith("permessage-deflate")
    (setup,) = written["setups"]
    assert setup["waiting"]["clients"] == 10 and setup["waiting"]["redis_bytes_per_client"] is None
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


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
def test_two_processes_on_a_local_redis_count_redis_work_per_pairing(tmp_path: Path) -> None:
    """`--redis local --procs 2`: a redis-server started and stopped here, two signaling
    processes sharing it, Redis's counters per pairing and per waiting user."""
    require_redis_server()
    out = tmp_path / "signaling.json"
    command = ["bench", "signaling", "--redis", "local", "--procs", "2", "--clients", "20"]
    command += ["--duration", "2", "--ramp", "0.5", "--dwell-min", "0.2", "--dwell-max", "0.4"]
    command += ["--waiting-clients", "20", "--port", str(free_port()), "--json", str(out)]
    assert cli.main(command) == 0
    written = msgspec.json.decode(out.read_bytes(), type=SignalingResult)
    (case,) = written.cases
    assert case.setup == "redis-procs2"
    assert case.peak_connected_clients == 20 and case.errors == 0
    assert case.pairing_latency.count > 0  # a node's "waiting" no longer hides every pairing
    assert case.websocket_extensions == "none"  # the service refuses compression by default
    assert case.redis is not None and case.pairs_total > 0
    assert case.redis.commands_per_pairing is not None and case.redis.commands_per_pairing > 1
    assert 0 < case.redis.round_trips_per_pairing <= case.redis.commands_per_pairing  # type: ignore[operator]
    assert case.redis.by_command["evalsha"] > 0  # the pool's script did the pairing
    assert case.redis.cpu_ms_per_pairing is not None and case.redis.cpu_ms_per_pairing > 0
    (setup,) = written.setups
    assert setup.waiting is not None and setup.waiting.redis_bytes_per_client is not None
    assert setup.waiting.redis_bytes_per_client > 0


def test_the_later_actor_of_a_pair_gives_pairing_latency_the_earlier_queue_time() -> None:
    clock = PairingClock()
    assert clock.add("p1", acted_at=10.0, paired_at=12.0) is None  # waited 2 s for someone
    assert clock.add("p1", acted_at=11.99, paired_at=12.003) == pytest.approx((0.013, 2.0))
    assert clock.add("p2", acted_at=5.5, paired_at=5.6) is None  # the later one first
    assert clock.add("p2", acted_at=1.0, paired_at=5.6) == pytest.approx((0.1, 4.6))


def test_setups_are_named_once_and_bad_names_say_what_is_allowed() -> None:
    assert [s.name for s in comma_setups("memory,redis,redis-procs2")] == [
        "memory",
        "redis",
        "redis-procs2",
    ]
    assert comma_setups("redis-procs3") == [Setup(procs=3, redis=True)]
    for bad in ("memory-procs2", "disk", "redis-procs0", "memory,memory", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="memory"):
            comma_setups(bad)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--procs", "2"], "--procs above 1 needs a shared pool"),
        (["--compare", "memory,redis", "--procs", "2", "--redis", "local"], "leave out --procs"),
        (["--redis", "http://x"], "give redis://HOST:PORT/DB or `local`"),
        (["--target", "ws://h:1/ws", "--redis", "local"], "not with --target"),
        (["--target", "ws://h:1/ws", "--compare", "memory"], "not with --target"),
        (["--waiting-clients", "-1"], "--waiting-clients >= 0"),
    ],
)
def test_setup_options_are_refused_before_anything_starts(options: list[str], problem: str) -> None:
    from chatguard.bench_cli import build_parser

    args = build_parser(["signaling"]).parse_args(["signaling", *options])
    assert problem in (check_args(args) or "")


def test_the_measured_seconds_start_once_the_ramp_is_over_and_the_clients_are_in() -> None:
    window = MeasuredWindow(ramp_end=10.0, latest_start=15.0, clients=1000)
    assert not window.measuring(9.0, 1000)  # still ramping
    assert not window.measuring(11.0, 990)  # ramp over, 10 still connecting
    assert window.measuring(12.0, 995) and window.measuring(13.0, 10)  # in, and stays so
    assert window.seconds(20.0) == 8.0
    late = MeasuredWindow(ramp_end=10.0, latest_start=15.0, clients=1000)
    assert not late.measuring(14.0, 500) and late.measuring(15.0, 500)  # at the latest
    assert MeasuredWindow(10.0, 15.0, 1).seconds(20.0) == 0.0  # never started
