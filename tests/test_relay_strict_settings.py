"""The strict route's decision rules travel from `[moderation]` to every worker's gate."""

from __future__ import annotations

import random

import pytest

from relay import control as rc
from relay.worker import RelayWorker
from signaling.call_hub import SignalingHub
from signaling.config import ConfigError, config_from_mapping
from signaling.matchmaking import Matchmaker
from signaling.route_policy import Route, RoutePolicy

RULES = {
    "reference_margin": 0.7,
    "resume_after_safe": 5,
    "alert_s": 3.0,
    "alert_classifications_per_s": 6.0,
    "scene_peak_cells": 8,
    "scene_peak_threshold": 30.0,
    "detail_growth": 0.25,
    "settle_s": 0.5,
}
DECODE_LIMITS = {"max_decoded_pixels": 1280 * 720, "decode_budget": 0.1}
WORKER_SETTINGS = {**DECODE_LIMITS, "decision_log": True}


def test_moderation_rules_reach_the_gate_and_the_policy() -> None:
    config = config_from_mapping({"moderation": RULES | WORKER_SETTINGS})
    config.check()
    hub = SignalingHub(
        config,
        RoutePolicy(config.regions, Route.RELAY),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
    )
    message = rc.decode_signaling_message(rc.encode(hub.worker_configuration()))
    assert isinstance(message, rc.Configure)
    worker = RelayWorker("ws://127.0.0.1:9/relay", "token", "w1", 10)
    worker.moderation_settings = message  # what _configure keeps
    policy, gate = worker._strict_settings()
    assert policy.reference_margin == 0.7
    got = {k: getattr(gate, k) for k in RULES if k != "reference_margin"}
    assert got == {k: v for k, v in RULES.items() if k != "reference_margin"}
    assert {k: getattr(message, k) for k in WORKER_SETTINGS} == WORKER_SETTINGS


@pytest.mark.parametrize(
    "bad",
    [
        {"reference_margin": 1.5},
        {"resume_after_safe": 0},
        {"scene_peak_cells": 300},
        {"max_decoded_pixels": 100},
        {"decode_budget": 0},
        {"detail_growth": -0.1},
        {"settle_s": 3},
    ],
)
def test_out_of_range_rules_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=f"moderation.{next(iter(bad))}"):
        config_from_mapping({"moderation": bad}).check()
