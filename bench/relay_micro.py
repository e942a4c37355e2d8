"""``chatguard bench relay --micro``: the forwarding hub's cost per packet, without any I/O.

Why: a figure of the relay's own code alone, to tell its cost apart from the kernel's and
aiortc's when the per-stream CPU of a load changes. The hub is timed twice on the same packets,
with the relay's own estimate of the sender's uplink (``relay.uplink_estimate``, what the
product runs) and with it detached, so that the estimate's share of the hot path is measured
in one run rather than across runs on a noisy machine; the estimate alone is timed too.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

FRAME_PACKETS = 16
"""Packets per frame, 30 frames a second: 480 packets/s, 4.7 Mbit/s, inside a leg's budget."""


@dataclass(frozen=True, slots=True)
class MicroHub:
    """Thread CPU µs per packet, the least of ``repeats`` runs."""

    hub_us: float
    """``ForwardingHub.on_rtp`` as the product runs it (uplink estimate included)."""
    hub_without_estimate_us: float
    """The same hub and packets, the sender's uplink estimate detached."""
    estimate_us: float
    """``rtp.abs_send_time`` and ``UplinkEstimate.on_packet`` alone."""


def _arrivals(n: int) -> list[tuple[bytes, float, int]]:
    """``(packet, arrival time, abs-send-time)``: VP8 frames at 30 fps whose packets leave
    0.5 ms apart (a pacer) and arrive 10-12 ms later (a little jitter)."""
    from relay.rtp import ABS_SEND_TIME_UNITS

    jitter = random.Random(0)
    out = []
    for i in range(n):
        frame, k = divmod(i, FRAME_PACKETS)
        sent = frame / 30 + k * 0.0005
        sent_at = round(sent * ABS_SEND_TIME_UNITS) & 0xFFFFFF
        packet = (
            bytes([0x90, 97 | (0x80 if k == FRAME_PACKETS - 1 else 0)])
            + (i & 0xFFFF).to_bytes(2, "big")
            + (3000 * frame).to_bytes(4, "big")
            + (0x99).to_bytes(4, "big")
            + b"\xbe\xde\x00\x01"  # one-byte extensions, one word: abs-send-time (id 3)
            + bytes([0x32])
            + sent_at.to_bytes(3, "big")
            + (b"\x10\x00" if i % (4 * 30 * FRAME_PACKETS) == 0 else b"\x00\x01")
            + bytes(1182)
        )
        out.append((packet, sent + 0.010 + jitter.random() * 0.002, sent_at))
    return out


def micro_hub(n: int = 30_000, repeats: int = 5) -> MicroHub:
    """Time the hub with and without the uplink estimate, and the estimate alone."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

    from relay import rtp
    from relay.forwarding_hub import ForwardingHub
    from relay.legs import NegotiatedMedia
    from relay.negotiation import ABS_SEND_TIME
    from relay.uplink_estimate import UplinkEstimate

    class FakeLeg:
        def __init__(self, ssrc: int) -> None:
            vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
            ast = RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME)
            self.media = {"video": NegotiatedMedia("video", (vp8,), (ast,), ssrc)}
            self.kind_by_pt = {97: "video"}
            self.sent = 0

        def send(self, data: bytes) -> bool:
            self.sent += 1
            return True

    arrivals = _arrivals(n)

    def hub_run(estimate: bool) -> float:
        hub = ForwardingHub(rng=random.Random(0))
        a, b = FakeLeg(1), FakeLeg(2)
        hub.pair(a, b)
        if not estimate:
            hub._legs[a].uplink = None  # the one switch there is: a leg's estimator
        on_rtp = hub.on_rtp
        t0 = time.thread_time()
        for data, now, _ in arrivals:
            on_rtp(a, data, now)
        dt = time.thread_time() - t0
        assert b.sent == n, (b.sent, hub.dropped)
        assert (hub.rembs_sent.total() > 0) == estimate, hub.rembs_sent
        return dt

    def estimate_run() -> float:
        uplink = UplinkEstimate()
        read, feed = rtp.abs_send_time, uplink.on_packet
        t0 = time.thread_time()
        for data, now, _ in arrivals:
            sent_at = read(data, 3)
            if sent_at is not None:
                feed(sent_at, len(data), now)
        dt = time.thread_time() - t0
        assert uplink.bps is not None
        return dt

    runs: dict[str, list[float]] = {"with": [], "without": [], "alone": []}
    for _ in range(repeats):  # interleaved, so that the machine's load falls on all three
        runs["with"].append(hub_run(True))
        runs["without"].append(hub_run(False))
        runs["alone"].append(estimate_run())
    per_packet = {key: min(times) / n * 1e6 for key, times in runs.items()}
    return MicroHub(per_packet["with"], per_packet["without"], per_packet["alone"])
