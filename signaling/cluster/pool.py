"""The shared pool's script: how to call it and how to read what it returns or publishes.

No I/O here: a caller with any Redis client (the node's asyncio one, a test's blocking one)
sends ``script_args(...)`` with ``EVALSHA``/``EVAL`` and turns the reply into events with
``decode_events``. The events are those of ``signaling.matchmaking``, so the hub reads a shared
pool the way it reads the in-memory one; a pairing also carries the pair's id and each member's
node and region, which only a shared pool needs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from signaling.matchmaking import Event, Expired, MatchmakingSettings, Paired, PartnerLost
from signaling.strikes import NOBODY, Person

SCRIPT = (resources.files("signaling.cluster") / "pool.lua").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Member:
    """Where a member of a pairing is connected."""

    node: str
    """The node holding its WebSocket."""
    region: str
    """Its region, for the route both nodes must choose alike."""
    hide_address: bool
    """It asked never to be on a direct call: also for the route."""
    who: Person = NOBODY
    """Its device and network: what its partner's node reports it by."""


@dataclass(frozen=True, slots=True)
class SharedPairing:
    """A pairing made by the shared pool: the hub's event plus what the nodes need to agree."""

    event: Paired
    pair: str
    """The pair's id, the same on both members' nodes."""
    first: Member
    second: Member


PoolEvent = SharedPairing | PartnerLost | Expired


def script_args(
    prefix: str,
    op: str,
    now: float,
    settings: MatchmakingSettings,
    rng: random.Random,
    *args: str,
) -> list[str]:
    """ARGV for one call of the script (it takes no KEYS: it is meant for one Redis, not a
    Redis Cluster, whose slots would split the pool)."""
    return [
        prefix,
        op,
        repr(now),
        repr(settings.repair_cooldown_s),
        repr(settings.interest_fallback_s),
        repr(settings.heartbeat_timeout_s),
        str(rng.randrange(1, 2**31)),
        *args,
    ]


def encode_interests(interests: frozenset[str]) -> str:
    return json.dumps(sorted(interests))


def decode_event(raw: Sequence[str | bytes]) -> PoolEvent:
    """One event, as returned in a reply or published (then parsed from JSON first)."""
    fields = [item.decode() if isinstance(item, bytes) else item for item in raw]
    match fields:
        case ["paired", first, second, pair, *facts] if len(facts) == 10:
            node1, region1, hide1, who1, net1, node2, region2, hide2, who2, net2 = facts
            return SharedPairing(
                Paired(first, second),
                pair,
                Member(node1, region1, hide1 == "1", Person(who1, net1)),
                Member(node2, region2, hide2 == "1", Person(who2, net2)),
            )
        case ["lost", user, partner, reason]:
            return PartnerLost(user, partner, reason)
        case ["expired", user]:
            return Expired(user)
    raise ValueError(f"not a pool event: {fields!r}")


def decode_events(reply: Sequence[Sequence[str | bytes]]) -> list[PoolEvent]:
    return [decode_event(raw) for raw in reply]


def plain(event: PoolEvent) -> Event:
    """The event as the in-memory matchmaker would have made it."""
    return event.event if isinstance(event, SharedPairing) else event
