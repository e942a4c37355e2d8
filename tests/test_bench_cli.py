"""`chatguard bench`: documented options, clear refusals, and short smoke runs (fields only)."""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.provenance import settings
from bench.relay_options import dwell_range
from bench.search_cli import SearchStep, describe_search, run_search
from chatguard import cli
from chatguard.bench_cli import build_parser
from tests.support.ports import free_port


def parse(argv: list[str]) -> argparse.Namespace:
    """``chatguard bench ARGV``'s options, as the command parses them."""
    return build_parser(argv).parse_args(argv)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


HEAVY = ("av", "aiortc", "onnxruntime", "cv2", "skimage", "matplotlib", "numpy")
PROBE = """
import contextlib, io, json, sys, time
started = time.perf_counter()
from chatguard import cli
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    cli.main(sys.argv[2:])
elapsed = time.perf_counter() - started
watched = ("bench", *sys.argv[1].split(","))
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in watched)
print(json.dumps({"elapsed": elapsed, "loaded": loaded, "help": out.getvalue()}))
"""


def help_in_a_fresh_process(*argv: str) -> dict[str, object]:
    """Import the CLI and ask it for ``--help`` in a new interpreter: what it imported and how
    long import and parsing took (without the interpreter's own start)."""
    command = [sys.executable, "-c", PROBE, ",".join(HEAVY), *argv, "--help"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_chatguard_help_lists_bench_and_imports_no_workload_nor_media_library() -> None:
    answer = help_in_a_fresh_process()
    assert "bench" in str(answer["help"]) and "measure what a deployment carries" in str(
        answer["help"]
    )
    # What makes it quick (~0.07 s here, 0.8-1.8 s when it imported the workloads) is what it
    # does not import; its time is not asserted, since a timed unit test fails on a busy machine.
    assert answer["loaded"] == []


def test_bench_help_lists_the_workloads_from_the_registry_alone() -> None:
    answer = help_in_a_fresh_process("bench")
    assert all(name in str(answer["help"]) for name in ("signaling", "relay", "strict"))
    assert answer["loaded"] == ["bench", "bench.extra", "bench.registry", "bench.workload"]


def test_a_workloads_help_imports_that_workload_only() -> None:
    answer = help_in_a_fresh_process("bench", "signaling")
    loaded = answer["loaded"]
    assert isinstance(loaded, list) and "bench.signaling_bench" in loaded
    assert not {"bench.relay_bench", "bench.strict_bench", "bench.relay_cases"} & set(loaded)
    assert not {m.partition(".")[0] for m in loaded} & set(HEAVY)


def test_every_bench_option_is_documented() -> None:
    assert set(_subparsers(build_parser([]))) == {"signaling", "relay", "strict", "strict-browser"}
    for name in ("signaling", "relay", "strict", "strict-browser"):
        parser = _subparsers(build_parser([name]))[name]
        options = {o for a in parser._actions for o in a.option_strings}
        if name == "strict-browser":  # one call per route, no load to search
            assert {"--seconds", "--max-bitrate", "--routes", "--json"} <= options
        else:
            assert {"--target", "--pairs", "--duration", "--json", "--plot", "--search"} <= options
        for action in parser._actions:
            assert action.help and len(action.help) > 10, (name, action.option_strings)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["relay", "--pairs", "0"], "--pairs"),
        (["relay", "--duration", "0"], "--duration"),
        (["relay", "--search", "--pairs", "8", "--max-pairs", "4"], "--max-pairs 4"),
        (["relay", "--stream-fraction", "1.5"], "--stream-fraction 1.5: must be > 0 and <= 1"),
        (["relay", "--target", "relay.example:8080"], "--target 'relay.example:8080'"),
        (["relay", "--relay-workers", "0"], "--relay-workers"),
        (["strict", "--target", "x.example:1"], "--target 'x.example:1'"),
        (["strict", "--pairs", "0"], "--pairs"),
        (["strict", "--duration", "0"], "--duration must be > 0"),
        (["strict", "--engines", "onnxruntime,tensorrt"], "--engines: choose from onnxruntime"),
        (["strict", "--search", "--max-gate-p99-ms", "0"], "--max-gate-p99-ms 0: must be > 0"),
        (["strict", "--search", "--min-fps", "-1"], "--min-fps -1: must be > 0"),
        (["strict", "--pin", "0"], "--pin 0: give two cores"),
        (["strict", "--search", "--pairs", "8", "--max-pairs", "4"], "--max-pairs 4"),
        (["signaling", "--search", "--max-pairing-p99-ms", "0"], "--max-pairing-p99-ms 0"),
        (["signaling", "--search", "--clients", "40", "--max-pairs", "10"], "--pairs 20, above"),
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


def test_an_unreachable_target_names_the_url_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"  # nothing listens there
    argv = ["bench", "signaling", "--target", url, "--connect-timeout", "0.5"]
    assert cli.main([*argv, "--pairs", "1", "--json", str(tmp_path / "s.json")]) == 1
    message = capsys.readouterr().err
    assert message.startswith(f"chatguard bench signaling: {url} is not reachable within 0.5 s")
    assert message.count("\n") == 1 and not (tmp_path / "s.json").exists()
    assert "refused" in message.lower() or "connect" in message.lower()


def test_search_glue_reports_capacity_and_what_saturated(tmp_path: Path) -> None:
    args = parse(["relay", "--search", "--pairs", "2", "--max-pairs", "64"])

    def measure(pairs: int) -> SearchStep:
        missed = [] if pairs <= 11 else ["added latency p99 9.00 ms >= 5 ms"]
        return SearchStep(pairs, missed, "relay" if missed else "none")

    found = run_search(measure, args)
    assert found.capacity == 11 and found.unit == "pairs"
    assert [p.load for p in found.probes] == [2, 4, 8, 16, 16, 12, 12, 10, 11]
    assert found.saturated_at_first_failure == "relay"
    assert found.service_levels == {"min_fps": 29, "stream_fraction": 0.99, "added_p99_ms": 5}
    text = describe_search(found, "relay route")
    assert "capacity of the relay route: 11 pairs (22 one-way streams) holding >= 29 fps" in text
    assert "ran out of CPU: relay" in text


def test_search_glue_takes_each_workloads_levels_and_unit() -> None:
    args = parse(["strict", "--search", "--pairs", "1", "--max-gate-p99-ms", "40"])
    found = run_search(lambda n: SearchStep(n, [] if n <= 3 else ["gate p99"]), args)
    assert found.capacity == 3 and found.capacity_text == "3 streams"
    assert found.service_levels == {"min_fps": 29, "max_gate_p99_ms": 40}
    assert "verdict wait p99 < 40 ms and no unsafe frame leaked" in describe_search(found, "x")
    assert found.saturated_at_first_failure is None
    args = parse(["signaling", "--max-pairing-p99-ms", "20"])
    written = settings(args)  # what the JSON keeps: the options, not the parser's levels object
    assert written["max_pairing_p99_ms"] == 20 and "_service_levels" not in written


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
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
    pairs = [p["load"] for p in probes]
    assert pairs[0] == 1 and set(pairs) <= {1, 2}
    # a load is measured twice in a row only after it failed (a short smoke run on a busy
    # machine can miss even these loose levels); otherwise the search moves on upwards
    for before, after in itertools.pairwise(probes):
        assert after["load"] > before["load"] or not before["holds"], probes
    assert found["capacity"] in (0, 1, 2) and found["stop_reason"]
    assert [c["pairs"] for c in result["cases"]] == [p["load"] for p in found["probes"]]
    assert result["versions"]["chatguard"] and result["machine"]["cpus"] >= 1
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
@pytest.mark.timeout(120)
def test_signaling_search_smoke_run_writes_every_case_and_a_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "signaling.json", tmp_path / "signaling.png"
    argv = ["bench", "signaling", "--search", "--pairs", "2", "--max-pairs", "4"]
    argv += ["--duration", "1", "--ramp", "0.2", "--dwell-min", "0.1", "--dwell-max", "0.2"]
    # Latency is not what this test checks: the search must run whatever this machine does.
    argv += ["--max-pairing-p99-ms", "1000", "--search-budget", "30", "--port", str(free_port())]
    argv += ["--waiting-clients", "0"]
    assert cli.main([*argv, "--json", str(out), "--plot", str(png)]) == 0
    result = json.loads(out.read_text())
    (setup,) = result["setups"]
    assert setup["setup"] == "memory" and setup["waiting"] is None
    found = setup["search"]
    assert found["unit"] == "pairs" and found["capacity"] in (0, 2, 4) and found["stop_reason"]
    assert found["service_levels"] == {"max_pairing_p99_ms": 1000}
    probes = found["probes"]
    assert probes[0]["load"] == 2 and {p["load"] for p in probes} <= {2, 4}
    assert [c["clients_requested"] for c in result["cases"]] == [2 * p["load"] for p in probes]
    for case, probe in zip(result["cases"], probes, strict=True):
        assert case["service_levels_missed"] == probe["missed"]
        assert case["saturated"] == probe["saturated"] and case["saturated"] is not None
    assert result["settings"]["search"] is True and result["versions"]["chatguard"]
    _assert_png(png)
