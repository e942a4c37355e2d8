"""Draining for a rolling restart: which clients this process may send to another one, and when.

A SIGTERM makes the process refuse new clients and tell connected ones to reconnect (a load
balancer, seeing ``/readyz`` fail, sends them to another process). A client out of a call
loses nothing by moving: it joins again there. A call is another matter, since the new
process cannot take over its pair. Signaling steps back from a *direct* call once its media
flows (the browsers talk peer to peer), so its members move and keep their call. A call whose
media has not connected yet still needs this process for its handshake, and a *relayed* call
(relay or strict) needs it for its whole life: a relay worker closes every leg when its
control connection to signaling drops. Those stay until they end or the drain times out.
Pure: the hub's view of its calls goes in, the order in which to send clients away comes out.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from signaling.route_policy import Route

RECONNECT_SPREAD_S = (0.5, 3.0)
"""Each client is told to wait a random time in this range, so thousands of clients do not
reach the next process in the same instant."""


@dataclass(frozen=True, slots=True)
class CallView:
    """What a drain needs to know of a call."""

    members: tuple[str, str]
    route: Route
    media_connected: bool


def needs_this_process(call: CallView) -> bool:
    """Still handshaking, or relayed through workers bound to this process."""
    return not call.media_connected or call.route is not Route.DIRECT


def send_away_order(
    out_of_call: Iterable[str], calls: Iterable[CallView], everyone: bool = False
) -> list[str]:
    """Clients to send away now (all of them once the drain times out): those out of a call
    first, then both members of each call, side by side, so that a member left behind for a
    moment is never paired with someone who is about to go too."""
    order = list(out_of_call)
    for call in calls:
        if everyone or not needs_this_process(call):
            order.extend(call.members)
    return order


def reconnect_after_s(rng: random.Random) -> float:
    return rng.uniform(*RECONNECT_SPREAD_S)
