"""A worker started by hand (``chatguard relay``, no supervisor) whose signaling goes away keeps
dialling until signaling is back, then serves again: the review found one that stayed down."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from relay.worker import RelayWorker
from signaling.route_policy import Route
from tests.support.server import make_config, run_server, wait_for_workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


async def test_a_worker_redials_across_signaling_restarts() -> None:
    config = make_config(relay={"workers": 0, "token": "test-relay-token"})
    url = f"ws://127.0.0.1:{config.server.port}/relay"
    worker = RelayWorker(url, "test-relay-token", "by-hand", 10)
    serving = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(1.0)  # nothing listens yet: a few failed dials
        for _ in range(2):  # up, then down and up again
            with contextlib.contextmanager(run_server)(config, Route.RELAY) as server:
                (joined,) = await wait_for_workers(server, 1, timeout=20)
                assert joined["worker"] == "by-hand"
            await asyncio.sleep(0.5)
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
