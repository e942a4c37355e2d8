"""``chatguard bench relay --micro``: the forwarding hub's cost per packet, without any I/O.

Why: a figure of the relay's own code alone, to tell its cost apart from the kernel's and
aiortc's when the per-stream CPU of a load changes.
"""

from __future__ import annotations

import random
import time


def micro_hub_us(n: int = 30_000) -> float:
    """µs per packet for ``ForwardingHub.on_rtp`` (stats, keyframe cache, forwarder, copy)."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from relay.forwarding_hub import ForwardingHub
    from relay.legs import NegotiatedMedia

    class FakeLeg:
        def __init__(self, ssrc: int) -> None:
            vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
            self.media = {"video": NegotiatedMedia("video", (vp8,), (), ssrc)}
            self.kind_by_pt = {97: "video"}
            self.sent = 0

        def send(self, data: bytes) -> bool:
            self.sent += 1
            return True

    hub = ForwardingHub(rng=random.Random(0))
    a, b = FakeLeg(1), FakeLeg(2)
    hub.pair(a, b)
    packets = [
        bytes([0x80, 97 | (0x80 if i % 4 == 3 else 0)])
        + (i & 0xFFFF).to_bytes(2, "big")
        + (3000 * (i // 4)).to_bytes(4, "big")
        + (0x99).to_bytes(4, "big")
        + (b"\x10\x00" if i % 120 == 0 else b"\x00\x01")
        + bytes(1198)
        for i in range(n)
    ]
    on_rtp = hub.on_rtp
    t0 = time.perf_counter()
    for i, data in enumerate(packets):
        on_rtp(a, data, i * 0.002)  # 500 packets/s, 4.8 Mbit/s: inside a leg's budget
    dt = time.perf_counter() - t0
    assert b.sent == n, (b.sent, hub.dropped)
    return dt / n * 1e6
