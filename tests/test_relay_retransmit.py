"""NACK ring buffer: returns exactly what was stored, nothing stale after wrap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay import rtp
from relay.retransmit import RetransmitBuffer


def pkt(seq: int, size: int = 40) -> bytes:
    b = bytearray(b"\x80\x60" + bytes(10) + bytes([seq & 0xFF]) * size)
    rtp.set_sequence_number(b, seq)
    return bytes(b)


def test_get_returns_stored_packet() -> None:
    r = RetransmitBuffer(slots=8)
    for s in range(65530, 65536):
        assert r.store(pkt(s, s % 50))
    for s in range(0, 3):
        assert r.store(pkt(s), now=10.0 + s)
    for s in [*list(range(65531, 65536)), 0, 1, 2]:
        got = r.get(s)
        assert got is not None and bytes(got) == pkt(s, s % 50 if s > 100 else 40)
    assert r.get(65530) is None  # overwritten by seq 2 (same slot)
    assert r.get(3) is None  # never sent
    answered = [(rtp.sequence_number(p), sent) for p, sent in r.answer([65535, 0, 3, 7, 2])]
    assert answered == [(65535, 0.0), (0, 10.0), (2, 12.0)]  # with when each was sent


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=300), st.sampled_from([4, 16, 64]))
def test_ring_never_returns_stale(seqs: list[int], slots: int) -> None:
    r = RetransmitBuffer(slots=slots)
    latest: dict[int, int] = {}  # slot -> seq last written there
    for s in seqs:
        r.store(pkt(s, 10 + s % 7))
        latest[s % slots] = s
    for s in range(0, 0x10000, 97):
        got = r.get(s)
        if latest.get(s % slots) == s:
            assert got is not None and bytes(got) == pkt(s, 10 + s % 7)
        else:
            assert got is None


def test_rejects_oversize_and_bad_slots() -> None:
    r = RetransmitBuffer(slots=4, max_packet=100)
    assert not r.store(pkt(1, 200))
    assert r.get(1) is None
    with pytest.raises(ValueError):
        RetransmitBuffer(slots=500)
    r.store(pkt(2))
    r.clear()
    assert r.get(2) is None
