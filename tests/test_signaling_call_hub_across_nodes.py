"""Two hubs as two nodes of a shared pool, without Redis or sockets: the pool's pairing is
handed to both, and what one node's hub sends the other is handed over by the test. The call
is hosted by the node of the member whose action paired them, whichever node the worker is on.
"""

from __future__ import annotations

import itertools

from relay import control as rc
from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.cluster import pool
from signaling.cluster.node import ClusterMatchmaker
from signaling.config import config_from_mapping
from signaling.matchmaking import Paired
from signaling.relays import elsewhere_id
from signaling.route_policy import Route, RoutePolicy


class Node:
    def __init__(self, name: str) -> None:
        config = config_from_mapping({"moderation": {"strikes_to_ban": 2}})
        counter = itertools.count()
        self.name = name
        self.matchmaker = ClusterMatchmaker(name)
        self.hub = SignalingHub(
            config,
            RoutePolicy(config.regions, Route.STRICT),
            self.matchmaker,
            new_id=lambda: f"{name}{next(counter)}",
        )

    def joined(self, device: str) -> str:
        user = self.hub.connect("default", 0, 0, address="192.0.2.1", device=device)
        self.hub.receive(user, p.Join(), 0, 0)
        self.hub.drain_outbox()
        return user

    def told(self) -> list[tuple[str, p.ServerMessage]]:
        return self.hub.drain_outbox()


def pairing(host: Node, first: str, guest: Node, second: str) -> None:
    """The pool paired `first` (at `host`) with `second` (at `guest`); both nodes hear it."""
    event = pool.SharedPairing(
        Paired(first, second),
        "pair1",
        pool.Member(host.name, "default", hide_address=False),
        pool.Member(guest.name, "default", hide_address=False),
    )
    for node in (host, guest):
        node.matchmaker.deliver(event, 0)
        node.hub.handle_timer(0)


def hand_over(source: Node, target: Node) -> None:
    for user, partner, message in source.hub.drain_partner_node_outbox():
        target.hub.from_partner_node(user, partner, message, 0, 0)


def test_the_host_places_the_call_on_another_nodes_worker_and_carries_the_guests_legs() -> None:
    worker_node, host = Node("A"), Node("B")
    worker_node.hub.worker_joined(rc.Hello(worker_id="w1", token="t", pid=1, max_sessions=10))
    load = rc.Load(legs=0, cpu_percent=0, rss_bytes=0, moderation_ready=True)
    worker_node.hub.worker_message("w1", load, 0, 0)
    record = worker_node.hub.relays.record_of("w1", "A")
    assert record is not None
    host.hub.relays.update_elsewhere(record, until=60)
    w1 = elsewhere_id("w1", "A")  # as the host knows it

    guest_user = worker_node.joined("guest-device")
    host_user = host.joined("host-device")
    pairing(host, host_user, worker_node, guest_user)
    assert [(to, m.role) for to, m in worker_node.told() if isinstance(m, p.Paired)] == [
        (guest_user, "offerer")
    ]
    assert [(to, m.role) for to, m in host.told() if isinstance(m, p.Paired)] == [
        (host_user, "offerer")
    ]

    # the guest's offer goes to the host, which opens its leg on the worker of node A
    worker_node.hub.receive(guest_user, p.Offer(pair="pair1", sdp="guest offer"), 0, 0)
    assert worker_node.hub.drain_worker_outbox() == []
    hand_over(worker_node, host)
    host.hub.receive(host_user, p.Offer(pair="pair1", sdp="host offer"), 0, 0)
    opened = host.hub.drain_worker_outbox()
    assert [(w, type(c), c.offer) for w, c in opened if isinstance(c, rc.OpenLeg)] == [
        (w1, rc.OpenLeg, "guest offer"),
        (w1, rc.OpenLeg, "host offer"),
    ]
    guest_leg, host_leg = (c.leg for _, c in opened if isinstance(c, rc.OpenLeg))
    assert host.hub.relays.everywhere()[0].legs_in_use == 2  # counted until A reports them

    # the worker's word, passed back by node A: answers, then the link
    for leg in (guest_leg, host_leg):
        host.hub.worker_message(w1, rc.Answer(leg=leg, sdp=f"answer {leg}"), 0, 0)
    answers = {to: m.sdp for to, m in host.told() if isinstance(m, p.RelayedAnswer)}
    assert answers == {guest_user: f"answer {guest_leg}", host_user: f"answer {host_leg}"}
    assert [type(c) for _, c in host.hub.drain_worker_outbox()] == [rc.Link]

    # the guest's call states go to the host too, which tells its own member
    connected = p.CallState(pair="pair1", state="connected", route="strict")
    worker_node.hub.receive(guest_user, connected, 0, 0)
    hand_over(worker_node, host)
    assert [(to, type(m)) for to, m in host.told()] == [(host_user, p.PartnerState)]

    # a strike of the guest is counted by its own node, which holds the person
    blocked = rc.Moderation(leg=guest_leg, state="blocked", label="x", score=0.9)
    host.hub.worker_message(w1, blocked, 0, 0)
    assert host.told() == [] and host.hub.stats.strikes == 0
    hand_over(host, worker_node)
    assert worker_node.hub.stats.strikes == 1
    notices = [(to, m.who) for to, m in worker_node.told() if isinstance(m, p.ModerationNotice)]
    assert notices == [(guest_user, "you"), (host_user, "partner")]

    # the worker's node says it is gone: the host moves the call, and finds no other worker
    host.hub.worker_lost(w1)
    ended = [to for to, m in host.told() if isinstance(m, p.CallEnded)]
    assert sorted(ended) == sorted([guest_user, host_user])


def test_a_message_for_a_call_over_is_dropped_by_the_host() -> None:
    guest, host = Node("A"), Node("B")
    guest_user, host_user = guest.joined("g"), host.joined("h")
    pairing(host, host_user, guest, guest_user)
    guest.hub.receive(guest_user, p.Offer(pair="pair1", sdp="offer"), 0, 0)
    late = guest.hub.drain_partner_node_outbox()
    host.hub.receive(host_user, p.Leave(), 0, 0)
    host.told()
    for user, partner, message in late:
        host.hub.from_partner_node(user, partner, message, 0, 0)
    assert host.told() == [] and host.hub.drain_worker_outbox() == []
