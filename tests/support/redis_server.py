"""A real `redis-server` for a test: on a free loopback port, with no persistence, stopped after
(the benchmark's own, ``bench.redis_probe.LocalRedis``).

CI installs the Debian package (``.ci/run``); a machine without it skips the tests that need it,
except under CI, where a missing server is a failure rather than a silent skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.redis_probe import LocalRedis


@dataclass(frozen=True)
class RedisServer:
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def require_redis_server() -> None:
    """Skip the test without `redis-server` (fail under CI, which installs it)."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        pytest.skip("redis-server is not installed")


@contextmanager
def redis_server(workdir: Path, port: int | None = None) -> Iterator[RedisServer]:
    """Start `redis-server` in `workdir` and wait until it answers PING; `port`: the port of
    one stopped before, to stand for a restart (it starts empty: nothing is persisted)."""
    require_redis_server()
    server = LocalRedis(port, workdir)
    try:
        yield RedisServer(server.port)
    finally:
        server.stop()
