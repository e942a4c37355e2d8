"""Shared fixtures: a signaling service, a redis-server, and test hosts in network namespaces;
and the machine lock that lets the suite's pytest-xdist workers share the machine."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.machine_lock import EXCLUSIVE_MARKER, MachineLock
from tests.support.netns import IsolatedHosts, isolated_hosts_or_skip
from tests.support.redis_server import RedisServer, redis_server
from tests.support.server import RunningServer, make_config, run_server

LOCK_DIR_VARIABLE = "CHATGUARD_TEST_LOCK_DIR"
_machine_lock = pytest.StashKey[MachineLock]()


def pytest_configure(config: pytest.Config) -> None:
    """The controller makes the lock directory before its workers start (they inherit its
    environment); a worker opens the locks in it. Without xdist (``-n 0``) nothing is locked."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        if directory := os.environ.get(LOCK_DIR_VARIABLE):
            config.stash[_machine_lock] = MachineLock(Path(directory))
    elif getattr(config.option, "numprocesses", None):
        os.environ[LOCK_DIR_VARIABLE] = tempfile.mkdtemp(prefix="chatguard-test-locks-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _machine_lock in config.stash:
        config.stash[_machine_lock].close()
    elif not os.environ.get("PYTEST_XDIST_WORKER") and LOCK_DIR_VARIABLE in os.environ:
        shutil.rmtree(os.environ.pop(LOCK_DIR_VARIABLE), ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first: the workers take whole files in this order (``--dist loadfile``), and
    a long file taken last keeps one worker busy while the other has nothing left to do. A file
    with an exclusive test goes first of all, before the other worker has much to wait for.
    In one process the order stays as collected."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker(EXCLUSIVE_MARKER):
            return 0
        return 1 if item.get_closest_marker("slow") or item.get_closest_marker("browser") else 2

    ranks: dict[Path, int] = {}
    for item in items:
        ranks[item.path] = min(ranks.get(item.path, 2), rank(item))
    items.sort(key=lambda item: ranks[item.path])  # stable: a file's tests keep their order


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """Each test holds the machine lock through set-up, call and teardown (see
    tests/support/machine_lock.py); outermost, so a test's time-out starts once it has it."""
    lock = item.config.stash.get(_machine_lock, None)
    if lock is None:
        return (yield)
    with lock.held(item.get_closest_marker(EXCLUSIVE_MARKER) is not None):
        return (yield)


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
