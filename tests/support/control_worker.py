"""A relay worker that only speaks the control protocol, over a real WebSocket: it says what
load it has and reads the commands signaling sends it, so a test chooses the load placement
sees and answers legs itself, without media."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import websockets

from relay import control as rc

M = TypeVar("M", bound=rc.SignalingMessage)


class ControlWorker:
    def __init__(self, ws: websockets.ClientConnection, worker_id: str) -> None:
        self.ws = ws
        self.worker_id = worker_id

    async def report(
        self, cpu_percent: float, draining: bool = False, moderation_ready: bool | None = None
    ) -> None:
        load = rc.Load(
            legs=0,
            cpu_percent=cpu_percent,
            rss_bytes=0,
            draining=draining,
            moderation_ready=moderation_ready,
        )
        await self.send(load)

    async def send(self, message: rc.WorkerMessage) -> None:
        await self.ws.send(rc.encode(message))

    async def command(self, timeout: float = 5.0) -> rc.SignalingMessage:
        return rc.decode_signaling_message(await asyncio.wait_for(self.ws.recv(), timeout))

    async def expect(self, kind: type[M], timeout: float = 5.0) -> M:
        message = await self.command(timeout)
        assert isinstance(message, kind), f"{self.worker_id}: expected {kind}, got {message}"
        return message

    async def silent(self, duration: float = 0.5) -> None:
        try:
            message = await asyncio.wait_for(self.ws.recv(), duration)
        except TimeoutError:
            return
        raise AssertionError(f"{self.worker_id}: unexpected command {message!r}")


@asynccontextmanager
async def control_worker(
    relay_url: str, token: str, worker_id: str, max_sessions: int = 10
) -> AsyncIterator[ControlWorker]:
    """Joined (hello, configuration read) at `relay_url`, closed after."""
    async with websockets.connect(relay_url, max_size=None) as ws:
        hello = rc.Hello(
            worker_id=worker_id, token=token, pid=os.getpid(), max_sessions=max_sessions
        )
        await ws.send(rc.encode(hello))
        worker = ControlWorker(ws, worker_id)
        await worker.expect(rc.Configure)
        yield worker
