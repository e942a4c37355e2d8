"""SIGTERM on a real `chatguard serve`: a rolling restart's drain.

The process stops taking clients at once (``/readyz`` 503 "draining", new WebSockets closed
with 1013), sends away those whose calls do not need it (``reconnect``, then 1012), keeps a
call still handshaking until it connects or the drain times out, and then exits with 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support.server import ServedUrl, chatguard_serve
from tests.support.wsclient import Client

DIRECT = "[relay]\nworkers = 0\n[matchmaking]\nrepair_cooldown_s = 0\n"


async def closed_with(client: Client, timeout: float = 5.0) -> int:
    """The close code the server ends this connection with (messages before it skipped)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await client.ws.recv()
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code
    raise AssertionError("unreachable")


async def a_pair(ws_url: str) -> tuple[Client, Client, str]:
    first = await Client.connect(ws_url)
    second = await Client.connect(ws_url)
    await first.send(type="join")
    await second.send(type="join")
    pair = (await first.expect_paired())["pair"]
    assert (await second.expect_paired())["pair"] == pair
    return first, second, pair


async def waiting_client(ws_url: str) -> Client:
    client = await Client.connect(ws_url)
    await client.send(type="join")
    await client.expect("waiting")
    return client


async def drain_readiness(url: ServedUrl) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(url + "/readyz", timeout=2)
        return response.status_code, response.json()


async def wait_for_exit(url: ServedUrl, within_s: float) -> float:
    started = time.monotonic()
    while url.process.poll() is None:
        assert time.monotonic() - started < within_s, "serve did not exit after its drain"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_sigterm_refuses_newcomers_sends_the_waiting_away_and_exits_after_the_timeout(
    tmp_path: Path,
) -> None:
    with chatguard_serve(tmp_path, DIRECT + "[server]\ndrain_timeout_s = 5\n") as url:
        ws_url = url.replace("http", "ws", 1) + "/ws"
        first, second, _ = await a_pair(ws_url)  # never connects: needs signaling throughout
        waiter = await waiting_client(ws_url)
        url.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        message = await waiter.expect("reconnect")
        assert message["reason"] == "draining" and 0 < message["after_s"] <= 3
        assert await closed_with(waiter) == 1012
        assert await drain_readiness(url) == (503, {"ready": False, "reasons": ["draining"]})
        assert time.monotonic() - signalled < 2  # at once, not at the end of the drain

        newcomer = await websockets.connect(ws_url)
        try:
            with pytest.raises(websockets.ConnectionClosed) as refused:
                await asyncio.wait_for(newcomer.recv(), 5)  # no welcome: closed at the door
            assert refused.value.rcvd is not None and refused.value.rcvd.code == 1013
            assert "draining" in refused.value.rcvd.reason
        finally:
            await newcomer.close()

        await first.silent(1.0)  # a call still handshaking keeps its signaling
        assert url.process.poll() is None
        for member in (first, second):  # until the time-out sends it away too
            assert (await member.expect("reconnect", timeout=10))["reason"] == "draining"
            assert await closed_with(member) == 1012
        await wait_for_exit(url, within_s=10)
        assert 4.5 <= time.monotonic() - signalled < 5 + 5  # the time-out, and shutting down
        assert url.process.returncode == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_direct_call_leaves_the_drain_once_its_media_flows(tmp_path: Path) -> None:
    config = "[relay]\nworkers = 1\n[server]\ndrain_timeout_s = 60\n"
    with chatguard_serve(tmp_path, config, "--route", "direct") as url:
        async with httpx.AsyncClient() as http:  # a direct route is ready without workers
            while not (workers := (await http.get(url.admin + "/stats")).json()["relay_workers"]):
                await asyncio.sleep(0.1)
        (worker,) = workers
        ws_url = url.replace("http", "ws", 1) + "/ws"
        first, second, pair = await a_pair(ws_url)
        url.process.send_signal(signal.SIGTERM)
        await first.silent(1.0)
        assert (await drain_readiness(url))[0] == 503
        assert alive(worker["pid"])  # relay workers stop at the end of the drain, not before
        # chat still flows while the call is handshaking here
        await first.send(type="chat", pair=pair, text="still here")
        assert (await second.expect("chat"))["text"] == "still here"

        await first.send(type="call_state", pair=pair, state="connected", route="direct")
        for member in (first, second):  # peer to peer now: both may go, the call stays
            while (await member.recv())["type"] != "reconnect":
                pass  # partner_state: connected, as in any call
            assert await closed_with(member) == 1012
        assert await wait_for_exit(url, within_s=15) < 15
        assert url.process.returncode == 0
        assert not alive(worker["pid"])


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_sigint_stays_immediate_with_clients_connected(tmp_path: Path) -> None:
    with chatguard_serve(tmp_path, DIRECT + "[server]\ndrain_timeout_s = 60\n") as url:
        ws_url = url.replace("http", "ws", 1) + "/ws"
        first, _, _ = await a_pair(ws_url)
        url.process.send_signal(signal.SIGINT)
        await wait_for_exit(url, within_s=10)
        await first.close()
