"""A client connection's send side: messages go out at once while the socket takes them, and
in order through a writer task once one has to wait (``signaling.app._Connection``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signaling.app import _Connection


class FakeSocket:
    """Records what is sent; a send waits on ``gate`` while one is set, as uvicorn's does
    while its transport's buffer is full."""

    def __init__(self, fails_with: Exception | None = None) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str | None] | None = None
        self.gate: asyncio.Future[None] | None = None
        self.cancelled = 0
        self.fails_with = fails_with
        """What every send raises, if anything."""

    async def send(self, message: dict[str, Any]) -> None:
        if self.fails_with is not None:
            raise self.fails_with
        if self.gate is not None:
            try:
                await self.gate
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        self.sent.append(message["text"])

    async def send_text(self, text: str) -> None:
        await self.send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str | None = None) -> None:
        self.closed = (code, reason)


def connection(socket: FakeSocket, limit: int = 10) -> _Connection:
    return _Connection(socket, limit)  # type: ignore[arg-type]


async def test_a_message_the_socket_takes_at_once_is_sent_without_a_task() -> None:
    socket = FakeSocket()
    conn = connection(socket)
    conn.put("a")
    conn.put("b")
    assert socket.sent == ["a", "b"]
    assert conn.writer is None and not conn.pending


async def test_once_a_send_waits_the_rest_follow_it_in_order() -> None:
    socket = FakeSocket()
    conn = connection(socket)
    socket.gate = asyncio.get_running_loop().create_future()
    conn.put("a")
    conn.put("b")
    assert socket.sent == [] and conn.writer is not None
    assert list(conn.pending) == ["b"]  # "a" is on its way, waiting on the socket
    socket.gate.set_result(None)
    socket.gate = None
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert socket.sent == ["a", "b"]
    assert conn.writer is None
    conn.put("c")
    assert socket.sent == ["a", "b", "c"]


async def test_finishing_cancels_a_send_that_waits() -> None:
    socket = FakeSocket()
    conn = connection(socket)
    socket.gate = asyncio.get_running_loop().create_future()
    conn.put("a")
    await asyncio.sleep(0)
    await conn.finish(grace_s=1.0)
    assert socket.cancelled == 1 and socket.sent == []
    assert conn.writer is None


async def test_a_close_goes_after_what_is_queued() -> None:
    socket = FakeSocket()
    conn = connection(socket)
    conn.put("bye")
    conn.close(4000, "done")
    assert socket.sent == ["bye"] and socket.closed is None  # the close is a writer's
    await conn.finish(grace_s=1.0)
    assert socket.closed == (4000, "done")


async def test_a_gone_socket_ends_sending_quietly() -> None:
    conn = connection(FakeSocket(fails_with=OSError("connection lost")))
    conn.put("a")
    assert conn.writer is None


async def test_more_than_the_limit_waiting_is_refused() -> None:
    socket = FakeSocket()
    conn = connection(socket, limit=2)
    socket.gate = asyncio.get_running_loop().create_future()
    conn.put("a")  # on its way
    conn.put("b")
    conn.put("c")
    with pytest.raises(asyncio.QueueFull):
        conn.put("d")
    socket.gate.set_result(None)
    socket.gate = None
    await conn.finish(grace_s=1.0)


async def test_a_send_that_fails_oddly_stays_with_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Messages are queued by other clients' handlers (a partner's offer, say): a failure
    of this socket's own must not raise in them."""
    conn = connection(FakeSocket(fails_with=ValueError("a server's bug")))
    conn.put("a")
    assert "sending to a client failed" in caplog.text
