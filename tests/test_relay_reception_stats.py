"""ReceiveStats: RFC 3550 appendix A counters behind the relay's receiver reports."""

from __future__ import annotations

from aiortc import rtp as artp

from relay import rtcp
from relay.reception_stats import ReceiveStats


def test_no_loss_paced_stream_has_zero_loss_and_jitter() -> None:
    st = ReceiveStats(90000)
    for i in range(100):
        st.update((65500 + i) & 0xFFFF, 3000 * i, i / 30)
    b = st.report_block(7, 10.0)
    assert (b.packets_lost, b.fraction_lost, b.jitter) == (0, 0, 0)
    assert b.highest_seq == 65536 + (65500 + 99 - 65536)  # one wrap counted


def test_loss_counts_and_fraction_per_interval() -> None:
    st = ReceiveStats(90000)
    for i in range(100):
        if i % 4 != 3:  # lose every 4th packet
            st.update(i, 0, 0.0)
    b = st.report_block(1, 0.0)
    # 99 is itself lost, so 0..98 were expected: 99 packets, 75 received
    assert (b.highest_seq, b.packets_lost) == (98, 24)
    assert b.fraction_lost == (24 << 8) // 99
    for i in range(100, 200):
        st.update(i, 0, 0.0)
    b2 = st.report_block(1, 0.0)
    # now 99 counts as lost too; in this interval 1 of 101 expected was lost
    assert b2.packets_lost == 25 and b2.fraction_lost == (1 << 8) // 101


def test_duplicates_and_reordering_do_not_count_as_loss() -> None:
    st = ReceiveStats(48000)
    for s in [1, 2, 4, 3, 5, 5, 6]:
        st.update(s, 0, 0.0)
    b = st.report_block(1, 0.0)
    assert b.highest_seq == 6 and b.packets_lost <= 0


def test_jitter_grows_with_uneven_arrival() -> None:
    st = ReceiveStats(90000)
    for i in range(50):
        st.update(i, 3000 * i, i / 30 + (0.01 if i % 2 else 0.0))
    assert st.report_block(1, 0.0).jitter > 300  # ~900 ticks of alternating delay


def test_lsr_dlsr_and_aiortc_parses_the_rr() -> None:
    st = ReceiveStats(90000)
    st.update(1, 0, 0.0)
    st.on_sender_report(0x1122334455667788, arrival=5.0)
    b = st.report_block(0xABC, now=5.5)
    assert b.lsr == 0x33445566 and b.dlsr == 32768
    (rr,) = artp.RtcpPacket.parse(rtcp.build_rr(9, [b]))
    assert isinstance(rr, artp.RtcpRrPacket)
    assert (rr.reports[0].ssrc, rr.reports[0].lsr, rr.reports[0].dlsr) == (0xABC, b.lsr, 32768)
