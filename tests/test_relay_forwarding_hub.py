"""Stateful property test of the forwarding hub's per-leg books, with stand-in legs.

Legs come and go, pair, re-pair ("Next"), unpair and send audio, keyframes and deltas in any
order; an independent model says who may receive what. Checked after every step: each packet
reaches its sender's current partner and nobody else, video only from a keyframe on after each
pairing, every receiver's outgoing numbering stays continuous across partner changes, and the
hub's records agree with the model (no leg forgotten half-way, partners always mutual)."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from relay import rtp
from relay.forwarding_hub import ForwardingHub
from tests.support.fake_legs import DELTA, KEY, FakeLeg, pkt

PT = {"audio": 111, "key": 96, "delta": 96}


class HubMachine(RuleBasedStateMachine):
    legs = Bundle("legs")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.hub = ForwardingHub(
            rng=random.Random(0), replay_keyframe_max_age=None, clock=lambda: self.now
        )
        self.all: list[FakeLeg] = []
        self.live: set[FakeLeg] = set()
        self.partner: dict[FakeLeg, FakeLeg] = {}
        self.video_gated: set[FakeLeg] = set()
        """Receivers whose video waits for a keyframe from their current partner."""
        self.seq: Counter[tuple[FakeLeg, int]] = Counter()
        self.last_out: dict[tuple[FakeLeg, int], int] = {}

    @rule(target=legs)
    def connect(self) -> FakeLeg:
        leg = FakeLeg(0x1000 * (len(self.all) + 1))
        self.hub.add_leg(leg)
        self.all.append(leg)
        self.live.add(leg)
        return leg

    def _part(self, leg: FakeLeg) -> None:
        other = self.partner.pop(leg, None)
        if other is not None:
            del self.partner[other]

    @rule(a=legs, b=legs)
    def pair(self, a: FakeLeg, b: FakeLeg) -> None:
        assume(a is not b and a in self.live and b in self.live)
        self.hub.pair(a, b)
        self._part(a)
        self._part(b)
        self.partner[a], self.partner[b] = b, a
        self.video_gated |= {a, b}

    @rule(a=legs)
    def unpair(self, a: FakeLeg) -> None:
        self.hub.unpair(a)
        self._part(a)

    @rule(a=legs)
    def close(self, a: FakeLeg) -> None:
        self.hub.forget(a)
        self._part(a)
        self.live.discard(a)

    @rule(a=legs, what=st.sampled_from(["audio", "key", "delta"]), dt=st.sampled_from([0.02, 0.4]))
    def send(self, a: FakeLeg, what: str, dt: float) -> None:
        assume(a in self.live)
        self.now += dt
        pt = PT[what]
        self.seq[a, pt] += 1
        seq = self.seq[a, pt]
        ssrc = (0x1000 * (self.all.index(a) + 1) + pt) & 0xFFFFFFFF
        before = [len(leg.sent) for leg in self.all]
        payload = b"opus" if what == "audio" else KEY if what == "key" else DELTA
        self.hub.on_rtp(a, pkt(pt, seq, seq * 960, payload, ssrc), self.now)
        new = [(leg, p) for leg, n in zip(self.all, before, strict=True) for p in leg.sent[n:]]
        got = [(leg, p) for leg, p in new if not rtp.is_rtcp(p)]
        assert all(leg is a for leg, p in new if rtp.is_rtcp(p))  # only PLIs, to the sender
        dst = self.partner.get(a)
        if dst is not None and what == "key":
            self.video_gated.discard(dst)
        delivered = dst is not None and (what == "audio" or dst not in self.video_gated)
        assert [leg for leg, _ in got] == ([dst] if delivered else [])
        for leg, p in got:
            kind = "audio" if what == "audio" else "video"
            assert rtp.ssrc(p) == leg.media[kind].out_ssrc
            last = self.last_out.get((leg, pt))
            if last is not None:  # one numbering per receiver, whoever its partner
                assert rtp.sequence_number(p) == (last + 1) & 0xFFFF
            self.last_out[leg, pt] = rtp.sequence_number(p)

    @invariant()
    def books_match(self) -> None:
        records = self.hub._legs  # white-box: the hub's own books
        assert set(records) == self.live
        for leg, rec in records.items():
            assert rec.leg is leg
            partner = None if rec.partner is None else rec.partner.leg
            assert partner is self.partner.get(leg)
            assert rec.partner is None or rec.partner.partner is rec


TestHubProperties = HubMachine.TestCase
TestHubProperties.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
