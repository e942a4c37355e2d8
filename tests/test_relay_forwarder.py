"""StreamForwarder and negotiation tables: the decision path, without sockets."""

from __future__ import annotations

import random

import pytest
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from relay import rtp
from relay.codecs import vp8_is_keyframe_start
from relay.forwarder import ForwarderConfig, StreamForwarder
from relay.negotiation import (
    ABS_SEND_TIME,
    extension_id,
    keyframe_checks,
    map_extension_ids,
    map_payload_types,
)

AST = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"

# VP8 payloads: descriptor with S=1, PID=0, then a frame tag with P=0 (key) or P=1 (delta)
KEY = b"\x10\x00\x9d\x01\x2a"
DELTA = b"\x10\x01"
CONT = b"\x00\x00\x00"  # continuation packet (S=0)
EXTENSIONS_IN, EXTENSIONS_OUT = HeaderExtensionsMap(), HeaderExtensionsMap()
EXTENSIONS_IN.configure(
    RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(3, AST)])
)
EXTENSIONS_OUT.configure(
    RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(2, AST)])
)


def pkt(seq: int, ts: int, payload: bytes, pt: int = 97, ssrc: int = 0xAAAA) -> bytearray:
    return bytearray(
        RtpPacket(
            payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload
        ).serialize()
    )


def video_forwarder(
    ext_id_map: list[int] | None = None, abs_send_time_id: int = 0
) -> StreamForwarder:
    cfg = ForwarderConfig(
        kind="video",
        clock_rate=90000,
        pt_map={97: 120},
        out_ssrc=0xBBBB,
        keyframe_checks={97: vp8_is_keyframe_start},
        ext_id_map=ext_id_map or [0] * 256,
        abs_send_time_id=abs_send_time_id,
    )
    f = StreamForwarder(cfg, random.Random(1))
    f.set_source(1)
    return f


def test_gates_video_until_keyframe_then_rewrites() -> None:
    f = video_forwarder()
    assert f.waiting_for_keyframe
    assert not f.on_rtp(pkt(10, 0, DELTA), 0.0)
    assert f.keyframe_needed(0.0)  # first gated packet asks for a PLI
    assert not f.on_rtp(pkt(11, 0, CONT), 0.01)
    assert not f.keyframe_needed(0.01)  # throttled
    b = pkt(12, 3000, KEY)
    assert f.on_rtp(b, 0.033)
    assert not f.waiting_for_keyframe
    assert (rtp.payload_type(b), rtp.ssrc(b)) == (120, 0xBBBB)
    first = rtp.sequence_number(b)
    c = pkt(13, 3000, CONT)
    assert f.on_rtp(c, 0.034)
    assert rtp.sequence_number(c) == (first + 1) & 0xFFFF
    assert f.dropped["awaiting_keyframe"] == 2
    assert f.source_ssrc == 0xAAAA


def test_partner_switch_is_continuous_and_regated() -> None:
    f = video_forwarder()
    outs = []
    for i in range(3):
        b = pkt(100 + i, 3000 * i, KEY if i == 0 else DELTA)
        assert f.on_rtp(b, i / 30)
        outs.append(rtp.sequence_number(b))
    f.set_source(2)
    assert not f.on_rtp(pkt(5000, 7, DELTA, ssrc=0xCCCC), 0.2)  # new partner: wait for key
    assert not f.on_rtp(pkt(102, 6000, DELTA), 0.2)  # late packet of the old partner
    b = pkt(5001, 3007, KEY, ssrc=0xCCCC)
    assert f.on_rtp(b, 0.3)
    assert rtp.sequence_number(b) == (outs[-1] + 1) & 0xFFFF
    assert f.rewriter.epochs == 2


def test_unmapped_pt_and_malformed_are_counted() -> None:
    f = video_forwarder()
    assert not f.on_rtp(pkt(1, 0, KEY, pt=98), 0.0)  # e.g. RTX, not mapped
    assert not f.on_rtp(bytearray(b"\x80\x61\x00"), 0.0)
    assert f.dropped == {"unmapped_pt": 1, "too_short": 1}


def test_nack_answered_from_ring() -> None:
    f = video_forwarder()
    sent = []
    for i in range(5):
        b = pkt(200 + i, 0, KEY if i == 0 else CONT)
        assert f.on_rtp(b, 0.0)
        sent.append(bytes(b))
    seqs = [rtp.sequence_number(s) for s in sent]
    assert [bytes(p) for p in f.on_nack([seqs[1], seqs[3], (seqs[4] + 1) & 0xFFFF], 1.0)] == [
        sent[1],
        sent[3],
    ]


def test_audio_is_never_gated() -> None:
    cfg = ForwarderConfig(kind="audio", clock_rate=48000, pt_map={111: 109}, out_ssrc=5)
    f = StreamForwarder(cfg)
    f.set_source("p")
    assert f.on_rtp(pkt(1, 0, b"\x78\x01", pt=111), 0.0)


def codec(mime: str, pt: int, clock: int = 90000, **params: object) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=mime, clockRate=clock, payloadType=pt, parameters=dict(params)
    )


def test_payload_types_mapped_by_codec() -> None:
    a = [
        codec("video/VP8", 96),
        codec("video/rtx", 97, apt=96),
        codec("video/H264", 102, **{"packetization-mode": 1, "profile-level-id": "42e01f"}),
        codec("video/H264", 104, **{"packetization-mode": 0, "profile-level-id": "42e01f"}),
    ]
    b = [
        codec("video/H264", 125, **{"packetization-mode": 1, "profile-level-id": "42001f"}),
        codec("video/VP8", 120),
        codec("video/rtx", 121, apt=120),
    ]
    assert map_payload_types(a, b) == {96: 120, 102: 125}
    checks = keyframe_checks(a)
    assert set(checks) == {96, 102, 104}


def test_extension_ids_mapped_by_uri_and_mid_erased() -> None:
    a = [
        RTCRtpHeaderExtensionParameters(id=1, uri=MID),
        RTCRtpHeaderExtensionParameters(id=3, uri=AST),
    ]
    b = [
        RTCRtpHeaderExtensionParameters(id=4, uri=MID),
        RTCRtpHeaderExtensionParameters(id=2, uri=AST),
    ]
    table = map_extension_ids(a, b)
    assert table[3] == 2 and table[1] == 0 and sum(1 for x in table if x) == 1
    assert (extension_id(b, ABS_SEND_TIME), extension_id(b[:1], ABS_SEND_TIME)) == (2, 0)


def stamped(seq: int, payload: bytes, sent_at: float) -> bytearray:
    """A packet with the sender's abs-send-time as incoming id 3 (the receiving leg's: 2)."""
    p = RtpPacket(payload_type=97, sequence_number=seq, timestamp=seq * 3000, ssrc=0xAAAA)
    p.payload = payload
    p.extensions.abs_send_time = int(sent_at * (1 << 18)) & 0xFFFFFF
    return bytearray(p.serialize(EXTENSIONS_IN))


def test_abs_send_time_is_moved_by_what_the_relay_held() -> None:
    """A frame held 0.3 s for its verdict, or a packet resent 2 s after it went out, must not
    look that late to the receiver's estimator; a packet forwarded at once is not touched."""
    ids = [0] * 256
    ids[3] = 2
    f = video_forwarder(ids, abs_send_time_id=2)

    def send_time(packet: bytearray) -> float:
        value = RtpPacket.parse(bytes(packet), EXTENSIONS_OUT).extensions.abs_send_time
        assert value is not None
        return float(value) / (1 << 18)

    held = stamped(10, KEY, sent_at=5.0)
    assert f.on_rtp(held, 7.25, held_s=0.3)
    assert send_time(held) == pytest.approx(5.3, abs=1e-5)
    live = stamped(11, DELTA, sent_at=5.5)
    assert f.on_rtp(live, 7.5)
    assert send_time(live) == 5.5
    (again,) = f.on_nack([rtp.sequence_number(held)], 9.25)
    assert send_time(again) == pytest.approx(7.3, abs=1e-5)  # 2 s after it went out
    assert send_time(held) == pytest.approx(
        5.3, abs=1e-5
    )  # the copy kept for the next NACK is unchanged


def test_upstream_nack_translates_what_the_relay_never_got() -> None:
    f = video_forwarder()
    out = []
    for i in range(6):
        if i == 3:
            continue  # lost between sender and relay
        b = pkt(1000 + i, 3000 * i, KEY if i == 0 else DELTA)
        assert f.on_rtp(b, 0.0)
        out.append(rtp.sequence_number(b))
    first = out[0]
    missing = (first + 3) & 0xFFFF
    assert f.on_nack([missing], 0.0) == []
    assert f.upstream_nack([out[1], missing]) == [1003]
    assert f.upstream_nack([(first - 5) & 0xFFFF]) == []  # before this source's epoch


def test_rtx_payload_types() -> None:
    from relay.negotiation import rtx_payload_types

    assert rtx_payload_types([codec("video/VP8", 96), codec("video/rtx", 97, apt=96)]) == {97: 96}


def test_withheld_frames_leave_no_sequence_gap() -> None:
    """Moderation withheld source seqs 12-15: the receiver sees one continuous stream that
    restarts at a keyframe (no NACKs for packets that will never come)."""
    f = video_forwarder()
    out = []
    for seq, ts, payload in ((10, 0, KEY), (11, 3000, DELTA)):
        b = pkt(seq, ts, payload)
        assert f.on_rtp(b, ts / 90000)
        out.append(rtp.sequence_number(b))
    f.skip_withheld()
    assert f.waiting_for_keyframe
    assert not f.on_rtp(pkt(16, 18000, DELTA), 0.2)  # only a keyframe may follow
    b = pkt(17, 21000, KEY)
    assert f.on_rtp(b, 0.233)
    out.append(rtp.sequence_number(b))
    assert [(s - out[0]) & 0xFFFF for s in out] == [0, 1, 2]
    assert f.rewriter.epochs == 2
