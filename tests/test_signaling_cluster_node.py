"""A node's view of the shared pool (``ClusterMatchmaker``), without Redis: what it sends, in
which order, and which of the pool's events it has already overtaken."""

from __future__ import annotations

import json

import pytest

from signaling import protocol as p
from signaling.cluster.node import ClusterMatchmaker
from signaling.cluster.pool import Member, SharedPairing
from signaling.matchmaking import Expired, MatchmakingError, Paired, PartnerLost, UserState


def pairing(
    first: str, second: str, first_node: str = "n1", second_node: str = "n2"
) -> SharedPairing:
    return SharedPairing(
        Paired(first, second),
        "p1",
        Member(first_node, "FR", hide_address=False),
        Member(second_node, "DE", hide_address=True),
    )


def drain(mm: ClusterMatchmaker) -> list[object]:
    events = []
    while (event := mm.next_event()) is not None:
        events.append(event)
    return events


@pytest.fixture
def mm() -> ClusterMatchmaker:
    view = ClusterMatchmaker("n1")
    view.connect("a", 0)
    view.join("a", 0)
    return view


def test_inputs_go_out_in_order(mm: ClusterMatchmaker) -> None:
    mm.heartbeat("a", 1)
    mm.deliver(pairing("a", "b"), 5)
    assert drain(mm) == [Paired("a", "b", pair="p1", remote_region="DE", remote_hides_address=True)]
    assert mm.forward("b", p.RelayedChat(pair="p1", text="hi"))
    assert not mm.forward("stranger", p.RelayedChat(pair="p1", text="hi"))
    mm.next("a", 2)
    operations = mm.drain_operations()
    assert [op[:2] for op in operations] == [
        ("connect", "a"),
        ("join", "a"),
        ("publish", "n2"),
        ("script", "next"),
    ]  # no heartbeat: a's own inputs say it is alive
    kind, user, pair, text = json.loads(operations[2][2])
    assert (kind, user, pair, json.loads(text)["text"]) == ("msg", "b", "p1", "hi")
    assert operations[3] == ("script", "next", "a", "b")  # the partner it believed in
    assert mm.drain_operations() == []


def test_heartbeats_go_last_less_those_of_users_with_an_input(mm: ClusterMatchmaker) -> None:
    mm.connect("c", 0)
    mm.drain_operations()
    for user in ("a", "c"):
        mm.heartbeat(user, 1)
    mm.leave("a", 1)
    assert mm.drain_operations() == [("script", "leave", "a", ""), ("script", "heartbeat", "c")]


def test_a_pairing_overtaken_by_a_leave_is_dropped(mm: ClusterMatchmaker) -> None:
    mm.leave("a", 1)
    mm.deliver(pairing("b", "a", first_node="n2", second_node="n1"), 5)
    assert drain(mm) == [] and mm.state_of("a") is UserState.IDLE
    mm.disconnect("a", 2)
    mm.deliver(pairing("b", "a", first_node="n2", second_node="n1"), 5)
    assert drain(mm) == [] and mm.user_count() == 0


def test_a_pairing_with_a_member_here_that_moved_on_is_dropped_whole(
    mm: ClusterMatchmaker,
) -> None:
    """Both members here, one has left meanwhile: the other is not told of a pairing that
    the leave is about to undo, and the news that its partner left is dropped in turn."""
    mm.connect("b", 0)
    mm.join("b", 0)
    mm.leave("a", 1)
    mm.deliver(pairing("a", "b", first_node="n1", second_node="n1"), 5)
    assert drain(mm) == [] and mm.state_of("b") is UserState.WAITING
    mm.deliver(PartnerLost("b", "a", "leave"), 5)
    assert drain(mm) == [] and mm.state_of("b") is UserState.WAITING


def test_news_of_a_partner_already_left_is_dropped(mm: ClusterMatchmaker) -> None:
    mm.deliver(pairing("a", "b"), 5)
    mm.next("a", 1)  # a left b here before the pool told us that b left a
    mm.deliver(PartnerLost("a", "b", "next"), 5)
    assert drain(mm) == [Paired("a", "b", pair="p1", remote_region="DE", remote_hides_address=True)]
    assert mm.state_of("a") is UserState.WAITING
    mm.deliver(pairing("a", "c"), 5)
    mm.deliver(PartnerLost("a", "c", "next"), 5)
    assert drain(mm)[1:] == [PartnerLost("a", "c", "next")]
    assert mm.state_of("a") is UserState.WAITING and mm.partner_of("a") is None
    mm.deliver(Expired("a"), 5)
    assert drain(mm) == [Expired("a")] and mm.state_of("a") is None


def test_both_members_here_are_told_once(mm: ClusterMatchmaker) -> None:
    mm.connect("b", 0)
    mm.join("b", 0)
    mm.deliver(pairing("b", "a", first_node="n1", second_node="n1"), 5)
    assert drain(mm) == [Paired("b", "a", pair="p1")]
    assert mm.partner_of("a") == "b" and mm.partner_of("b") == "a" and mm.pair_count() == 1
    assert mm.waiting_since("a") == 0  # how long it waited is read once paired


def test_banning_a_remote_partner_requeues_ours(mm: ClusterMatchmaker) -> None:
    mm.deliver(pairing("a", "b"), 5)
    drain(mm)
    mm.leave("b", 1)  # b is on n2; reports here banned it
    assert mm.state_of("a") is UserState.WAITING
    assert mm.drain_operations()[-1] == ("script", "leave", "b", "")
    mm.deliver(PartnerLost("a", "b", "leave"), 5)
    assert drain(mm) == []


def test_misuse_is_refused_from_the_view(mm: ClusterMatchmaker) -> None:
    with pytest.raises(MatchmakingError, match="already connected"):
        mm.connect("a", 0)
    with pytest.raises(MatchmakingError, match="no partner"):
        mm.report("a", 0)
    with pytest.raises(MatchmakingError, match="unknown user"):
        mm.heartbeat("zed", 0)
    mm.deliver(pairing("a", "b"), 5)
    with pytest.raises(MatchmakingError, match="use next"):
        mm.join("a", 0)


def test_after_a_redis_restart_users_are_handed_over_again_first(mm: ClusterMatchmaker) -> None:
    mm.connect("b", 0)
    mm.join("b", 0, frozenset({"chess"}))
    mm.deliver(pairing("a", "c"), 5)
    mm.drain_operations()
    mm.connect("d", 1)  # handed over with the others; its own connect follows, a harmless repeat
    mm.register_again()
    assert mm.drain_operations() == [
        ("connect", "a"),
        ("script", "restore", "a", "c"),
        ("connect", "b"),
        ("join", "b", '["chess"]'),
        ("connect", "d"),
        ("connect", "d"),
    ]
