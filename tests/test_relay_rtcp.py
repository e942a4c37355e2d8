"""relay.rtcp against aiortc's RTCP serializer/parser as the independent reference."""

from __future__ import annotations

from aiortc import rtp as artp
from hypothesis import given
from hypothesis import strategies as st

from relay import rtcp
from relay.rtcp import Bye, Fir, Nack, OtherRtcp, Pli, ReceiverReport, Remb, SenderReport

u32 = st.integers(0, 0xFFFFFFFF)


def test_parse_compound_from_aiortc() -> None:
    info = artp.RtcpReceiverInfo(
        ssrc=7,
        fraction_lost=3,
        packets_lost=-2,
        highest_sequence=70000,
        jitter=5,
        lsr=6,
        dlsr=7,
    )
    data = b"".join(
        bytes(p)
        for p in [
            artp.RtcpSrPacket(
                ssrc=1,
                sender_info=artp.RtcpSenderInfo(
                    ntp_timestamp=2**40 + 5, rtp_timestamp=9, packet_count=10, octet_count=11
                ),
                reports=[info],
            ),
            artp.RtcpRrPacket(ssrc=2, reports=[info, info]),
            artp.RtcpSdesPacket(chunks=[artp.RtcpSourceInfo(ssrc=1, items=[(1, b"cname")])]),
            artp.RtcpPsfbPacket(fmt=artp.RTCP_PSFB_PLI, ssrc=3, media_ssrc=4),
            artp.RtcpPsfbPacket(
                fmt=artp.RTCP_PSFB_APP,
                ssrc=3,
                media_ssrc=0,
                fci=artp.pack_remb_fci(1_234_567, [4, 8]),
            ),
            artp.RtcpRtpfbPacket(fmt=artp.RTCP_RTPFB_NACK, ssrc=3, media_ssrc=4, lost=[10, 12, 30]),
            artp.RtcpByePacket(sources=[1, 2]),
        ]
    )
    events, bad = rtcp.parse_rtcp(data)
    assert bad == 0
    block = rtcp.ReportBlock(7, 3, -2, 70000, 5, 6, 7)
    remb_bitrate = artp.unpack_remb_fci(artp.pack_remb_fci(1_234_567, [4, 8]))[0]
    assert events == [
        SenderReport(1, 2**40 + 5, 9, 10, 11, (block,)),
        ReceiverReport(2, (block, block)),
        OtherRtcp(rtcp.RTCP_SDES, 1),
        Pli(3, 4),
        Remb(3, remb_bitrate, (4, 8)),
        Nack(3, 4, (10, 12, 30)),
        Bye((1, 2)),
    ]


@given(u32, u32, st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40))
def test_nack_roundtrip_and_aiortc_agrees(sender: int, media: int, seqs: list[int]) -> None:
    data = rtcp.build_nack(sender, media, seqs)
    events, bad = rtcp.parse_rtcp(data)
    assert bad == 0 and len(events) == 1
    ev = events[0]
    assert isinstance(ev, Nack) and (ev.sender_ssrc, ev.media_ssrc) == (sender, media)
    assert set(ev.seqs) == set(seqs)
    (ref,) = artp.RtcpPacket.parse(data)
    assert isinstance(ref, artp.RtcpRtpfbPacket)
    assert {s & 0xFFFF for s in ref.lost} == set(seqs)  # aiortc does not wrap; we do


def test_nack_wraps() -> None:
    data = rtcp.build_nack(1, 2, [65534, 65535, 0, 1])
    assert len(data) == 16  # one FCI entry
    (ev,), _ = rtcp.parse_rtcp(data)
    assert isinstance(ev, Nack) and ev.seqs == (65534, 65535, 0, 1)


@given(u32, u32)
def test_pli_and_fir_match_aiortc(sender: int, media: int) -> None:
    (ref,) = artp.RtcpPacket.parse(rtcp.build_pli(sender, media))
    assert isinstance(ref, artp.RtcpPsfbPacket)
    assert (ref.fmt, ref.ssrc, ref.media_ssrc) == (artp.RTCP_PSFB_PLI, sender, media)
    assert bytes(ref) == rtcp.build_pli(sender, media)
    assert rtcp.parse_rtcp(rtcp.build_fir(sender, media, 3)) == ([Fir(sender, (media,))], 0)


@given(u32, st.integers(0, 10**10), st.lists(u32, max_size=5))
def test_remb_matches_aiortc(sender: int, bitrate: int, ssrcs: list[int]) -> None:
    data = rtcp.build_remb(sender, bitrate, ssrcs)
    (ref,) = artp.RtcpPacket.parse(data)
    assert isinstance(ref, artp.RtcpPsfbPacket)
    ref_bitrate, ref_ssrcs = artp.unpack_remb_fci(ref.fci)
    (ev,), bad = rtcp.parse_rtcp(data)
    assert bad == 0 and ev == Remb(sender, ref_bitrate, tuple(ref_ssrcs))
    assert ref_ssrcs == ssrcs
    assert bitrate - ref_bitrate <= bitrate >> 17  # 18-bit mantissa precision


def test_rr_and_sr_builders_match_aiortc() -> None:
    block = rtcp.ReportBlock(7, 3, 5, 70000, 5, 6, 7)
    (rr,) = artp.RtcpPacket.parse(rtcp.build_rr(9, [block]))
    assert isinstance(rr, artp.RtcpRrPacket) and rr.ssrc == 9
    assert rr.reports[0].highest_sequence == 70000 and rr.reports[0].packets_lost == 5
    (sr,) = artp.RtcpPacket.parse(rtcp.build_sr(9, 2**63, 5, 6, 7))
    assert isinstance(sr, artp.RtcpSrPacket)
    assert sr.sender_info.ntp_timestamp == 2**63 and sr.sender_info.octet_count == 7


def test_malformed_subpacket_is_counted_not_raised() -> None:
    good = rtcp.build_pli(1, 2)
    bad_fir = bytes((0x84, 206, 0, 3)) + bytes(12)  # FIR with a 4-byte FCI
    events, bad = rtcp.parse_rtcp(bad_fir + good)
    assert events == [Pli(1, 2)] and bad == 1
    events, bad = rtcp.parse_rtcp(good + b"\x81\xc9\x00\x09")  # length past the end
    assert events == [Pli(1, 2)] and bad == 1
    assert rtcp.parse_rtcp(b"\x00\x00\x00\x00") == ([], 1)


@given(st.binary(max_size=120))
def test_parser_never_raises(data: bytes) -> None:
    _events, bad = rtcp.parse_rtcp(data)
    assert bad >= 0
