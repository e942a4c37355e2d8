"""Which clients a draining process may send away (``signaling.drain``), without a network."""

from __future__ import annotations

import random

import pytest

from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.config import config_from_mapping
from signaling.drain import (
    RECONNECT_SPREAD_S,
    CallView,
    needs_this_process,
    reconnect_after_s,
    send_away_order,
)
from signaling.matchmaking import Matchmaker
from signaling.route_policy import Route, RoutePolicy


@pytest.mark.parametrize(
    ("route", "media_connected", "needs"),
    [
        (Route.DIRECT, False, True),  # the handshake runs through signaling
        (Route.DIRECT, True, False),  # peer to peer: signaling has stepped back
        (Route.RELAY, True, True),  # the worker closes its legs when signaling goes
        (Route.STRICT, True, True),
        (Route.RELAY, False, True),
    ],
)
def test_which_calls_need_this_process(route: Route, media_connected: bool, needs: bool) -> None:
    assert needs_this_process(CallView(("a", "b"), route, media_connected)) is needs


def test_those_out_of_a_call_go_first_then_calls_member_beside_member() -> None:
    calls = [
        CallView(("a", "b"), Route.DIRECT, True),
        CallView(("c", "d"), Route.RELAY, True),
        CallView(("e", "f"), Route.DIRECT, True),
    ]
    assert send_away_order(["w", "i"], calls) == ["w", "i", "a", "b", "e", "f"]
    everyone = send_away_order(["w"], calls, everyone=True)
    assert everyone == ["w", "a", "b", "c", "d", "e", "f"]


def test_reconnect_delays_are_spread() -> None:
    rng = random.Random(7)
    delays = [reconnect_after_s(rng) for _ in range(200)]
    low, high = RECONNECT_SPREAD_S
    assert all(low <= d <= high for d in delays)
    assert max(delays) - min(delays) > (high - low) / 2


def hub_on(route: Route) -> SignalingHub:
    config = config_from_mapping({})
    return SignalingHub(
        config,
        RoutePolicy(config.regions, route),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
    )


@pytest.mark.parametrize(
    ("route", "leaves_once_connected"), [(Route.DIRECT, True), (Route.RELAY, False)]
)
def test_the_hub_shows_a_drain_who_is_waiting_and_how_each_call_stands(
    route: Route, leaves_once_connected: bool
) -> None:
    hub = hub_on(route)
    a, b, waiter, idle = (hub.connect("default", 0, 0) for _ in range(4))
    for user in (a, b, waiter):
        hub.receive(user, p.Join(), 0, 0)
    (pair,) = {m.pair for _, m in hub.drain_outbox() if isinstance(m, p.Paired)}

    out_of_call, calls = hub.calls_for_drain()
    assert out_of_call == [waiter, idle]
    assert [(set(c.members), c.route, c.media_connected) for c in calls] == [({a, b}, route, False)]
    assert send_away_order(out_of_call, calls) == [waiter, idle]  # still handshaking here

    hub.receive(a, p.CallState(pair=pair, state="connected", route=route.value), 1, 1)
    out_of_call, calls = hub.calls_for_drain()
    assert calls[0].media_connected
    leaving = send_away_order(out_of_call, calls)
    assert (set(leaving) == {waiter, idle, a, b}) is leaves_once_connected
