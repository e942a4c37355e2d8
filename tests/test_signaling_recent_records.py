"""The recent-records stores behind the admin listener's ``/events`` and ``/reports``: the
in-memory one and the Redis one (a real redis-server) keep the same cap and retention, oldest
first; the Redis one keeps what it could not write while Redis was down and writes it after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager
from pathlib import Path
from typing import Protocol

import pytest

from signaling.cluster.recent_records import RedisRecords
from signaling.config import config_from_mapping
from signaling.recent_records import (
    Kind,
    MemoryRecords,
    RecentRecords,
    RecordsUnavailable,
    Retention,
    retention,
)
from tests.support.redis_server import RedisServer, redis_server

KEEP: dict[Kind, Retention] = {
    "events": Retention(limit=3, seconds=60.0),
    "reports": Retention(limit=2, seconds=10.0),
}


class StoreFactory(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[RecentRecords]: ...


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@asynccontextmanager
async def started(store: RecentRecords) -> AsyncIterator[RecentRecords]:
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


@pytest.fixture(params=["memory", "redis"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    with ExitStack() as stack:
        if request.param == "memory":
            yield lambda: started(MemoryRecords(KEEP))
        else:
            url = stack.enter_context(redis_server(tmp_path)).url
            yield lambda: started(RedisRecords(url, "cg-test:", KEEP))


async def eventually_listed(
    store: RecentRecords, kind: Kind, now: float, count: int
) -> list[dict[str, object]]:
    """Redis is written a moment after an add: read until `count` records are there."""
    deadline = time.monotonic() + 5
    while len(got := await store.listed(kind, now)) != count:
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.02)
    return got


async def test_each_kind_keeps_its_most_recent_records_oldest_first(
    store_factory: StoreFactory,
) -> None:
    now = time.time()
    async with store_factory() as store:
        for n in range(5):
            store.add("events", {"n": n}, now)
            store.add("reports", {"r": n}, now)
        assert await eventually_listed(store, "events", now, 3) == [{"n": 2}, {"n": 3}, {"n": 4}]
        assert await store.listed("reports", now) == [{"r": 3}, {"r": 4}]
        # past each kind's retention nothing is listed: reports go first
        assert await store.listed("reports", now + 11) == []
        assert len(await store.listed("events", now + 11)) == 3
        assert await store.listed("events", now + 61) == []


async def test_a_second_redis_store_reads_what_the_first_wrote(redis: RedisServer) -> None:
    """Two nodes' stores on one Redis list the same records; another prefix lists none."""
    now = time.time()
    async with (
        started(RedisRecords(redis.url, "cg:", KEEP)) as first,
        started(RedisRecords(redis.url, "cg:", KEEP)) as second,
        started(RedisRecords(redis.url, "other:", KEEP)) as other_service,
    ):
        first.add("events", {"decision": "ban", "node": "first"}, now)
        second.add("events", {"decision": "report", "node": "second"}, now)
        both = await eventually_listed(second, "events", now, 2)
        assert {event["node"] for event in both} == {"first", "second"}
        assert await first.listed("events", now) == both
        assert await other_service.listed("events", now) == []


async def test_records_added_while_redis_is_down_are_written_when_it_is_back(
    tmp_path: Path,
) -> None:
    now = time.time()
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(tmp_path))
        async with started(RedisRecords(redis.url, "cg:", KEEP)) as store:
            store.add("events", {"n": 0}, now)
            await eventually_listed(store, "events", now, 1)
            stack.close()  # Redis is gone (and comes back empty: nothing is persisted)
            with pytest.raises(RecordsUnavailable, match="unreachable"):
                await store.listed("events", now)
            store.add("events", {"n": 1}, now)
            store.add("reports", {"r": 1}, now)
            stack.enter_context(redis_server(tmp_path, redis.port))
            assert await eventually_listed(store, "events", now, 1) == [{"n": 1}]
            assert await store.listed("reports", now) == [{"r": 1}]


def test_retention_comes_from_the_events_and_reports_settings() -> None:
    config = config_from_mapping(
        {"events": {"recent_limit": 7, "retention_s": 30}, "reports": {"window_s": 90}}
    )
    assert retention(config) == {
        "events": Retention(limit=7, seconds=30),
        "reports": Retention(limit=7, seconds=90),
    }
