"""Smoke run of the Redis-cost-per-pairing probe (two real nodes, a real redis-server): checks
the counting, and that no pairing pays for redis-py's SCRIPT EXISTS again; never the counts'
exact values, which belong to the README's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import redis_pairing_cost
from tests.support.redis_server import require_redis_server


@pytest.mark.slow
def test_a_few_pairings_are_counted_per_pairing(tmp_path: Path) -> None:
    require_redis_server()
    figures = redis_pairing_cost.measure(5)
    assert figures["pairs"] == 5
    by_command = figures["by_command_per_pairing"]
    assert by_command["evalsha"] >= 5  # connect, join, leave and disconnect each ran the pool
    assert by_command["publish"] >= 6  # the pairing, offer, answer, candidates, partner left
    assert "script|exists" not in by_command
    assert 0 < figures["round_trips_per_pairing"] < figures["commands_per_pairing"]
    json.dumps(figures)  # what --json writes
