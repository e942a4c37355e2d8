"""A small real WebSocket client for protocol tests and the load benchmark's checks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.typing import Subprotocol

from signaling import protocol as p


def device_subprotocols(device: str) -> list[Subprotocol] | None:
    """What the web client offers to send its device id; None without one."""
    if not device:
        return None
    return [Subprotocol(p.SUBPROTOCOL), Subprotocol(p.DEVICE_SUBPROTOCOL_PREFIX + device)]


class Client:
    """One signaling connection; `expect` waits for the next message of a given type."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(
        cls,
        url: str,
        headers: dict[str, str] | None = None,
        local_address: str | None = None,
        device: str = "",
    ) -> Client:
        """`local_address` (e.g. 127.0.0.2, any of 127/8 on Linux): another client address.
        `device`: sent as the web client sends it (a subprotocol, docs/protocol.md)."""
        local_addr = None if local_address is None else (local_address, 0)
        ws = await websockets.connect(
            url,
            additional_headers=headers,
            max_size=None,
            local_addr=local_addr,
            subprotocols=device_subprotocols(device),
        )
        client = cls(ws)
        client.welcome = await client.expect("welcome")
        return client

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def send_raw(self, raw: str | bytes) -> None:
        await self.ws.send(raw)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        message: dict[str, Any] = json.loads(raw)
        return message

    async def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """Next message, which must be of type `kind` (pongs are skipped)."""
        while True:
            message = await self.recv(timeout)
            if message["type"] == "pong" and kind != "pong":
                continue
            assert message["type"] == kind, f"expected {kind}, got {message}"
            return message

    async def expect_paired(
        self, timeout: float = 5.0, errors: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Skip queue notices (waiting), and errors of the codes in `errors`, until the
        pairing arrives."""
        while True:
            message = await self.recv(timeout)
            if message["type"] in ("waiting", "pong"):
                continue
            if message["type"] == "error" and errors:
                assert message["code"] in errors, message
                continue
            assert message["type"] == "paired", f"expected paired, got {message}"
            return message

    async def silent(self, duration: float = 0.3) -> None:
        """Assert that nothing arrives for `duration` seconds."""
        try:
            message = await asyncio.wait_for(self.ws.recv(), duration)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {message!r}")

    async def close(self) -> None:
        await self.ws.close()
