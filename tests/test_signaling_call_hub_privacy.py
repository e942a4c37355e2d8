"""IP privacy by choice: a user who joins with ``hide_address`` is never on a direct call.

Protocol level (the sans-I/O hub, then JSON over the served /ws; the page's toggle is the web
client's and not built here): a pair that includes such a user takes the relay route where the
regions' route is direct, its offers and candidates go to the relay worker and never to the
partner, the choice holds for later calls, and with no relay the call fails rather than going
direct.
"""

from __future__ import annotations

import itertools
import json
import random

from relay import control as rc
from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.config import config_from_mapping
from signaling.matchmaking import Matchmaker
from signaling.route_policy import Route, RoutePolicy
from tests.support.server import RunningServer
from tests.support.wsclient import Client

CANDIDATE = "candidate:1 1 udp 2130706431 192.0.2.44 50000 typ host"


def make_hub(route: Route) -> SignalingHub:
    """A hub whose every region takes `route`."""
    config = config_from_mapping({})
    counter = itertools.count()
    return SignalingHub(
        config,
        RoutePolicy(config.regions, route),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
        new_id=lambda: f"id{next(counter)}",
    )


def worker_joins(hub: SignalingHub, worker: str) -> None:
    """A worker that can take calls (and moderate them) joins."""
    hub.worker_joined(rc.Hello(worker_id=worker, token="t", pid=1, max_sessions=10))
    load = rc.Load(legs=0, cpu_percent=0, rss_bytes=0, moderation_ready=True)
    hub.worker_message(worker, load, 0, 0)


def pair_up(hub: SignalingHub, hide_a: bool, hide_b: bool = False) -> tuple[str, str, str, str]:
    """Two users join; returns their ids, the pair id and the route both were told."""
    a = hub.connect("default", 0, 0, address="192.0.2.44", device="dev-a")
    b = hub.connect("default", 0, 0, address="198.51.100.9", device="dev-b")
    hub.receive(a, p.Join(hide_address=hide_a), 0, 0)
    hub.receive(b, p.Join(hide_address=hide_b), 0, 0)
    paired = [(to, m) for to, m in hub.drain_outbox() if isinstance(m, p.Paired)]
    assert {to for to, _ in paired} == {a, b}
    ((pair, route),) = {(m.pair, m.route) for _, m in paired}
    return a, b, pair, route


def test_the_join_field_decodes_and_defaults_to_showing() -> None:
    raw = json.dumps({"type": "join", "hide_address": True})
    assert p.decode_client_message(raw, 65536) == p.Join(hide_address=True)
    assert p.decode_client_message('{"type": "join"}', 65536) == p.Join()


def test_without_the_choice_the_direct_region_pairs_directly() -> None:
    hub = make_hub(Route.DIRECT)
    worker_joins(hub, "w1")
    assert pair_up(hub, hide_a=False)[3] == "direct"


def test_a_hidden_user_takes_the_relay_and_the_partner_never_sees_their_sdp_or_candidates() -> None:
    hub = make_hub(Route.DIRECT)
    worker_joins(hub, "w1")
    a, b, pair, route = pair_up(hub, hide_a=True)
    assert route == "relay"
    hub.receive(a, p.Offer(pair=pair, sdp="offer-with-a's-addresses"), 0, 0)
    hub.receive(a, p.Candidate(pair=pair, candidate=p.IceCandidate(candidate=CANDIDATE)), 0, 0)
    to_worker = hub.drain_worker_outbox()
    assert any(isinstance(m, rc.OpenLeg) for _, m in to_worker)
    forwarded = [m for to, m in hub.drain_outbox() if to == b]
    assert "192.0.2.44" not in repr(forwarded)
    assert not [m for m in forwarded if isinstance(m, (p.Offer, p.Candidate))]


def test_the_choice_holds_for_the_next_partner() -> None:
    hub = make_hub(Route.DIRECT)
    worker_joins(hub, "w1")
    a, b, _, _ = pair_up(hub, hide_a=True)
    hub.receive(a, p.Next(), 1, 1)
    hub.receive(b, p.Leave(), 1, 1)
    hub.drain_outbox()
    c = hub.connect("default", 1, 1, address="203.0.113.5", device="dev-c")
    hub.receive(c, p.Join(), 1, 1)
    paired = [(to, m.route) for to, m in hub.drain_outbox() if isinstance(m, p.Paired)]
    assert sorted(paired) == sorted([(a, "relay"), (c, "relay")])


def test_with_no_relay_the_call_fails_instead_of_going_direct() -> None:
    hub = make_hub(Route.DIRECT)
    a = hub.connect("default", 0, 0, address="192.0.2.44", device="dev-a")
    b = hub.connect("default", 0, 0, address="198.51.100.9", device="dev-b")
    hub.receive(a, p.Join(hide_address=True), 0, 0)
    hub.receive(b, p.Join(), 0, 0)
    outbox = hub.drain_outbox()
    assert {m.route for _, m in outbox if isinstance(m, p.Paired)} == {"relay"}
    assert {to for to, m in outbox if isinstance(m, p.CallEnded)} == {a, b}


def test_a_strict_region_stays_strict() -> None:
    hub = make_hub(Route.STRICT)
    worker_joins(hub, "w1")
    assert pair_up(hub, hide_a=True)[3] == "strict"


async def test_over_the_socket_the_field_moves_a_direct_region_to_the_relay(
    server: RunningServer,
) -> None:
    """The served app, JSON on /ws: plain joiners pair directly, a pair with one who hides
    does not (and, with no relay worker here, is told the call cannot go on)."""
    clients = [await Client.connect(server.ws_url) for _ in range(4)]
    try:
        plain_a, plain_b, hidden, partner = clients
        await plain_a.send(type="join")
        await plain_b.send(type="join")
        assert (await plain_a.expect_paired())["route"] == "direct"
        assert (await plain_b.expect_paired())["route"] == "direct"
        await hidden.send(type="join", hide_address=True)
        await partner.send(type="join")
        for client in (hidden, partner):
            paired = await client.expect_paired()
            assert (paired["route"], paired["role"]) == ("relay", "offerer")
            await client.expect("call_ended")
    finally:
        for client in clients:
            await client.close()
