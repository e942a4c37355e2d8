"""Synthetic video arrivals for the relay's uplink estimate: a sender behind a bottleneck, fed
to an estimator or to a hub through a stand-in leg, and the REMBs that leg was told."""

from __future__ import annotations

from collections.abc import Iterator

from relay import rtcp, rtp
from relay.forwarding_hub import ForwardingHub
from relay.rtp import ABS_SEND_TIME_UNITS
from tests.support.fake_legs import KEY, FakeLeg, pkt


def paced_video(
    send_bps: int, link_bps: int, seconds: float, packet: int = 1200, fps: int = 30
) -> Iterator[tuple[int, int, int]]:
    """``(arrival ms, abs-send-time, payload bytes)`` of a sender at ``send_bps`` whose packets
    queue behind a ``link_bps`` bottleneck (a frame's packets leave together)."""
    per_frame = max(1, send_bps // fps // 8 // packet)
    free_at = 0.0
    for frame in range(int(seconds * fps)):
        sent = frame / fps
        for _ in range(per_frame):
            free_at = max(free_at, sent) + packet * 8 / link_bps
            yield int(free_at * 1000), round(sent * ABS_SEND_TIME_UNITS) & 0xFFFFFF, packet


def send_video(
    hub: ForwardingHub, a: FakeLeg, send_bps: int, link_bps: int, seconds: float, start: float = 0
) -> float:
    """``a`` sends video at ``send_bps`` through a ``link_bps`` bottleneck; returns the end."""
    now = start
    for seq, (ms, sent_at, size) in enumerate(paced_video(send_bps, link_bps, seconds)):
        now = start + ms / 1000
        payload = KEY + bytes(size - len(KEY))
        hub.on_rtp(a, pkt(96, seq, seq * 3000, payload, abs_send_time=sent_at), now)
    return now


def rembs_to(leg: FakeLeg) -> list[tuple[tuple[int, ...], int]]:
    events = [ev for p in leg.sent if rtp.is_rtcp(p) for ev in rtcp.parse_rtcp(p)[0]]
    return [(ev.ssrcs, ev.bitrate) for ev in events if isinstance(ev, rtcp.Remb)]
