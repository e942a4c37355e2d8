"""Strikes and bans shared by the nodes of a pool: the book's rules alone, then strikes on two
real nodes (one real redis-server) adding up to a ban, the second one struck by the worker of a
call that the other node hosts."""

from __future__ import annotations

import asyncio
import random
import time

from relay import control as rc
from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.cluster.bans import SharedStrikeBook
from signaling.config import config_from_mapping
from signaling.matchmaking import Matchmaker
from signaling.route_policy import Route, RoutePolicy
from signaling.strikes import Person
from tests.support.cluster_nodes import (
    TOKEN,
    refused_at,
    relay_url,
    routed_nodes,
    stats,
    until_seen,
)
from tests.support.control_worker import ControlWorker, control_worker
from tests.support.redis_server import RedisServer
from tests.support.server import RunningServer
from tests.support.wsclient import Client

OFFENDER = Person.of("192.0.2.7", "offender")


def book() -> SharedStrikeBook:
    return SharedStrikeBook(strikes_to_ban=3, window_s=60, ban_s=600, devices_to_ban_network=0)


def test_a_strike_counts_on_top_of_the_pools_count() -> None:
    strikes = book()
    strikes.counted(OFFENDER.device, 1, left_s=30, now=0)  # struck on another node
    assert strikes.strike(OFFENDER, now=1).strikes == 2
    result = strikes.strike(OFFENDER, now=2)
    assert (result.strikes, result.banned_until) == (3, 602)
    assert strikes.drain_struck_here() == [OFFENDER, OFFENDER]
    assert strikes.drain_made_here() == [(OFFENDER, "3 moderation strikes")]


def test_the_pools_count_ends_with_its_window_and_never_goes_back() -> None:
    strikes = book()
    strikes.counted(OFFENDER.device, 2, left_s=30, now=0)
    strikes.counted(OFFENDER.device, 1, left_s=30, now=1)  # an older word, arrived late
    assert strikes.strike(OFFENDER, now=2).strikes == 3
    strikes = book()
    strikes.counted(OFFENDER.device, 2, left_s=30, now=0)
    assert strikes.strike(OFFENDER, now=31).strikes == 1  # the window ended in Redis


def test_the_node_whose_strike_crossed_the_limit_in_redis_bans_once() -> None:
    """Two nodes struck one device at the same moment: each counted 2 of 3, Redis says 3."""
    strikes = book()
    assert not strikes.crossed_limit(OFFENDER, 2, now=0)
    assert strikes.crossed_limit(OFFENDER, 3, now=0)
    assert strikes.banned_until(OFFENDER, now=1) == 600
    assert not strikes.crossed_limit(OFFENDER, 4, now=1)  # banned already
    strikes.counted(OFFENDER.device, 4, left_s=30, now=1)  # ended by the ban: not kept
    assert strikes.drain_made_here() == [(OFFENDER, "3 moderation strikes")]


def test_a_ban_made_by_the_pools_count_closes_that_devices_clients_here() -> None:
    config = config_from_mapping({})
    strikes = book()
    hub = SignalingHub(
        config,
        RoutePolicy(config.regions, Route.STRICT),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
        strikes=strikes,
    )
    offender = hub.connect("default", 0, 0, address=OFFENDER.network, device="offender")
    hub.connect("default", 0, 0, address=OFFENDER.network, device="someone-else")
    hub.drain_outbox()
    assert strikes.crossed_limit(OFFENDER, 3, now=1)
    hub.banned_by_pool(OFFENDER, 3, now=1, now_unix=100)
    assert hub.drain_outbox() == [
        (offender, p.Banned(reason="3 moderation strikes", until_unix=700))
    ]
    assert hub.drain_closes() == [(offender, p.CLOSE_BANNED)]
    assert [event.decision for event in hub.drain_events()] == ["ban"]


def test_a_ban_told_by_the_pool_closes_that_devices_sessions_here_and_counts_nothing() -> None:
    config = config_from_mapping({})
    hub = SignalingHub(
        config,
        RoutePolicy(config.regions, Route.DIRECT),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
        strikes=book(),
    )
    tabs = [hub.connect("default", 0, 0, address="192.0.2.7", device="offender") for _ in "ab"]
    hub.connect("default", 0, 0, address="192.0.2.7", device="someone-else")
    hub.drain_outbox()
    hub.close_banned(OFFENDER, until=50, reason="reported by 3 people", now=1, now_unix=100)
    told = p.Banned(reason="reported by 3 people", until_unix=149)
    assert hub.drain_outbox() == [(tab, told) for tab in tabs]
    assert hub.drain_closes() == [(tab, p.CLOSE_BANNED) for tab in tabs]
    assert hub.drain_events() == [] and hub.stats.bans.total() == 0  # counted where made
    hub.banned_by_reports("s-1", OFFENDER, reporters=3, now=2, now_unix=101)
    assert [event.decision for event in hub.drain_events()] == ["ban"]  # the pool's count
    hub.banned_by_reports("s-1", OFFENDER, reporters=4, now=3, now_unix=102)
    assert hub.drain_events() == []  # banned already
    anonymous = hub.connect("default", 0, 0, address="198.51.100.9")  # sent no device id
    hub.drain_outbox()
    hub.close_banned(Person.of("198.51.100.9", ""), until=50, reason="x", now=1, now_unix=100)
    assert hub.drain_closes() == [(anonymous, p.CLOSE_BANNED)]  # known by its address


async def next_open_leg(worker: ControlWorker) -> rc.OpenLeg:
    """The next leg opened on `worker` (legs closed meanwhile are skipped)."""
    while not isinstance(command := await worker.command(), rc.OpenLeg):
        assert isinstance(command, rc.CloseLeg), command
    return command


async def offered(offender: Client, partner: Client, worker: ControlWorker) -> rc.OpenLeg:
    """Both are paired; the offender offers first: its leg on `worker` is returned."""
    pair = (await offender.expect_paired())["pair"]
    assert (await partner.expect_paired())["pair"] == pair
    await offender.send(type="offer", pair=pair, sdp="v=0 offender")
    leg = await next_open_leg(worker)
    assert leg.moderated
    await partner.send(type="offer", pair=pair, sdp="v=0 partner")
    await next_open_leg(worker)
    return leg


async def until_left(node: RunningServer) -> None:
    """Until `node` has no client and nobody waits: a closed client's partner is put back in
    the pool until its own close is handled, and on a busy machine (two test workers) the
    next part's clients were paired with that one."""
    deadline = time.monotonic() + 10
    while (now := await stats(node))["clients"] or now["waiting"]:
        assert time.monotonic() < deadline, now
        await asyncio.sleep(0.05)


async def test_strikes_on_two_nodes_add_up_to_a_ban(redis: RedisServer) -> None:
    with routed_nodes(redis, 2, Route.STRICT, moderation={"strikes_to_ban": 2}) as nodes:
        first, second = nodes
        async with control_worker(relay_url(first), TOKEN, "moderator") as worker:
            await worker.report(cpu_percent=1, moderation_ready=True)
            await until_seen(second, {"moderator": {"moderation_ready": True}})

            offender = await Client.connect(first.ws_url, device="offender")
            partner = await Client.connect(first.ws_url)
            for client in (offender, partner):
                await client.send(type="join")
            leg = await offered(offender, partner, worker)
            await worker.send(rc.Moderation(leg=leg.leg, state="blocked", label="x", score=0.9))
            assert (await offender.expect("moderation"))["strikes"] == 1
            await offender.close()
            await partner.close()
            await until_left(first)

            # on the other node, the guest of a call hosted where the worker is
            offender = await Client.connect(second.ws_url, device="offender")
            await offender.send(type="join")
            await offender.expect("waiting")
            partner = await Client.connect(first.ws_url)
            await partner.send(type="join")  # pairs them: the first node hosts
            leg = await offered(offender, partner, worker)
            await worker.send(rc.Moderation(leg=leg.leg, state="blocked", label="x", score=0.9))
            assert (await offender.expect("moderation"))["strikes"] == 2
            assert (await offender.expect("banned"))["reason"] == "2 moderation strikes"
            told = await partner.expect("moderation")
            assert (told["who"], told["state"]) == ("partner", "blocked")
            await refused_at(first.ws_url, "offender")
            await partner.close()
