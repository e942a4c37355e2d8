"""Failed relay hellos throttle their address: the token cannot be guessed at line speed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import websockets

from relay import control as rc
from signaling.hello_throttle import HelloThrottle
from tests.support.server import RunningServer, make_config, run_server

TOKEN = "test-relay-token"


def test_an_address_is_blocked_after_the_limit_within_the_window_and_for_a_while() -> None:
    throttle = HelloThrottle(limit=3, window_s=60, block_s=300)
    assert [throttle.failed("a", t) for t in (0, 1, 2)] == [False, False, True]
    assert throttle.blocked("a", 2) and throttle.blocked("a", 301.9)
    assert not throttle.blocked("a", 302)
    assert not throttle.blocked("b", 2)  # others are not affected


def test_failures_spread_wider_than_the_window_never_block() -> None:
    throttle = HelloThrottle(limit=3, window_s=60, block_s=300)
    assert not any(throttle.failed("a", t) for t in (0, 40, 80, 120, 160))
    assert not throttle.blocked("a", 160)


def test_a_block_is_reported_once_and_a_success_forgets_the_failures() -> None:
    throttle = HelloThrottle(limit=2, window_s=60, block_s=10)
    assert [throttle.failed("a", t) for t in (0, 0, 0, 0)] == [False, True, False, False]
    throttle.succeeded("a")
    assert not throttle.blocked("a", 1)
    assert not throttle.failed("a", 1)  # counting starts again


def test_memory_is_bounded_by_forgetting_the_stalest_address() -> None:
    throttle = HelloThrottle(limit=2, window_s=60, block_s=300, max_addresses=2)
    throttle.failed("old", 0)
    throttle.failed("old", 1)
    throttle.failed("b", 2)
    throttle.failed("c", 3)
    assert not throttle.blocked("old", 4)  # forgotten: 2 addresses at most


@pytest.fixture
def relay_door() -> Iterator[RunningServer]:
    """127.0.0.1 is a trusted proxy, so each test connection can come from an address of its
    choosing (X-Forwarded-For); workers may dial from 198.51.100.0/24; a third failure blocks."""
    relay = {"workers": 0, "token": TOKEN, "hello_failures_to_block": 3}
    config = make_config(
        server={"trusted_proxies": ["127.0.0.1"]},
        relay=relay | {"workers_from": ["198.51.100.0/24"]},
    )
    yield from run_server(config)


async def hello(server: RunningServer, address: str, token: str, worker: str = "w1") -> str:
    """Say hello from `address`; what came back: the reply's type or the close code."""
    url = f"ws://{server.host}:{server.port}/relay"
    headers = {"X-Forwarded-For": address}
    async with websockets.connect(url, additional_headers=headers) as ws:
        await ws.send(rc.encode(rc.Hello(worker_id=worker, token=token, pid=1, max_sessions=10)))
        try:
            return type(rc.decode_signaling_message(await ws.recv())).__name__
        except websockets.ConnectionClosed as closed:
            return f"closed {closed.rcvd.code if closed.rcvd else None}"


def refused(server: RunningServer) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(server.admin_url + "/stats", timeout=5).json()["refused"]
    return stats


async def test_failed_hellos_block_their_address_and_only_theirs(
    relay_door: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    guesser = "198.51.100.7"
    with caplog.at_level(logging.WARNING, "chatguard.signaling"):
        for guess in ("wrong-token-0001", "wrong-token-0002", "wrong-token-0003"):
            assert await hello(relay_door, guesser, guess) == "closed 4003"
        # blocked now: refused at the handshake, even with the right token
        with pytest.raises(websockets.InvalidStatus) as door:
            await hello(relay_door, guesser, TOKEN)
        assert door.value.response.status_code == 403
    assert refused(relay_door) == {"relay_hello": 3, "relay_throttled": 1}
    blocks = [r for r in caplog.records if "failed 3 times" in r.getMessage()]
    assert len(blocks) == 1 and guesser in blocks[0].getMessage()
    # a worker at another address is not affected
    assert await hello(relay_door, "198.51.100.8", TOKEN) == "Configure"


async def test_only_the_listed_networks_and_this_machine_reach_the_relay_door(
    relay_door: RunningServer,
) -> None:
    with pytest.raises(websockets.InvalidStatus) as door:  # the right token, the wrong place
        await hello(relay_door, "203.0.113.5", TOKEN)
    assert door.value.response.status_code == 403
    assert b"workers_from" in door.value.response.body
    assert refused(relay_door) == {"relay_address": 1}
    assert await hello(relay_door, "198.51.100.9", TOKEN) == "Configure"
    url = f"ws://{relay_door.host}:{relay_door.port}/relay"  # no forwarding: this machine
    async with websockets.connect(url) as ws:
        await ws.send(rc.encode(rc.Hello(worker_id="w2", token=TOKEN, pid=1, max_sessions=10)))
        assert isinstance(rc.decode_signaling_message(await ws.recv()), rc.Configure)


async def test_browsers_cannot_reach_the_relay_door(relay_door: RunningServer) -> None:
    url = f"ws://{relay_door.host}:{relay_door.port}/relay"
    with pytest.raises(websockets.InvalidStatus) as door:
        await websockets.connect(url, origin=websockets.Origin(relay_door.http_url))
    assert door.value.response.status_code == 403
    assert refused(relay_door) == {"relay_origin": 1}
