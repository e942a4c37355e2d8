"""Per-leg ordering of a worker's control work, without a serial loop shared by all legs.

Why: setting a remote description or adding a candidate awaits aiortc (ICE gathering, address
checks); on one loop for every leg, one slow leg would hold up every other leg's set-up. Each
job here is its own task that first waits for the jobs already queued for the same legs, so a
leg's commands keep signaling's order while different legs' commands run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection


class Lanes:
    """Jobs keyed by leg id: in order per leg, concurrent across legs."""

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Task[None]] = {}

    def submit(self, legs: Collection[str], job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` after every job already submitted for any of ``legs`` (a job touching
        two legs, e.g. linking them, waits for both). ``job`` must not raise: it is where the
        caller's fault boundary goes."""
        before = [task for leg in legs if (task := self._tails.get(leg)) is not None]
        task = asyncio.get_running_loop().create_task(_after(before, job))
        for leg in legs:
            self._tails[leg] = task
        task.add_done_callback(lambda done: self._forget(legs, done))

    def _forget(self, legs: Collection[str], done: asyncio.Task[None]) -> None:
        for leg in legs:
            if self._tails.get(leg) is done:
                del self._tails[leg]

    def pending(self) -> int:
        """Legs with work queued or running."""
        return len(self._tails)

    async def cancel_all(self) -> None:
        """Drop every queued and running job (the control link is gone) and wait for them."""
        tasks = set(self._tails.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _after(before: list[asyncio.Task[None]], job: Callable[[], Awaitable[None]]) -> None:
    if before:
        await asyncio.wait(before)  # their outcome is theirs; cancelling this one still works
    await job()
