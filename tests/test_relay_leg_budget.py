"""relay/leg_budget.py through the forwarding hub: what one leg may make the relay do.

The review's probe, replayed: one 1,212-byte NACK (300 FCI entries, each naming the same 17
packets) made the relay resend 5,100 packets; now each named packet is resent once, and a
receiver's resends per second are capped. Incoming media over the per-leg packet or bit rate
is dropped and counted."""

from __future__ import annotations

import random
import struct

from relay import rtcp, rtp
from relay.forwarding_hub import ForwardingHub
from relay.leg_budget import LegBudget, nack_request
from tests.support.fake_legs import DELTA, KEY, FakeLeg, pkt


def paired_with_video(packets: int, budget: LegBudget | None = None) -> tuple[
    ForwardingHub, FakeLeg, FakeLeg, list[int]
]:  # fmt: skip
    """A sends B a keyframe and deltas, 1 ms apart; B's received outgoing seqs."""
    hub = ForwardingHub(rng=random.Random(1)) if budget is None else ForwardingHub(
        rng=random.Random(1), budget=budget
    )  # fmt: skip
    a, b = FakeLeg(0x100), FakeLeg(0x200)
    hub.pair(a, b)
    for i in range(packets):
        hub.on_rtp(a, pkt(96, 1000 + i, 3000 * i, KEY if i == 0 else DELTA), i * 0.001)
    seqs = [rtp.sequence_number(p) for p in b.rtp_sent(96)]
    assert len(seqs) == packets
    b.sent.clear()
    return hub, a, b, seqs


def raw_nack(sender: int, media: int, entries: list[tuple[int, int]]) -> bytes:
    """A NACK with these (PID, BLP) entries as given: duplicates kept, as an attacker sends."""
    body = struct.pack("!II", sender, media) + b"".join(struct.pack("!HH", *e) for e in entries)
    return bytes((0x80 | rtcp.FMT_NACK, rtcp.RTCP_RTPFB)) + (len(body) // 4).to_bytes(2, "big") + (
        body
    )  # fmt: skip


def test_the_5100_packet_nack_resends_each_named_packet_once() -> None:
    hub, _, b, seqs = paired_with_video(100)
    nack = raw_nack(0x999, b.media["video"].out_ssrc, [(seqs[10], 0xFFFF)] * 300)
    assert len(nack) == 1212
    (event,), _ = rtcp.parse_rtcp(nack)
    assert isinstance(event, rtcp.Nack) and len(event.seqs) == 5100
    hub.on_rtcp(b, nack, 1.0)
    resent = b.rtp_sent(96)
    assert len(resent) == 17  # the packets named, each once: at most 2x holds with room
    assert sorted(rtp.sequence_number(p) for p in resent) == seqs[10:27]
    assert hub.nack_limits["nack_repeats"] == 5100 - 17


def test_resends_per_second_are_capped_per_receiver() -> None:
    budget = LegBudget(max_retransmits_per_s=40)
    hub, _, b, seqs = paired_with_video(100, budget)
    nack = rtcp.build_nack(0x999, b.media["video"].out_ssrc, seqs[:17])
    for i in range(5):  # 85 asked for within one second
        hub.on_rtcp(b, nack, 1.0 + i * 0.1)
    assert len(b.rtp_sent(96)) == 40
    assert hub.nack_limits["nack_over_budget"] == 85 - 40
    hub.on_rtcp(b, nack, 2.5)  # a new second
    assert len(b.rtp_sent(96)) == 57


def test_one_nack_answers_at_most_max_nack_seqs() -> None:
    budget = LegBudget(max_nack_seqs=8)
    assert nack_request((5, 5, 6, 7), budget) == ([5, 6, 7], 1)
    assert nack_request(tuple(range(20)), budget) == (list(range(8)), 12)


def test_incoming_media_over_the_packet_rate_is_dropped_and_counted() -> None:
    hub = ForwardingHub(rng=random.Random(1), budget=LegBudget(max_packets_per_s=50))
    a, b = FakeLeg(0x100), FakeLeg(0x200)
    hub.pair(a, b)
    for i in range(80):  # 80 audio packets within 0.8 s
        hub.on_rtp(a, pkt(111, i, 960 * i, b"\x00" * 50), i * 0.01)
    assert len(b.rtp_sent(111)) == 50 and hub.dropped["policed_packets"] == 30
    hub.on_rtp(a, pkt(111, 80, 960 * 80, b"\x00" * 50), 1.0)  # the next second
    assert len(b.rtp_sent(111)) == 51


def test_incoming_media_over_the_bit_rate_is_dropped_and_counted() -> None:
    # 1,200-byte packets: 8 Mbit/s is 833 of them a second
    hub = ForwardingHub(rng=random.Random(1))
    a, b = FakeLeg(0x100), FakeLeg(0x200)
    hub.pair(a, b)
    for i in range(1000):
        hub.on_rtp(a, pkt(111, i, 960 * i, b"\x00" * 1188), i * 0.0009)
    assert hub.dropped["policed_bits"] == 1000 - 833
    assert len(b.rtp_sent(111)) == 833
