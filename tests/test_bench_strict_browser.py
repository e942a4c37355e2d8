"""`chatguard bench strict-browser`: the goals it judges a strict call by, its refusals, and a short
smoke run with two real Chromium pages per route (fields only: 5 s calls judge nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.results import BrowserCall
from bench.strict_browser_bench import goals_missed, safe_share
from chatguard import cli
from tests.support.browser import requires_chromium

GOOD_SENDER: dict[str, Any] = {
    "width": 640,
    "height": 480,
    "fps": 29.5,
    "kbit_s": 900,
    "limitation": {"none": 30},
}


def call(
    route: str, safe: int, unsafe: int = 0, seconds: float = 60.0, **sender: Any
) -> BrowserCall:
    return BrowserCall(
        route=route,
        seconds=seconds,
        max_bitrate_bps=None,
        unsafe_frames=unsafe,
        safe_frames=safe,
        unreadable_frames=0,
        unsafe_run_starts=[],
        received_sizes={},
        sender={**GOOD_SENDER, **sender},
        rembs_sent={},
    )


def test_a_strict_call_that_meets_every_goal_misses_none() -> None:
    calls = [call("relay", 1000, unsafe=700), call("strict", 950)]
    assert safe_share(calls) == pytest.approx(0.95)
    assert goals_missed(calls) == []


def test_each_goal_missed_is_named() -> None:
    relay = call("relay", 1000, unsafe=700, seconds=20.0)  # a shorter baseline counts per second
    strict = call(
        "strict",
        2000,
        unsafe=3,
        width=480,
        height=360,
        fps=21.0,
        limitation={"none": 2, "bandwidth": 28},
    )
    assert safe_share([relay, strict]) == pytest.approx((2000 / 60) / (1000 / 20))
    assert goals_missed([relay, strict]) == [
        "3 unsafe frames reached the page",
        "the sender sent 480x360, not 640x480",
        "the sender encoded 21.0 fps < 25",
        "the sender was limited ({'bandwidth': 28} samples by qualityLimitationReason)",
        "0.67 of the relay route's safe frames < 0.9",
    ]


def test_without_a_baseline_there_is_no_share_and_without_a_strict_call_no_goal() -> None:
    assert safe_share([call("strict", 900)]) is None
    assert goals_missed([call("strict", 900)]) == []
    assert safe_share([call("relay", 0), call("strict", 10)]) is None
    assert goals_missed([call("relay", 1000, unsafe=700)]) == []
    too_short = call("strict", 10)
    too_short.sender = {}
    assert goals_missed([too_short]) == ["the call was too short to judge the sender"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--seconds", "2"], "--seconds must be >= 4"),
        (["--routes", "relay,direct"], "--routes: choose from relay, strict"),
        (["--max-bitrate", "1000"], "--max-bitrate must be >= 30000"),
        (["--moderation", "settle_s"], "--moderation wants KEY=VALUE, got 'settle_s'"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    assert cli.main(["bench", "strict-browser", *argv, "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("chatguard bench strict-browser: ") and words in captured.err
    assert captured.out == "" and not out.exists()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
@requires_chromium
@pytest.mark.timeout(240)
def test_smoke_run_writes_both_routes_and_the_share(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "strict-browser.json"
    argv = ["bench", "strict-browser", "--seconds", "5", "--moderation", "settle_s=1.0"]
    assert cli.main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    relay, strict = result["calls"]
    assert (relay["route"], strict["route"]) == ("relay", "strict")
    assert relay["safe_frames"] > 0 and relay["unsafe_frames"] > 0  # the camera shows both
    assert strict["sender"]["width"] > 0 and "limitation" in strict["sender"]
    assert result["safe_share"] > 0 and isinstance(result["goals_missed"], list)
    assert result["settings"]["moderation"] == ["settle_s=1.0"] and result["versions"]["chatguard"]
    printed = capsys.readouterr().out
    assert "strict/relay safe frames per second" in printed and "loopback" in printed
