"""Strict workload: its service levels, and short smoke runs in this process and through a
service (no timing asserts)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import msgspec
import pytest

from bench.results import StrictResult
from bench.strict_bench import StrictLevels, add_options, check_args
from chatguard import cli
from tests.support.bench_results import strict_run


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
@pytest.mark.timeout(180)
def test_smoke_run_counts_no_leak_and_writes_json(tmp_path: Path) -> None:
    out, png = tmp_path / "strict.json", tmp_path / "strict.png"
    argv = ["bench", "strict", "--pairs", "2", "--duration", "1", "--warmup", "1"]
    argv += ["--fastpath-frames", "10", "--json", str(out), "--plot", str(png)]
    assert cli.main(argv) == 0
    assert png.read_bytes().startswith(b"\x89PNG")  # one set of curves per engine
    data = json.loads(out.read_text())
    assert data["meta"]["settings"]["pairs"] == [2]
    # the test extra installs OpenVINO: both engines, the same load each
    assert [run["engine"].split()[0] for run in data["runs"]] == ["onnxruntime", "openvino"]
    for run in data["runs"]:
        assert run["streams"] == 2 and run["leaked_unsafe_frames"] == 0
        assert len(run["decided_fps_by_stream"]) == 2
        assert isinstance(run["service_levels_missed"], list) and run["saturated"]
        assert run["sent_fps_per_stream"] > 0 and run["gate_latency"]["count"] > 0
        # the clip cuts every 1-1.8 s: frames of cuts waited settle_s, the rest for verdicts
        assert run["verdict_wait"]["count"] > 0 and run["settle_wait"]["p50_ms"] > 500
    assert set(data["per_frame"]) == {run["engine"] for run in data["runs"]}
    assert data["fastpath_640x480"]["speedup_vs_opencv"] > 0
    msgspec.json.decode(out.read_bytes(), type=StrictResult)  # what it wrote is its schema


def test_one_engine_may_be_chosen_and_the_older_option_names_still_work() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser)
    args = parser.parse_args(["--engines", "onnxruntime", "--streams", "3", "--seconds", "2"])
    assert (args.engines, args.pairs, args.duration) == (["onnxruntime"], [3], 2.0)
    assert check_args(args) is None


def test_strict_levels_need_every_stream_at_rate_p99_under_target_and_no_leak() -> None:
    levels = StrictLevels(min_fps=29.0, max_gate_p99_ms=50.0)
    # the frames held while a cut settled waited a second (by design): not the level's
    assert levels.failures(strict_run([30.1, 29.0], 49.0)) == []
    (slow,) = levels.failures(strict_run([30.0, 30.0, 28.9], 10.0))
    assert slow == "slowest stream decided 28.9 fps < 29 fps"  # one slow stream is enough
    (latency,) = levels.failures(strict_run([30.0], 50.0))
    assert latency == "verdict wait p99 50.0 ms >= 50 ms"
    (nothing,) = levels.failures(strict_run([30.0], None))
    assert nothing == "no frame released on a verdict: no verdict wait"
    (leak,) = levels.failures(strict_run([30.0], 1.0, leaked=1))
    assert leak == "1 unsafe frames leaked"  # a leak fails the best load
    assert len(levels.failures(strict_run([], 70.0, leaked=2))) == 3


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
@pytest.mark.timeout(180)
def test_through_the_service_no_unsafe_frame_reaches_a_receiver(tmp_path: Path) -> None:
    """Two users on the strict route of a `chatguard serve` it starts, one whole clip loop.

    The direct pair in the same run is not moderated, so it must see the unsafe segment: that
    shows the leak counter counts, and the relayed receivers' zero means something.
    """
    out = tmp_path / "strict-service.json"
    argv = ["bench", "strict", "--service", "--pairs", "2", "--duration", "9", "--warmup", "0.5"]
    assert cli.main([*argv, "--next-after", "off", "--no-audio", "--json", str(out)]) == 0
    (case,) = json.loads(out.read_text())["cases"]
    assert case["relay"] == "strict" and case["pairs"] == 1
    assert case["unsafe_frames_received"] == 0
    assert case["packets"]["direct"]["unsafe_frames"] > 0
    assert case["moderation_notices"].get("partner:blocked", 0) >= 1
    assert case["delivered_fps"]["streams"] == 2 and case["errors"] == []
    assert case["latency_ms"]["relayed"]["count"] > 0
    # the worker's own figures, read from the service's /stats
    moderation = case["worker_moderation"]
    assert moderation["classified_per_s"] > 0 and moderation["gate_p99_ms_worst_second"] > 0
