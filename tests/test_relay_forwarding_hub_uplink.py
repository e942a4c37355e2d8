"""The forwarding hub tells each sender the lower of its own uplink estimate and what the
receiver takes, and its own estimate alone when the receiver sends no REMB (stand-in legs)."""

from __future__ import annotations

import random

from relay import rtcp
from relay.forwarding_hub import ForwardingHub
from tests.support.fake_legs import FakeLeg
from tests.support.paced_video import rembs_to, send_video


def call(abs_send_time: bool = True) -> tuple[ForwardingHub, FakeLeg, FakeLeg]:
    hub = ForwardingHub(rng=random.Random(0), replay_keyframe_max_age=None)
    a, b = FakeLeg(0xA000, abs_send_time), FakeLeg(0xB000, abs_send_time)
    hub.pair(a, b)
    return hub, a, b


def test_without_a_receivers_remb_the_sender_hears_the_relays_own_estimate_each_second() -> None:
    hub, a, _ = call()
    send_video(hub, a, 864_000, 10_000_000, 10.0)  # 3 packets of 1200 bytes a frame
    rembs = rembs_to(a)
    assert 5 <= len(rembs) <= 8  # once a second from the first estimate (about 3 s in)
    assert {ssrcs for ssrcs, _ in rembs} == {(0xA1,)}  # its video, not its RTX
    assert all(864_000 <= bps <= 1.5 * 880_000 + 10_000 for _, bps in rembs)
    assert hub.rembs_sent == {"own_alone": len(rembs)}


def test_a_receivers_huge_remb_is_bounded_by_the_senders_uplink() -> None:
    hub, a, b = call()
    end = send_video(hub, a, 1_200_000, 400_000, 12.0)  # the uplink carries 400 kbit/s
    hub.on_rtcp(b, rtcp.build_remb(0xB002, 50_000_000, [b.media["video"].out_ssrc]), end)
    told = rembs_to(a)[-1][1]
    assert told < 400_000
    assert hub.rembs_sent["own"] >= 1


def test_a_receiver_that_takes_less_than_the_uplink_bounds_the_sender() -> None:
    hub, a, b = call()
    end = send_video(hub, a, 864_000, 10_000_000, 5.0)
    hub.on_rtcp(b, rtcp.build_remb(0xB002, 300_000, [b.media["video"].out_ssrc]), end)
    assert rembs_to(a)[-1] == ((0xA1,), 300_000)
    assert hub.rembs_sent["receiver"] == 1


def test_no_abs_send_time_no_estimate_the_receivers_remb_as_before() -> None:
    hub, a, b = call(abs_send_time=False)
    end = send_video(hub, a, 864_000, 10_000_000, 5.0)
    assert rembs_to(a) == []
    hub.on_rtcp(b, rtcp.build_remb(0xB002, 5_000_000, [b.media["video"].out_ssrc]), end)
    assert rembs_to(a) == [((0xA1,), 5_000_000)]
