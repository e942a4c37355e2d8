"""Shared fixtures: a signaling service, a redis-server, and test hosts in network namespaces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import IsolatedHosts, isolated_hosts_or_skip
from tests.support.redis_server import RedisServer, redis_server
from tests.support.server import RunningServer, make_config, run_server


@pytest.fixture
def server() -> Iterator[RunningServer]:
    config = make_config(
        matchmaking={"repair_cooldown_s": 30.0, "interest_fallback_s": 0.5},
        regions={"trusted_header": "x-country", "routes": {"DE": "strict", "FR": "relay"}},
        server={"trusted_proxies": ["127.0.0.1"]},  # tests play the proxy that sets x-country
    )
    yield from run_server(config)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own (the shared pool's store)."""
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture
def netns_hosts() -> Iterator[IsolatedHosts]:
    """Two test hosts in network namespaces that reach this machine but not each other
    (tests/netns.py): browsers there cannot call each other directly. Skips without root or
    `ip netns`, fails instead when CI is set; everything is removed afterwards."""
    with isolated_hosts_or_skip(2) as hosts:
        yield hosts
