"""The shared pool in Redis (``signaling/cluster/pool.lua``) against a real redis-server: the
rules by example, and the same stateful model the in-memory matchmaker is checked against."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import settings

from signaling.cluster import pool
from signaling.matchmaking import (
    Event,
    Expired,
    MatchmakingError,
    MatchmakingSettings,
    Paired,
    PartnerLost,
    UserState,
)
from tests.support.matchmaking_model import SETTINGS, MatchmakingMachine, drain
from tests.support.redis_server import RedisServer, redis_server

PREFIX = "t:"
_server: RedisServer | None = None


@pytest.fixture(scope="module", autouse=True)
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One server for the module (the stateful test cannot take fixtures); each pool flushes it."""
    global _server
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        _server = server
        yield server
        _server = None


class RedisMatchmaker:
    """The ``Matchmaker`` interface over the pool script, with a blocking client: what the model
    drives. A node of the service speaks to the same script asynchronously (``cluster.node``)."""

    def __init__(self, settings: MatchmakingSettings, seed: int, node: str = "") -> None:
        assert _server is not None
        self.redis = redis.Redis.from_url(_server.url, decode_responses=True)
        self.redis.flushdb()
        self._script = self.redis.register_script(pool.SCRIPT)
        self._settings = settings
        self._rng = random.Random(seed)
        self._node = node
        self._events: list[Event] = []

    def close(self) -> None:
        self.redis.close()

    def _call(self, op: str, now: float, *args: str) -> Any:
        argv = pool.script_args(PREFIX, op, now, self._settings, self._rng, *args)
        try:
            return self._script(args=argv)
        except redis.ResponseError as exc:
            raise MatchmakingError(str(exc)) from None

    def _run(self, op: str, now: float, *args: str) -> None:
        reply = self._call(op, now, *args)
        self._events += [pool.plain(event) for event in pool.decode_events(reply)]

    def connect(self, user: str, now: float) -> None:
        self._run("connect", now, user, self._node, "default")

    def join(self, user: str, now: float, interests: frozenset[str] = frozenset()) -> None:
        self._run("join", now, user, pool.encode_interests(interests), "default", "0")

    def next(self, user: str, now: float) -> None:
        self._run("next", now, user, "")

    def report(self, user: str, now: float) -> None:
        self._run("report", now, user, "")

    def leave(self, user: str, now: float) -> None:
        self._run("leave", now, user, "")

    def disconnect(self, user: str, now: float) -> None:
        self._run("disconnect", now, user)

    def heartbeat(self, user: str, now: float) -> None:
        self._run("heartbeat", now, user)

    def handle_timer(self, now: float) -> None:
        self._run("tick", now)

    def next_timer(self) -> float | None:
        at = self._call("next_timer", 0.0)
        return None if at is None else float(at)

    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    def state_of(self, user: str) -> UserState | None:
        reply = self._call("user", 0.0, user)
        return None if reply is None else UserState(reply[0])

    def partner_of(self, user: str) -> str | None:
        reply = self._call("user", 0.0, user)
        return None if reply is None or not reply[1] else str(reply[1])

    def _count(self, index: int) -> int:
        return int(self._call("counts", 0.0)[index] or 0)

    def waiting_count(self) -> int:
        return self._count(0)

    def pair_count(self) -> int:
        return self._count(1)

    def user_count(self) -> int:
        return self._count(2)


@pytest.fixture
def mm() -> Iterator[RedisMatchmaker]:
    matchmaker = RedisMatchmaker(SETTINGS, seed=0)
    yield matchmaker
    matchmaker.close()


def test_pairs_waiting_users_and_refuses_misuse(mm: RedisMatchmaker) -> None:
    for user in "abc":
        mm.connect(user, 0)
    with pytest.raises(MatchmakingError, match="already connected"):
        mm.connect("a", 0)
    with pytest.raises(MatchmakingError, match="unknown user"):
        mm.join("zed", 0)
    mm.join("a", 0)
    assert mm.state_of("a") is UserState.WAITING and drain(mm) == []
    mm.join("b", 0)
    assert drain(mm) == [Paired("b", "a")]
    assert (mm.pair_count(), mm.waiting_count(), mm.user_count()) == (1, 0, 3)
    with pytest.raises(MatchmakingError, match="in a call"):
        mm.join("a", 0)
    mm.join("c", 0)
    mm.next("b", 1)
    assert drain(mm) == [Paired("b", "c"), PartnerLost("a", "b", "next")]
    assert mm.next_timer() == 11  # the cool-down a-b; heartbeat deadlines are at 30 and 31


def test_interest_fallback_cooldown_end_and_expiry(mm: RedisMatchmaker) -> None:
    for user in ("chess", "music", "plain"):
        mm.connect(user, 0)
    mm.join("chess", 0, frozenset({"chess"}))
    mm.join("music", 0, frozenset({"music"}))
    assert mm.next_timer() == 3
    mm.handle_timer(3)
    assert drain(mm) == [Paired("music", "chess")]  # both relaxed at 3
    mm.join("plain", 3)
    mm.heartbeat("plain", 20)
    mm.handle_timer(30)  # chess and music were last active at 0: gone; plain stays
    assert drain(mm) == [Expired("chess"), Expired("music")]  # together: no partner to tell
    assert mm.state_of("plain") is UserState.WAITING and mm.user_count() == 1


def test_a_stale_next_leaves_a_new_pair_alone(mm: RedisMatchmaker) -> None:
    """A node that has not yet heard of a user's new partner sends the partner it knew: the
    input is about a call already over, and must not break the new one."""
    for user in "abc":
        mm.connect(user, 0)
    mm.join("a", 0)
    mm.join("b", 0)
    mm.next("a", 1)  # b is waiting again
    mm.join("c", 1)
    drain(mm)
    assert mm.partner_of("b") == "c"
    mm._run("next", 2, "b", "a")  # b's node still believed b was with a
    assert drain(mm) == [] and mm.partner_of("b") == "c"
    mm._run("leave", 3, "b", "a")  # but Stop stops whatever b is doing by now
    assert drain(mm) == [PartnerLost("c", "b", "leave"), Paired("c", "a")]  # a was waiting
    assert mm.state_of("b") is UserState.IDLE


def test_events_are_published_to_the_nodes_concerned() -> None:
    mm = RedisMatchmaker(SETTINGS, seed=0, node="n1")
    try:
        with mm.redis.pubsub() as sub:
            sub.subscribe(PREFIX + "node:n1")
            assert sub.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
            mm.connect("a", 0)
            mm.connect("b", 0)
            mm.join("a", 0)
            mm.join("b", 0)
            message = sub.get_message(timeout=1)
            assert message is not None
            kind, first, second, _pair, *where = json.loads(message["data"])
            assert (kind, first, second, where) == (
                "paired",
                "b",
                "a",
                ["n1", "default", "0", "", ""] * 2,
            )
            assert sub.get_message(timeout=0.1) is None  # both members on n1: told once
    finally:
        mm.close()


class RedisMatchmakingMachine(MatchmakingMachine):
    def make_matchmaker(self) -> Any:
        return RedisMatchmaker(SETTINGS, seed=7)

    def teardown(self) -> None:
        self.mm.close()


TestRedisPoolProperties = RedisMatchmakingMachine.TestCase
TestRedisPoolProperties.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)


def test_the_timers_run_once_per_period_whichever_nodes_ask(mm: RedisMatchmaker) -> None:
    mm.connect("a", 0)
    mm._run("tick", SETTINGS.heartbeat_timeout_s + 1, "60000")  # another node's tick: due
    assert drain(mm) == [Expired("a")]
    mm.connect("b", 0)
    mm._run("tick", SETTINGS.heartbeat_timeout_s + 2, "60000")  # within that node's period
    assert drain(mm) == [] and mm.user_count() == 1
    mm.handle_timer(SETTINGS.heartbeat_timeout_s + 2)  # no period: runs (as tests drive it)
    assert drain(mm) == [Expired("b")]


def test_a_forgotten_pair_is_restored_once_both_are_back(mm: RedisMatchmaker) -> None:
    mm.connect("a", 0)
    mm._run("restore", 0, "a", "b")  # b is not back yet: nothing happens
    assert mm.state_of("a") is UserState.IDLE
    mm.connect("b", 0)
    mm._run("restore", 0, "b", "a")
    assert (mm.partner_of("a"), mm.partner_of("b"), mm.pair_count()) == ("b", "a", 1)
    mm._run("restore", 0, "a", "b")  # the other node's word comes too late: no change
    assert mm.pair_count() == 1 and drain(mm) == []
    mm.next("a", 1)  # the pool knows the pair again: the partner is told
    assert drain(mm) == [PartnerLost("b", "a", "next")]
