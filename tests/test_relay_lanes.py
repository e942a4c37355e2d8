"""relay/lanes.py: a worker's control work in order per leg, concurrent across legs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from relay.lanes import Lanes


async def test_one_legs_slow_job_holds_up_only_that_leg() -> None:
    lanes = Lanes()
    done: list[str] = []
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()
        done.append("a1")

    def quick(name: str) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            done.append(name)

        return job

    lanes.submit(("a",), slow)
    lanes.submit(("a",), quick("a2"))
    lanes.submit(("b",), quick("b1"))
    await asyncio.sleep(0.05)
    assert done == ["b1"]  # b went ahead; a's second job waits for its first
    lanes.submit(("a", "b"), quick("link"))
    await asyncio.sleep(0.05)
    assert done == ["b1"]
    release.set()
    await asyncio.sleep(0.05)
    assert done == ["b1", "a1", "a2", "link"]
    assert lanes.pending() == 0


async def test_a_failed_job_does_not_stop_the_next_and_cancel_all_stops_all() -> None:
    lanes = Lanes()
    done: list[str] = []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def after() -> None:
        done.append("after")

    async def forever() -> None:
        await asyncio.Event().wait()

    lanes.submit(("a",), fails)
    lanes.submit(("a",), after)
    await asyncio.sleep(0.05)
    assert done == ["after"]
    lanes.submit(("b",), forever)
    lanes.submit(("b",), after)
    await lanes.cancel_all()
    assert done == ["after"] and lanes.pending() == 0
