"""ForwardingHub glue for moderated legs, with stand-in legs and a stand-in moderator."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from relay import rtcp, rtp
from relay.forwarding_hub import ForwardingHub, ModerationMismatch
from relay.strict.block_policy import ModerationPolicy
from relay.strict.moderation import StreamSink
from tests.support.fake_legs import KEY, FakeLeg, pkt
from tests.support.paced_video import rembs_to, send_video


@dataclass
class Stream:
    sink: StreamSink
    policy: ModerationPolicy
    packets: list[bytes] = field(default_factory=list)
    blocked: bool = False
    closed: bool = False

    def on_packet(self, data: bytes, now: float) -> None:
        self.packets.append(data)

    def close(self) -> None:
        self.closed = True


class FakeModerator:
    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.codecs: list[Mapping[int, str]] = []

    def open_stream(
        self, codec_by_pt: Mapping[int, str], policy: ModerationPolicy, sink: StreamSink
    ) -> Any:
        self.codecs.append(codec_by_pt)
        self.streams.append(Stream(sink, policy))
        return self.streams[-1]


def setup(
    policy: ModerationPolicy | None = None, abs_send_time: bool = False
) -> tuple[ForwardingHub, FakeLeg, FakeLeg, Stream, list]:
    events: list[tuple[Any, str, str, float]] = []
    hub = ForwardingHub(
        rng=random.Random(1),
        clock=lambda: 0.1,
        on_moderation=lambda leg, state, label, score: events.append((leg, state, label, score)),
    )
    a, b = FakeLeg(100, abs_send_time), FakeLeg(200, abs_send_time)
    moderator = FakeModerator()
    for leg in (a, b):  # a strict call is moderated both ways
        hub.set_moderated(leg, moderator, policy or ModerationPolicy())  # type: ignore[arg-type]
    hub.pair(a, b)
    assert moderator.codecs == [{96: "vp8"}] * 2  # RTX is not depacketized
    return hub, a, b, moderator.streams[0], events


def test_moderated_video_goes_through_the_gate_only() -> None:
    hub, a, b, stream, events = setup()
    key = pkt(96, 10, 0, KEY)
    hub.on_rtp(a, key, 0.0)
    hub.on_rtp(a, pkt(97, 1, 0, b"\x00\x0a" + KEY), 0.01)
    assert stream.packets == [key] and b.rtp_sent(96) == []
    assert hub.dropped["moderated_rtx"] == 1
    # the gate releases the keyframe: it goes out rewritten like any forwarded packet
    stream.sink.release([key], restart=False, now=0.05, held_s=0.04)
    (out,) = b.rtp_sent(96)
    assert rtp.ssrc(out) == b.media["video"].out_ssrc
    first = rtp.sequence_number(out)
    # frames withheld (seq 11-13), then a keyframe: the outgoing sequence has no gap
    stream.sink.release([pkt(96, 14, 12000, KEY)], restart=True, now=0.2, held_s=0.1)
    assert [(rtp.sequence_number(p) - first) & 0xFFFF for p in b.rtp_sent(96)] == [0, 1]
    # a gate keyframe request becomes one throttled PLI to the sender, for its stream
    stream.sink.request_keyframe(0xA1, 0.3)
    stream.sink.request_keyframe(0xA1, 0.31)
    plis = [p for p in a.sent if rtp.is_rtcp(p) and p[1] == rtcp.RTCP_PSFB]
    assert len(plis) == 1 and int.from_bytes(plis[0][8:12], "big") == 0xA1
    # ... and the receiver's own request within the same half second is answered by it
    hub.on_rtcp(b, rtcp.build_pli(0xB2, b.media["video"].out_ssrc), 0.5)
    hub.on_rtcp(b, rtcp.build_pli(0xB2, b.media["video"].out_ssrc), 0.81)
    assert hub.keyframe_requests == {
        "gate_sent": 1,
        "gate_throttled": 1,
        "receiver_throttled": 1,
        "receiver_sent": 1,
    }
    assert hub.pli_sent == 2
    stream.sink.moderation_event("blocked", "FACE_FEMALE", 0.8)
    assert events == [(a, "blocked", "FACE_FEMALE", 0.8)]
    # B's video to A goes through B's own gate
    hub.on_rtp(b, pkt(96, 5, 0, KEY, ssrc=0xB1), 0.4)
    assert a.rtp_sent(96) == []


def test_a_sender_is_told_its_receivers_remb_plus_what_the_gate_withheld() -> None:
    hub, a, b, stream, _ = setup()
    first = pkt(96, 0, 0, KEY + bytes(995))
    hub.on_rtp(a, first, 0.0)
    stream.sink.release([first], restart=False, now=0.0, held_s=0.0)
    video_to_b = b.media["video"].out_ssrc
    hub.on_rtcp(b, rtcp.build_remb(0xB2, 50_000, [video_to_b]), 0.0)
    for i in range(1, 101):  # 100 frames in 1 s, the gate lets 10 through
        packet = pkt(96, i, i * 3000, KEY + bytes(995))
        hub.on_rtp(a, packet, i / 100)
        if i % 10 == 0:
            stream.sink.release([packet], restart=False, now=i / 100, held_s=0.0)
    hub.on_rtcp(b, rtcp.build_remb(0xB2, 60_000, [video_to_b]), 1.0)
    rembs = [ev for p in a.sent if rtp.is_rtcp(p) for ev in rtcp.parse_rtcp(p)[0]]
    assert [(ev.ssrcs, ev.bitrate) for ev in rembs if isinstance(ev, rtcp.Remb)] == [
        ((0xA1,), 50_000),
        ((0xA1,), 60_000 + 90 * 1012 * 8),  # 1012-byte packets, 90 of 100 withheld in 1 s
    ]


def test_the_relays_own_estimate_is_fed_before_the_gate_so_holding_is_no_congestion() -> None:
    """Every frame held (never released): the sender's uplink still reads what arrives."""
    hub, a, _, stream, _ = setup(abs_send_time=True)
    send_video(hub, a, 864_000, 10_000_000, 8.0)
    assert len(stream.packets) == 8 * 30 * 3 and a.rtp_sent(96) == []
    told = [bps for _, bps in rembs_to(a)]
    assert len(told) >= 4 and all(864_000 <= bps <= 1.5 * 880_000 + 10_000 for bps in told)


def test_audio_is_muted_only_while_blocked_and_only_if_the_policy_says_so() -> None:
    for mute in (False, True):
        hub, a, b, stream, _ = setup(ModerationPolicy(mute_audio_while_blocked=mute))
        hub.on_rtp(a, pkt(111, 1, 0, b"opus"), 0.0)
        stream.blocked = True
        hub.on_rtp(a, pkt(111, 2, 960, b"opus"), 0.02)
        stream.blocked = False
        hub.on_rtp(a, pkt(111, 3, 1920, b"opus"), 0.04)
        assert len(b.rtp_sent(111)) == (3 if not mute else 2)


def test_no_keyframe_replay_from_a_moderated_leg_and_forget_closes() -> None:
    hub = ForwardingHub(rng=random.Random(1), clock=lambda: 0.1)
    a, c = FakeLeg(100), FakeLeg(300)
    for leg, ssrc in ((a, 0xA1), (c, 0xC1)):
        hub.add_leg(leg)
        hub.on_rtp(leg, pkt(96, 1, 0, KEY, ssrc=ssrc), 0.0)
    moderator = FakeModerator()  # both moderated after their keyframes were cached
    for leg in (a, c):
        hub.set_moderated(leg, moderator, ModerationPolicy())  # type: ignore[arg-type]
    hub.pair(a, c)
    assert hub.keyframes_replayed == 0  # an unclassified keyframe is shown to no one
    assert a.rtp_sent(96) == [] and c.rtp_sent(96) == []
    hub.forget(a)
    assert moderator.streams[0].closed


def test_a_moderated_leg_is_never_linked_to_an_unmoderated_one() -> None:
    """Whatever signaling asks (a parked unmoderated leg offered for a strict call, say), the
    relay refuses the link and names the unmoderated leg; no media flows between them."""
    hub = ForwardingHub(rng=random.Random(1), clock=lambda: 0.1)
    a, b = FakeLeg(100), FakeLeg(200)
    hub.set_moderated(a, FakeModerator(), ModerationPolicy())  # type: ignore[arg-type]
    for first, second in ((a, b), (b, a)):
        with pytest.raises(ModerationMismatch) as refused:
            hub.pair(first, second)
        assert refused.value.leg is b
    hub.on_rtp(b, pkt(96, 1, 0, KEY, ssrc=0xB1), 0.2)
    assert a.rtp_sent(96) == []


def test_a_gated_streams_receiver_bounds_the_sender_only_while_it_reports_loss() -> None:
    """On a gated stream a receiver's low REMB reads the gate's holds (a browser that detects
    overuse sets its estimate to 0.85x what it got in the last second, often a hold): the
    sender is told the relay's own uplink estimate, unless the receiver reports loss."""
    hub, a, b, stream, _ = setup(abs_send_time=True)
    now = send_video(hub, a, 864_000, 10_000_000, 5.0)
    stream.sink.release(stream.packets[-1:], restart=False, now=now, held_s=0.0)
    video_to_b = b.media["video"].out_ssrc
    hub.on_rtcp(b, rtcp.build_remb(0xB2, 100_000, [video_to_b]), now)
    ssrcs, told = rembs_to(a)[-1]
    assert ssrcs == (0xA1,) and told >= 864_000 and hub.rembs_sent["own_gated"] == 1
    # b loses 10 % of the stream: its REMB bounds the sender again, for a while
    lossy = rtcp.ReportBlock(video_to_b, 26, 50, 1000, 0, 0, 0)
    hub.on_rtcp(b, rtcp.build_rr(0xB2, [lossy]), now + 0.5)
    hub.on_rtcp(b, rtcp.build_remb(0xB2, 100_000, [video_to_b]), now + 1.0)
    assert rembs_to(a)[-1] == ((0xA1,), 100_000) and hub.rembs_sent["receiver"] == 1
    # a report about another stream, or a loss-free one, does not change that
    other = rtcp.ReportBlock(0x1234, 255, 50, 1000, 0, 0, 0)
    hub.on_rtcp(b, rtcp.build_rr(0xB2, [other]), now + 6.0)
    hub.on_rtcp(b, rtcp.build_remb(0xB2, 100_000, [video_to_b]), now + 6.0)
    assert hub.rembs_sent["own_gated"] == 2
