"""Which node hosts the call of a leg that this node's worker carries for another node."""

from __future__ import annotations

from relay import control as rc
from signaling.cluster.foreign_legs import ForeignLegs


def test_a_workers_word_about_a_leg_opened_from_another_node_goes_back_there() -> None:
    legs = ForeignLegs()
    legs.command("node-b", "w1", rc.OpenLeg(leg="l1", offer="v=0"))
    assert legs.host_of("w1", rc.Answer(leg="l1", sdp="v=0")) == "node-b"
    assert legs.host_of("w1", rc.Answer(leg="l2", sdp="v=0")) is None  # one of ours
    assert legs.host_of("w2", rc.Answer(leg="l1", sdp="v=0")) is None  # not that worker's
    load = rc.Load(legs=1, cpu_percent=0, rss_bytes=0)
    assert legs.host_of("w1", load) is None  # about the worker: for its own node
    assert legs.host_of("w1", rc.LegState(leg="l1", state="closed")) == "node-b"
    assert legs.host_of("w1", rc.LegState(leg="l1", state="closed")) is None  # its last word


def test_a_closed_leg_or_a_gone_worker_is_forgotten() -> None:
    legs = ForeignLegs()
    legs.command("node-b", "w1", rc.OpenLeg(leg="l1", offer="v=0"))
    legs.command("node-b", "w1", rc.OpenLeg(leg="l2", offer="v=0"))
    legs.command("node-b", "w1", rc.CloseLeg(leg="l1"))
    assert legs.host_of("w1", rc.Refused(leg="l1", reason="x")) is None
    legs.forget_worker("w1")
    assert legs.host_of("w1", rc.Refused(leg="l2", reason="x")) is None


def test_a_host_missing_for_the_presence_ttl_is_dead_and_its_legs_are_named() -> None:
    legs = ForeignLegs()
    for leg, host, worker in (("l1", "b", "w1"), ("l2", "b", "w2"), ("l3", "c", "w1")):
        legs.command(host, worker, rc.OpenLeg(leg=leg, offer="v=0"))
    assert legs.hosts() == ["b", "c"]
    assert not legs.presence("b", alive=False, now=10, grace_s=1)  # a Redis restarted empty?
    assert not legs.presence("b", alive=True, now=10.5, grace_s=1)  # it renewed: alive
    assert not legs.presence("b", alive=False, now=11, grace_s=1)
    assert not legs.presence("b", alive=False, now=11.9, grace_s=1)
    assert legs.presence("b", alive=False, now=12, grace_s=1)  # missing for the whole TTL
    assert legs.legs_of("b") == [("w1", "l1"), ("w2", "l2")]
    assert legs.legs_of("c") == [("w1", "l3")]
