"""Keyframe request throttle and last-keyframe cache."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from relay.keyframes import KeyframeCache, KeyframeRequestThrottle


def test_default_interval_bounds_keyframes_to_a_fifteenth_of_30_fps() -> None:
    t = KeyframeRequestThrottle()
    assert sum(t.should_forward(i / 30) for i in range(300)) == 20  # 10 s: one per 0.5 s


def test_throttle_one_per_interval() -> None:
    t = KeyframeRequestThrottle(0.3)
    times = [0.0, 0.1, 0.29, 0.3, 0.31, 0.59, 0.61, 5.0]
    assert [t.should_forward(x) for x in times] == [
        True,
        False,
        False,
        True,
        False,
        False,
        True,
        True,
    ]
    assert (t.forwarded, t.suppressed) == (4, 4)


def test_throttle_reopens_after_keyframe() -> None:
    t = KeyframeRequestThrottle(0.3)
    assert t.should_forward(0.0)
    t.on_keyframe(0.05)
    assert t.should_forward(0.1)


def pkt(seq: int, ts: int, marker: bool = False, size: int = 100) -> bytes:
    return RtpPacket(
        payload_type=96,
        sequence_number=seq & 0xFFFF,
        timestamp=ts,
        ssrc=5,
        marker=int(marker),
        payload=bytes(size),
    ).serialize()


def feed_frame(c: KeyframeCache, seq0: int, ts: int, n: int, key: bool) -> list[bytes]:
    ps = [pkt(seq0 + i, ts, i == n - 1) for i in range(n)]
    for i, p in enumerate(ps):
        c.on_packet(p, key and i == 0)
    return ps


def test_cache_keeps_last_complete_keyframe_only() -> None:
    c = KeyframeCache()
    assert c.packets() == [] and c.timestamp is None
    k1 = feed_frame(c, 65534, 1000, 4, key=True)  # wraps seq
    assert c.packets() == k1 and c.timestamp == 1000
    feed_frame(c, 2, 4000, 2, key=False)
    assert c.packets() == k1  # deltas do not disturb it
    k2 = feed_frame(c, 4, 7000, 3, key=True)
    assert c.packets() == k2 and c.timestamp == 7000


def test_cache_reordered_keyframe_completes() -> None:
    c = KeyframeCache()
    ps = [pkt(10 + i, 90, i == 3) for i in range(4)]
    c.on_packet(ps[0], True)
    c.on_packet(ps[2], False)
    c.on_packet(ps[3], False)
    assert c.packets() == []  # seq 11 missing
    c.on_packet(ps[1], False)
    assert c.packets() == ps


def test_cache_drops_incomplete_keyframe_when_next_frame_starts() -> None:
    c = KeyframeCache()
    old = feed_frame(c, 0, 0, 2, key=True)
    c.on_packet(pkt(2, 3000), True)  # keyframe start, then its packets are lost
    c.on_packet(pkt(5, 6000, True), False)  # next frame
    c.on_packet(pkt(4, 3000, True), False)  # late packet of the dead keyframe
    assert c.packets() == old


def test_cache_is_bounded() -> None:
    c = KeyframeCache(max_bytes=1000)
    feed_frame(c, 0, 0, 20, key=True)  # ~2.2 kB keyframe
    assert c.packets() == [] and c.nbytes == 0
    small = feed_frame(c, 20, 3000, 3, key=True)
    assert c.packets() == small and c.nbytes <= 1000
    c.clear()
    assert c.packets() == []


def test_cache_max_age() -> None:
    c = KeyframeCache()
    ps = [pkt(1, 0, True)]
    c.on_packet(ps[0], True, now=10.0)
    assert c.packets(now=12.0, max_age=3.0) == ps
    assert c.packets(now=13.5, max_age=3.0) == []
    assert c.packets() == ps


def test_cache_with_real_encoder_output() -> None:
    """Multi-packet keyframes from aiortc's VP8 and H.264 packetizers are cached whole."""
    from relay.codecs import h264_is_keyframe_start, vp8_is_keyframe_start
    from tests.support.codec_params import H264, VP8
    from tests.support.encoded_frames import encode

    for codec, check in ((VP8, vp8_is_keyframe_start), (H264, h264_is_keyframe_start)):
        frames = encode(codec, [True, False, True, False])
        cache = KeyframeCache()
        seq = 60000
        wire: list[list[bytes]] = []
        for n, payloads in enumerate(frames):
            pkts = []
            for i, payload in enumerate(payloads):
                p = RtpPacket(
                    payload_type=96,
                    sequence_number=seq & 0xFFFF,
                    timestamp=3000 * n,
                    ssrc=1,
                    marker=int(i == len(payloads) - 1),
                    payload=payload,
                ).serialize()
                seq += 1
                cache.on_packet(p, check(p, 12, len(p)), now=n / 30)
                pkts.append(p)
            wire.append(pkts)
            if n in (0, 2):
                assert cache.packets() == pkts, codec.mimeType
            else:
                assert cache.packets() == wire[n - 1]  # deltas leave the keyframe in place
