"""Which clients a draining process may send away (``signaling.drain``), without a network."""

from __future__ import annotations

import random

import pytest

from signaling.drain import (
    RECONNECT_SPREAD_S,
    CallView,
    needs_this_process,
    reconnect_after_s,
    send_away_order,
)
from signaling.route_policy import Route


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
