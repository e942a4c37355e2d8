"""Properties of SequenceRewriter: continuity across switches, order kept within a source."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay import rtp
from relay.rewriter import SequenceRewriter, seq_diff

# One segment = one source: (first seq, first ts, packet count, ts step, pause before, ssrc)
segments = st.lists(
    st.tuples(
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFFFFFF),
        st.integers(1, 40),
        st.sampled_from([0, 960, 3000]),
        st.floats(0.0, 5.0),
    ),
    min_size=1,
    max_size=12,
)


@given(segments, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_in_order_input_gives_continuous_output(
    segs: list[tuple[int, int, int, int, float]], init_seq: int, init_ts: int
) -> None:
    rw = SequenceRewriter(90000, 0x1234, init_seq, init_ts)
    now = 100.0
    expected_seq = init_seq
    last_ts: int | None = None
    last_now = now
    for k, (seq0, ts0, count, step, pause) in enumerate(segs):
        now += pause
        for i in range(count):
            out = rw.translate(("src", k), (seq0 + i) & 0xFFFF, (ts0 + i * step) & 0xFFFFFFFF, now)
            assert out is not None
            assert out[0] == expected_seq
            expected_seq = (expected_seq + 1) & 0xFFFF
            if last_ts is not None:
                d = (out[1] - last_ts) & 0xFFFFFFFF
                if i == 0:
                    # a switch moves ts forward by the pause (90 kHz), at least one tick
                    assert d == max(1, int((now - last_now) * 90000))
                else:
                    assert d == step  # within a source ts deltas are untouched
            last_ts = out[1]
            last_now = now
            now += 0.001
    assert rw.epochs == len(segs)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.permutations(list(range(30))),
    st.sets(st.integers(0, 29)),
)
def test_order_and_gaps_preserved_within_a_source(
    seq0: int, ts0: int, order: list[int], lost: set[int]
) -> None:
    rw = SequenceRewriter(90000, 1, 500, 0)
    # the first packet fixes the epoch, the rest arrive reordered (within MAX_MISORDER)
    # with some lost
    first = rw.translate("a", seq0, ts0, 0.0)
    assert first is not None
    for i in order:
        if i == 0 or i in lost:
            continue
        out = rw.translate("a", (seq0 + i) & 0xFFFF, (ts0 + 3000 * i) & 0xFFFFFFFF, 0.0)
        assert out is not None
        assert seq_diff(out[0], first[0]) == i
        assert (out[1] - first[1]) & 0xFFFFFFFF == 3000 * i


def test_wraparound_of_seq_and_ts() -> None:
    rw = SequenceRewriter(90000, 1, 65530, 0xFFFFFF00)
    outs = [
        rw.translate("a", (65000 + i) & 0xFFFF, (0xFFFFF000 + 3000 * i), 0.0) for i in range(20)
    ]
    seqs = [o[0] for o in outs if o]
    assert seqs == [(65530 + i) & 0xFFFF for i in range(20)]
    tss = [o[1] for o in outs if o]
    assert tss == [(0xFFFFFF00 + 3000 * i) & 0xFFFFFFFF for i in range(20)]


def test_long_stream_keeps_accepting_after_many_wraps() -> None:
    rw = SequenceRewriter(90000, 1, 0, 0)
    for i in range(3 * 65536):
        assert rw.translate("a", i & 0xFFFF, 0, 0.0) is not None
    # a slightly reordered packet long after the epoch started is still accepted
    assert rw.translate("a", (3 * 65536 - 5) & 0xFFFF, 0, 0.0) is not None


def test_late_packets_from_before_a_switch_are_dropped() -> None:
    rw = SequenceRewriter(48000, 9, 100, 0)
    for i in range(10):
        assert rw.translate("old", 1000 + i, 960 * i, i * 0.02) is not None
    assert rw.translate("new", 7, 5000, 1.0) == (110, 960 * 9 + int((1.0 - 0.18) * 48000))
    assert rw.translate("old", 1010, 9600, 1.0) is None  # late packet of the old partner
    assert rw.translate("new", 6, 4040, 1.0) is None  # reordered from before the switch
    assert rw.translate("new", 8, 5960, 1.02) == (111, 960 * 9 + int(0.82 * 48000) + 960)
    assert rw.dropped_late == 2


def test_switch_ts_moves_at_least_one_tick() -> None:
    rw = SequenceRewriter(90000, 9, 0, 1000)
    assert rw.translate("a", 5, 77, 1.0) == (0, 1000)
    assert rw.translate("b", 9, 12345, 1.0) == (1, 1001)


def test_restart_on_same_source_reanchors() -> None:
    rw = SequenceRewriter(90000, 9, 0, 0)
    for i in range(5):
        rw.translate("a", 100 + i, 3000 * i, 0.0)
    # big forward jump: encoder restarted with the same SSRC
    assert rw.translate("a", 5000, 7, 1.0) == (5, 12000 + 90000)
    # big backward jump: dropped once, accepted when the next packet confirms it
    assert rw.translate("a", 100, 0, 1.1) is None
    out = rw.translate("a", 101, 3000, 1.1)
    assert out is not None and out[0] == 6
    assert rw.epochs == 3


def test_rewrite_packet_in_place_and_nack_translation() -> None:
    rw = SequenceRewriter(90000, 0xCAFE, 10, 0)
    buf = bytearray(b"\x80\x60" + bytes(10) + b"payload")
    rtp.rewrite_seq_ts_ssrc(buf, 300, 5000, 0x1111)
    assert rw.rewrite_packet(buf, ("peer", 0x1111), 0.0)
    assert (rtp.sequence_number(buf), rtp.timestamp(buf), rtp.ssrc(buf)) == (10, 0, 0xCAFE)
    for s in range(301, 305):
        rtp.rewrite_seq_ts_ssrc(buf, s, 5000, 0x1111)
        assert rw.rewrite_packet(buf, ("peer", 0x1111), 0.0)
    assert rw.source_seq(12) == 302
    assert rw.source_seq(9) is None  # before the epoch
    assert rw.source_seq(15) is None  # not sent yet
