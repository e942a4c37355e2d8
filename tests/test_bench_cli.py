"""`chatguard bench`: documented options, clear refusals, and short smoke runs (fields only)."""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import pytest

from bench.plot import curves, plot_relay_cases
from bench.relay_bench import dwell_range
from bench.search_cli import SearchStep, describe_search, run_search
from chatguard import cli
from tests.conftest import free_port


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_bench_option_is_documented() -> None:
    bench = _subparsers(cli._build_parser())["bench"]
    workloads = _subparsers(bench)
    assert set(workloads) == {"signaling", "relay", "strict"}
    for name, parser in workloads.items():
        options = {o for a in parser._actions for o in a.option_strings}
        assert {"--target", "--pairs", "--duration", "--json", "--plot", "--search"} <= options
        for action in parser._actions:
            assert action.help and len(action.help) > 10, (name, action.option_strings)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["relay", "--pairs", "0"], "--pairs"),
        (["relay", "--duration", "0"], "--duration"),
        (["relay", "--search", "--pairs", "8", "--max-pairs", "4"], "--max-pairs 4"),
        (["relay", "--stream-fraction", "1.5"], "--stream-fraction"),
        (["relay", "--target", "relay.example:8080"], "--target 'relay.example:8080'"),
        (["relay", "--relay-workers", "0"], "--relay-workers"),
        (["strict", "--search"], "--search is not implemented yet"),
        (["strict", "--target", "ws://x/ws"], "--target is not implemented yet"),
        (["signaling", "--plot", "s.png"], "--plot is not implemented yet"),
        (["signaling", "--target", "http://localhost:8080/ws"], "WebSocket URL"),
        (["signaling", "--pairs", "0"], "--pairs >= 1"),
        (["signaling", "--dwell-min", "5", "--dwell-max", "1"], "--dwell-min"),
    ],
)
def test_bad_options_are_refused_with_the_options_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"chatguard bench {argv[0]}: ") and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pairs", "4,x"], "comma-separated list of whole numbers"),
        (["--next-after", "30:10"], "need 0 < LO <= HI"),
        (["--next-after", "soon"], "give seconds as LO:HI"),
        (["--size", "800x600"], "invalid choice"),
    ],
)
def test_unparseable_values_are_refused_by_the_parser(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "relay", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_next_after_takes_a_range_one_value_or_off() -> None:
    assert dwell_range("10:30") == (10.0, 30.0)
    assert dwell_range("12") == (12.0, 12.0)
    assert dwell_range("off") is None


def test_an_unreachable_target_names_the_url_and_why(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"  # nothing listens there
    argv = ["bench", "signaling", "--target", url, "--connect-timeout", "0.5"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--pairs", "1", "--json", str(tmp_path / "s.json")])
    message = str(exit_info.value.code)
    assert url in message and "not reachable within 0.5 s" in message
    assert "refused" in message.lower() or "connect" in message.lower()


def test_search_glue_reports_capacity_and_what_saturated(tmp_path: Path) -> None:
    args = cli._build_parser().parse_args(
        ["bench", "relay", "--search", "--pairs", "2", "--max-pairs", "64"]
    )

    def measure(pairs: int) -> SearchStep:
        missed = [] if pairs <= 11 else ["added latency p99 9.00 ms >= 5 ms"]
        return SearchStep(pairs, missed, "relay" if missed else "none")

    found = run_search(measure, args)
    assert found["capacity_pairs"] == 11 and found["capacity_one_way_streams"] == 22
    assert [p["pairs"] for p in found["probes"]] == [2, 4, 8, 16, 16, 12, 12, 10, 11]
    assert found["saturated_at_first_failure"] == "relay"
    text = describe_search(found, "relay route")
    assert "capacity on the relay route: 11 pairs (22 one-way streams)" in text
    assert "ran out of CPU: relay" in text


def test_plot_curves_are_per_relay_and_in_order_of_load() -> None:
    def case(relay: str, pairs: int, fps: float, added: float) -> dict[str, object]:
        return {
            "relay": relay,
            "pairs": pairs,
            "delivered_fps": {"p5": fps},
            "latency_ms": {"added": {"p99_ms": added}},
        }

    cases = [
        case("forward", 16, 28.0, 9.0),
        case("forward", 4, 30.0, 1.0),
        case("forward", 2, math.nan, 1.0),  # no stream judged: no point
        case("naive", 1, 30, 40),
        case("strict", 1, 30, math.nan),  # no latency sample: no curve at all
    ]
    assert curves(cases) == {  # type: ignore[arg-type]
        "forward": [(4, 30.0, 1.0), (16, 28.0, 9.0)],
        "naive": [(1, 30, 40)],
    }


def test_a_plot_of_loads_that_measured_nothing_is_still_a_picture(tmp_path: Path) -> None:
    empty = {"relay": "forward", "pairs": 1, "delivered_fps": {"p5": math.nan}}
    empty["latency_ms"] = {"added": {"p99_ms": math.nan}}
    target = {"full_rate_fps": 29.0, "added_latency_p99_ms": 5.0}
    plot_relay_cases([empty], tmp_path / "p.png", target, None, "title")
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(120)
def test_relay_search_smoke_run_writes_search_json_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "relay.json", tmp_path / "relay.png"
    argv = ["bench", "relay", "--search", "--pairs", "1", "--max-pairs", "2", "--no-naive"]
    argv += ["--duration", "2", "--warmup", "0.5", "--clip-seconds", "1"]
    # Frame rate is not what this test checks: the search must run whatever this machine does.
    argv += ["--min-fps", "0.1", "--stream-fraction", "0.01", "--max-added-p99-ms", "1000"]
    assert cli.main([*argv, "--json", str(out), "--plot", str(png)]) == 0
    result = json.loads(out.read_text())
    found = result["search"]
    probes = found["probes"]
    pairs = [p["pairs"] for p in probes]
    assert pairs[0] == 1 and set(pairs) <= {1, 2}
    # a load is measured twice in a row only after it failed (a short smoke run on a busy
    # machine can miss even these loose levels); otherwise the search moves on upwards
    for before, after in itertools.pairwise(probes):
        assert after["pairs"] > before["pairs"] or not before["holds"], probes
    assert found["capacity_pairs"] in (0, 1, 2) and found["stop_reason"]
    assert [c["pairs"] for c in result["cases"]] == [p["pairs"] for p in found["probes"]]
    assert result["versions"]["chatguard"] and result["machine"]["cpus"] >= 1
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(120)
def test_strict_smoke_run_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "strict.json"
    argv = ["bench", "strict", "--pairs", "1", "--duration", "1", "--json", str(out)]
    assert cli.main(argv) == 0
    result = json.loads(out.read_text())
    assert len(result["runs"]) == 1
