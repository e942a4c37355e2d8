"""Relay workers shared by the nodes of one pool (real redis-server, real uvicorn nodes): a call
is placed on the least-loaded worker of any node, and a relayed call whose members are on two
nodes carries media through a worker connected to the node that does not host it."""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from relay import control as rc
from relay.worker import RelayWorker
from signaling.route_policy import Route
from tests.support.cluster_nodes import (
    PRESENCE_TTL_S,
    TOKEN,
    relay_url,
    routed_nodes,
    serve_node,
    stats,
    until_seen,
    ws_url,
)
from tests.support.control_worker import ControlWorker, control_worker
from tests.support.redis_server import RedisServer
from tests.support.rtcclient import ChatPeer, see_each_other
from tests.support.wsclient import Client


async def pair_and_offer(url: str) -> tuple[Client, Client]:
    """Two clients of one node paired on the relay route, both offering."""
    a, b = await Client.connect(url), await Client.connect(url)
    for client in (a, b):
        await client.send(type="join")
    pairs = [await client.expect_paired() for client in (a, b)]
    pair = pairs[0]["pair"]
    assert pairs[1]["pair"] == pair and pairs[0]["route"] == "relay"
    for client in (a, b):
        await client.send(type="offer", pair=pair, sdp="v=0 offer")
    return a, b


async def test_calls_go_to_the_least_loaded_worker_of_any_node(redis: RedisServer) -> None:
    """Workers hang off two nodes; a third node, with none, places each call on the least
    loaded one that takes calls, hears its answers through the worker's node, and moves its
    calls when that worker leaves."""
    with ExitStack() as stack:
        first, second, third = stack.enter_context(routed_nodes(redis, 3, Route.RELAY))
        async with (
            control_worker(relay_url(first), TOKEN, "busy") as busy,
            control_worker(relay_url(second), TOKEN, "idle") as idle,
        ):
            await busy.report(cpu_percent=80)
            await idle.report(cpu_percent=10)
            await until_seen(third, {"busy": {"cpu_percent": 80}, "idle": {"cpu_percent": 10}})

            a, b = await pair_and_offer(third.ws_url)
            legs = [await idle.expect(rc.OpenLeg) for _ in range(2)]
            await busy.silent()
            for leg in legs:
                await idle.send(rc.Answer(leg=leg.leg, sdp=f"v=0 answer for {leg.leg}"))
            for client in (a, b):  # back through the worker's node, to the call's node
                assert (await client.expect("answer"))["sdp"].startswith("v=0 answer for ")
            link = await idle.expect(rc.Link)
            assert {link.first, link.second} == {leg.leg for leg in legs}
            assert (await stats(second))["relay_workers"][0]["legs"] == 2  # counted there

            # draining is seen by every node: the next call goes to the busier worker
            await idle.report(cpu_percent=10, draining=True)
            await until_seen(third, {"idle": {"draining": True}})
            c, d = await pair_and_offer(third.ws_url)
            for _ in range(2):
                await busy.expect(rc.OpenLeg)
            await idle.silent()
            await c.close()  # its call's legs close on the worker of the other node
            assert isinstance(await busy.command(), rc.CloseLeg)

            # a worker that leaves its node: the call it carried moves to a live one
            await idle.ws.close()
            for client in (a, b):
                moved = await client.expect("reroute")
                assert (moved["route"], moved["reason"]) == ("relay", "the relay server restarted")
            for client in (a, b, d):
                await client.close()


@pytest.mark.slow
async def test_a_relayed_call_between_two_nodes_carries_media(redis: RedisServer) -> None:
    """Alice is on the node the worker dialled, Bob on the other, which hosts the call (his
    join paired them): every command and answer crosses between the nodes."""
    with ExitStack() as stack:
        first, second = stack.enter_context(routed_nodes(redis, 2, Route.RELAY))
        worker = RelayWorker(relay_url(first), TOKEN, "w-first", 10)
        running = asyncio.create_task(worker.run())
        alice = bob = None
        try:
            await until_seen(second, {"w-first": {}})
            alice = await ChatPeer.join(first.ws_url, level=200, tone_hz=440)
            while not alice.events:  # waiting: Bob's join pairs them, so his node hosts
                await asyncio.sleep(0.02)
            bob = await ChatPeer.join(second.ws_url, level=60, tone_hz=1000)
            await see_each_other(alice, bob, 30, "relay")
            assert abs(alice.heard_frequency() - 1000) < 30
            assert len(worker.legs) == 2
            assert (await stats(second))["relay_legs"] == 2  # the host holds both legs
            assert (await stats(first))["relay_workers"][0]["legs"] == 2
        finally:
            for peer in (alice, bob):
                if peer is not None:
                    await peer.close()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


async def keep_reporting(worker: ControlWorker) -> None:
    """Load reports as a real worker sends them: how nodes started later learn of it."""
    while True:
        await worker.report(cpu_percent=1)
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_legs_a_killed_host_opened_on_a_worker_here_are_closed(
    tmp_path: Path, redis: RedisServer
) -> None:
    """The call's node (a real `chatguard serve`, both members on it) placed it on the
    worker of another node, then died by SIGKILL: nobody will ever close its legs, so the
    worker's node does once the host's presence has lapsed for a TTL."""
    with ExitStack() as stack:
        (first,) = stack.enter_context(routed_nodes(redis, 1, Route.RELAY))
        async with control_worker(relay_url(first), TOKEN, "w") as worker:
            reporting = asyncio.create_task(keep_reporting(worker))
            try:  # the host is ready once it has seen the worker
                node = serve_node(tmp_path, redis, "host", Route.RELAY)
                host = await asyncio.to_thread(stack.enter_context, node)
                members = await pair_and_offer(ws_url(host))
                opened = {(await worker.expect(rc.OpenLeg)).leg for _ in range(2)}
                killed_at = time.monotonic()
                host.send_signal(signal.SIGKILL)
                await asyncio.to_thread(host.wait, 10)
                timeout = 3 * PRESENCE_TTL_S + 3
                closed = {(await worker.expect(rc.CloseLeg, timeout)).leg for _ in range(2)}
                assert closed == opened
                assert time.monotonic() - killed_at < timeout
                assert (await stats(first))["relay_workers"][0]["legs"] == 0
                await worker.silent()
                for member in members:  # their node died: closed already
                    await member.close()
            finally:
                reporting.cancel()
