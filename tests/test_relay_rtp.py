"""relay.rtp against aiortc's own RTP serializer/parser as the independent reference."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from relay import rtp
from relay.rtp import DropReason

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
AST_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def ext_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in ids.items()]
        )
    )
    return m


MAP = ext_map({MID_URI: 1, AST_URI: 3, TWCC_URI: 5})


def make_packet(
    pt: int = 96,
    seq: int = 1000,
    ts: int = 123456,
    ssrc: int = 0xDEADBEEF,
    payload: bytes = b"\x10\x00payload",
    marker: int = 1,
    csrc: tuple[int, ...] = (),
    mid: str | None = "0",
    abs_send_time: int | None = 0x123456,
    padding: int = 0,
) -> bytes:
    p = RtpPacket(
        payload_type=pt,
        marker=marker,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=payload,
    )
    p.csrc = list(csrc)
    p.extensions.mid = mid
    p.extensions.abs_send_time = abs_send_time
    p.padding_size = padding
    return p.serialize(MAP)


# RFC 5761: payload types 64-95 collide with RTCP packet types when muxed, so never used.
pts = st.integers(0, 127).filter(lambda p: not 64 <= p <= 95)

packets = st.builds(
    make_packet,
    pt=pts,
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(min_size=0, max_size=64),
    marker=st.integers(0, 1),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    mid=st.one_of(st.none(), st.text("abc0123", min_size=1, max_size=8)),
    abs_send_time=st.one_of(st.none(), st.integers(0, 0xFFFFFF)),
    padding=st.integers(0, 255),
)


@given(packets)
def test_fields_match_aiortc_parser(data: bytes) -> None:
    ref = RtpPacket.parse(data, MAP)
    off = rtp.check_rtp(data)
    assert isinstance(off, int)
    assert rtp.version(data) == 2
    assert rtp.payload_type(data) == ref.payload_type
    assert rtp.marker(data) == bool(ref.marker)
    assert rtp.sequence_number(data) == ref.sequence_number
    assert rtp.timestamp(data) == ref.timestamp
    assert rtp.ssrc(data) == ref.ssrc
    assert rtp.csrc_count(data) == len(ref.csrc)
    assert rtp.csrcs(data) == ref.csrc
    assert rtp.has_padding(data) == (ref.padding_size > 0)
    assert rtp.payload_offset(data) == off
    assert data[off : rtp.payload_end(data)] == ref.payload
    # memoryview and bytearray give the same answers (datagrams arrive in either)
    assert rtp.check_rtp(memoryview(data)) == off
    assert rtp.check_rtp(bytearray(data)) == off


@given(
    packets,
    pts,
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
)
def test_rewrite_in_place_matches_aiortc(
    data: bytes, pt: int, seq: int, ts: int, ssrc: int
) -> None:
    ref = RtpPacket.parse(data, MAP)
    buf = bytearray(data)
    rtp.rewrite_header(buf, pt, seq, ts, ssrc)
    ref.payload_type, ref.sequence_number, ref.timestamp, ref.ssrc = pt, seq, ts, ssrc
    # aiortc fills padding with random bytes, so compare the fixed header and the rest apart
    assert bytes(buf[:12]) == ref.serialize(MAP)[:12]
    assert buf[12:] == data[12:]
    again = RtpPacket.parse(bytes(buf), MAP)
    assert (again.payload_type, again.sequence_number, again.timestamp, again.ssrc) == (
        pt,
        seq,
        ts,
        ssrc,
    )
    assert again.payload == ref.payload and again.marker == ref.marker

    buf2 = bytearray(data)
    rtp.set_payload_type(buf2, pt)
    rtp.set_sequence_number(buf2, seq)
    rtp.set_timestamp(buf2, ts)
    rtp.set_ssrc(buf2, ssrc)
    assert buf2 == buf

    buf3 = bytearray(data)
    rtp.rewrite_seq_ts_ssrc(buf3, seq, ts, ssrc)
    rtp.set_payload_type(buf3, pt)
    assert buf3 == buf


def test_extensions_listed() -> None:
    data = make_packet(mid="abc", abs_send_time=0x010203)
    assert rtp.extensions(data) == [(1, b"abc"), (3, b"\x01\x02\x03")]
    assert rtp.has_extension(data)
    assert not rtp.has_extension(make_packet(mid=None, abs_send_time=None))


def test_map_extension_ids_renumbers_and_erases() -> None:
    data = make_packet(mid="abc", abs_send_time=0x010203)
    buf = bytearray(data)
    id_map = [0] * 256
    id_map[1] = 9  # mid keeps its value under the receiving leg's id
    assert rtp.map_extension_ids(buf, id_map)
    out = RtpPacket.parse(bytes(buf), ext_map({MID_URI: 9, AST_URI: 3}))
    assert out.extensions.mid == "abc"
    assert out.extensions.abs_send_time is None  # erased to padding
    assert len(buf) == len(data)
    assert out.payload == RtpPacket.parse(data, MAP).payload


def test_map_extension_ids_two_byte() -> None:
    p = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"xyz")
    p.extensions.mid = "m" * 20  # > 16 bytes forces the two-byte form
    p.extensions.abs_send_time = 7
    m = ext_map({MID_URI: 20, AST_URI: 3})
    data = p.serialize(m)
    assert struct.unpack_from("!H", data, 12)[0] == 0x1000
    buf = bytearray(data)
    id_map = [0] * 256
    id_map[20] = 30
    assert rtp.map_extension_ids(buf, id_map)
    out = RtpPacket.parse(bytes(buf), ext_map({MID_URI: 30, AST_URI: 3}))
    assert out.extensions.mid == "m" * 20
    assert out.extensions.abs_send_time is None


def test_delay_abs_send_time_moves_the_send_time_in_6_18_fixed_point() -> None:
    buf = bytearray(make_packet(mid="abc", abs_send_time=0xFFFFFF - (1 << 17)))
    assert rtp.delay_abs_send_time(buf, 3, 1.5)  # wraps at 64 s
    assert RtpPacket.parse(bytes(buf), MAP).extensions.abs_send_time == (1 << 18) - 1
    assert RtpPacket.parse(bytes(buf), MAP).extensions.mid == "abc"


def test_delay_abs_send_time_two_byte_form() -> None:
    p = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"xyz")
    p.extensions.mid = "m" * 20
    p.extensions.abs_send_time = 7
    m = ext_map({MID_URI: 20, AST_URI: 3})
    buf = bytearray(p.serialize(m))
    assert rtp.delay_abs_send_time(buf, 3, 2.0)
    out = RtpPacket.parse(bytes(buf), m)
    assert (out.extensions.abs_send_time, out.extensions.mid) == ((2 << 18) + 7, "m" * 20)


def test_delay_abs_send_time_adds_nothing_where_there_is_no_such_element() -> None:
    for data in (make_packet(abs_send_time=None), make_packet(mid=None, abs_send_time=None)):
        buf = bytearray(data)
        assert not rtp.delay_abs_send_time(buf, 3, 1.0)
        assert bytes(buf) == data
    buf = bytearray(make_packet(mid="ab"))
    assert not rtp.delay_abs_send_time(buf, 1, 1.0)  # not 3 bytes long: not abs-send-time
    assert RtpPacket.parse(bytes(buf), MAP).extensions.mid == "ab"


@given(packets)
def test_abs_send_time_reads_what_aiortc_wrote(data: bytes) -> None:
    assert rtp.abs_send_time(data, 3) == RtpPacket.parse(data, MAP).extensions.abs_send_time


def test_abs_send_time_two_byte_form_and_elements_of_another_length() -> None:
    p = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"xyz")
    p.extensions.mid = "m" * 20
    p.extensions.abs_send_time = 0xABCDEF
    assert rtp.abs_send_time(p.serialize(ext_map({MID_URI: 20, AST_URI: 3})), 3) == 0xABCDEF
    assert rtp.abs_send_time(make_packet(mid="ab"), 1) is None  # 2 bytes: not abs-send-time


@given(st.binary(max_size=40))
def test_abs_send_time_never_raises(tail: bytes) -> None:
    for head in (b"\x90\x60" + bytes(10) + b"\xbe\xde", b"\x90\x60" + bytes(10) + b"\x10\x00"):
        value = rtp.abs_send_time(head + tail, 3)
        assert value is None or 0 <= value <= 0xFFFFFF


def test_map_extension_ids_rejects_truncated() -> None:
    buf = bytearray(make_packet(mid="abcd", abs_send_time=None))
    buf[16] = 0x1F  # id 1, length 16: runs past the 8-byte block
    assert not rtp.map_extension_ids(buf, [1] * 256)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", DropReason.TOO_SHORT),
        (b"\x80\x60" + bytes(9), DropReason.TOO_SHORT),
        (b"\x40\x60" + bytes(10), DropReason.BAD_VERSION),
        (b"\x80\xc8" + bytes(10), DropReason.NOT_RTP),  # SR
        (b"\x82\x60" + bytes(10) + bytes(4), DropReason.TRUNCATED_CSRC),
        (b"\x90\x60" + bytes(10) + b"\xbe\xde", DropReason.TRUNCATED_EXTENSION),
        (b"\x90\x60" + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4), DropReason.TRUNCATED_EXTENSION),
        (b"\xa0\x60" + bytes(10) + b"ab\x00", DropReason.BAD_PADDING),
        (b"\xa0\x60" + bytes(10) + b"ab\x04", DropReason.BAD_PADDING),
    ],
)
def test_malformed_packets_give_reasons(data: bytes, reason: DropReason) -> None:
    assert rtp.check_rtp(data) is reason


@given(st.binary(max_size=80))
def test_check_never_raises_and_agrees_with_aiortc(data: bytes) -> None:
    result = rtp.check_rtp(data)
    if isinstance(result, int):
        ref = RtpPacket.parse(data)  # aiortc accepts everything we accept
        assert data[result : rtp.payload_end(data)] == ref.payload
    elif result is not DropReason.NOT_RTP:
        with pytest.raises(ValueError):
            RtpPacket.parse(data)


def test_is_rtcp_demux() -> None:
    assert rtp.is_rtcp(b"\x80\xc9\x00\x01")
    assert not rtp.is_rtcp(make_packet())


@given(packets, st.integers(0, 0xFFFF), pts, st.integers(0, 0xFFFFFFFF))
def test_unwrap_rtx_inverts_aiortc_wrap_rtx(
    data: bytes, rtx_seq: int, rtx_pt: int, rtx_ssrc: int
) -> None:
    from aiortc.rtp import wrap_rtx

    original = RtpPacket.parse(data, MAP)
    original.padding_size = 0
    rtx = wrap_rtx(original, payload_type=rtx_pt, sequence_number=rtx_seq, ssrc=rtx_ssrc)
    out = rtp.unwrap_rtx(rtx.serialize(MAP), original.payload_type, original.ssrc)
    assert isinstance(out, bytearray)
    assert bytes(out) == original.serialize(MAP)


def test_unwrap_rtx_rejects_padding_only_probe() -> None:
    probe = RtpPacket(payload_type=97, sequence_number=1, timestamp=2, ssrc=3, payload=b"")
    probe.padding_size = 200
    assert rtp.unwrap_rtx(probe.serialize(), 96, 5) is DropReason.TOO_SHORT
