"""The motion probe replays panned photographs through the real gate: a slow pan flows."""

from __future__ import annotations

from bench.strict_motion_probe import FRAMES, play
from relay.strict.gate import GateConfig


def test_a_slow_pan_flows_through_the_gate() -> None:
    released, dropped, classified = play("chelsea", 2, 1, GateConfig())
    assert dropped == 0 and released >= FRAMES - 10  # the rest wait for the last verdicts
    assert 0 < classified < FRAMES // 2  # a slow pan is a new scene now and then, not always
