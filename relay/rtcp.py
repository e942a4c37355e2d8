"""Lean RTCP parsing and building for the feedback the relay acts on.

Why not aiortc.rtcp: RTCP is only ~1-2% of packets, so speed is not the reason. The reasons
are that aiortc's NACK parser does not wrap sequence numbers at 2^16 (``pid + d + 1``), that
its parser raises on the first malformed sub-packet of a compound packet (we want to keep the
good ones and count the bad one), and that the relay wants small immutable events rather
than mutable packet objects. aiortc's serializer is used as the reference in the tests.

Covers SR, RR, BYE, generic NACK (RFC 4585), PLI, FIR (RFC 5104) and REMB
(draft-alvestrand-rmcat-remb). Everything else is reported as :class:`OtherRtcp`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from relay.rtp import Buffer

RTCP_SR: Final = 200
RTCP_RR: Final = 201
RTCP_SDES: Final = 202
RTCP_BYE: Final = 203
RTCP_RTPFB: Final = 205
RTCP_PSFB: Final = 206
FMT_NACK: Final = 1
FMT_PLI: Final = 1
FMT_FIR: Final = 4
FMT_APP: Final = 15
_REMB: Final = b"REMB"

_II: Final = struct.Struct("!II")
_I: Final = struct.Struct("!I")
_HH: Final = struct.Struct("!HH")
_SR_INFO: Final = struct.Struct("!QIII")
_BLOCK: Final = struct.Struct("!IB3sIIII")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 6.4.1) inside an SR or RR."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_seq: int
    """Extended highest sequence number received."""
    jitter: int
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR: the sender's NTP/RTP clock pair and counts, plus any report blocks."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...]


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR: loss/jitter feedback about the streams the reporter receives."""

    ssrc: int
    reports: tuple[ReportBlock, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE: these sources stopped."""

    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Nack:
    """Generic NACK: ``media_ssrc`` is missing ``seqs`` (already expanded, wrapped mod 2^16)."""

    sender_ssrc: int
    media_ssrc: int
    seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Pli:
    """Picture Loss Indication: ``media_ssrc`` needs a keyframe."""

    sender_ssrc: int
    media_ssrc: int


@dataclass(frozen=True, slots=True)
class Fir:
    """Full Intra Request: each listed SSRC needs a keyframe (FCI entries)."""

    sender_ssrc: int
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Remb:
    """Receiver Estimated Maximum Bitrate for ``ssrcs``, in bit/s."""

    sender_ssrc: int
    bitrate: int
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class OtherRtcp:
    """A well-formed RTCP packet the relay does not interpret (SDES, APP, XR, ...)."""

    packet_type: int
    fmt: int


RtcpEvent = SenderReport | ReceiverReport | Bye | Nack | Pli | Fir | Remb | OtherRtcp


def expand_nack(pid: int, blp: int) -> list[int]:
    """Sequence numbers named by one NACK FCI entry (PID + 16-bit BLP), wrapping at 2^16."""
    out = [pid]
    for d in range(16):
        if (blp >> d) & 1:
            out.append((pid + d + 1) & 0xFFFF)
    return out


def _blocks(data: Buffer, pos: int, count: int) -> tuple[ReportBlock, ...]:
    out = []
    for _ in range(count):
        ssrc, frac, lost, hi, jit, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        lost_i = int.from_bytes(lost, "big", signed=True)
        out.append(ReportBlock(ssrc, frac, lost_i, hi, jit, lsr, dlsr))
        pos += 24
    return tuple(out)


def parse_rtcp(data: Buffer) -> tuple[list[RtcpEvent], int]:
    """Parse a compound RTCP packet into events.

    Returns ``(events, malformed)``: the events of every well-formed sub-packet and the count
    of malformed ones. Parsing stops at a sub-packet whose length field is inconsistent,
    since the rest of the datagram cannot be framed.
    """
    events: list[RtcpEvent] = []
    bad = 0
    pos = 0
    n = len(data)
    while pos + 4 <= n:
        b0 = data[pos]
        if b0 >> 6 != 2:
            return events, bad + 1
        count = b0 & 0x1F
        pt = data[pos + 1]
        length = 4 * (((data[pos + 2] << 8) | data[pos + 3]) + 1)
        end = pos + length
        if end > n:
            return events, bad + 1
        body = pos + 4
        if b0 & 0x20:  # padding: last byte of this sub-packet says how much
            pad = data[end - 1]
            if pad == 0 or pad > end - body:
                return events, bad + 1
            stop = end - pad
        else:
            stop = end
        size = stop - body
        try:
            ev = _parse_one(data, pt, count, body, size)
        except (struct.error, ValueError):
            ev = None
        if ev is None:
            bad += 1
        else:
            events.append(ev)
        pos = end
    if pos != n:
        bad += 1
    return events, bad


def _parse_one(data: Buffer, pt: int, count: int, body: int, size: int) -> RtcpEvent | None:
    if pt == RTCP_SR:
        if size < 24 + 24 * count:
            return None
        ssrc = _I.unpack_from(data, body)[0]
        ntp, rtp_ts, pkts, octets = _SR_INFO.unpack_from(data, body + 4)
        return SenderReport(ssrc, ntp, rtp_ts, pkts, octets, _blocks(data, body + 24, count))
    if pt == RTCP_RR:
        if size < 4 + 24 * count:
            return None
        return ReceiverReport(_I.unpack_from(data, body)[0], _blocks(data, body + 4, count))
    if pt == RTCP_BYE:
        if size < 4 * count:
            return None
        return Bye(tuple(_I.unpack_from(data, body + 4 * i)[0] for i in range(count)))
    if pt in (RTCP_RTPFB, RTCP_PSFB):
        if size < 8:
            return None
        sender, media = _II.unpack_from(data, body)
        fci = body + 8
        fci_len = size - 8
        if pt == RTCP_RTPFB:
            if count != FMT_NACK:
                return OtherRtcp(pt, count)
            if fci_len % 4:
                return None
            seqs: list[int] = []
            for p in range(fci, fci + fci_len, 4):
                pid, blp = _HH.unpack_from(data, p)
                seqs.extend(expand_nack(pid, blp))
            return Nack(sender, media, tuple(seqs))
        if count == FMT_PLI:
            return Pli(sender, media)
        if count == FMT_FIR:
            if fci_len % 8:
                return None
            return Fir(
                sender, tuple(_I.unpack_from(data, p)[0] for p in range(fci, fci + fci_len, 8))
            )
        if count == FMT_APP and fci_len >= 8 and bytes(data[fci : fci + 4]) == _REMB:
            num = data[fci + 4]
            if fci_len < 8 + 4 * num:
                return None
            exp = data[fci + 5] >> 2
            mantissa = ((data[fci + 5] & 0x03) << 16) | (data[fci + 6] << 8) | data[fci + 7]
            ssrcs = tuple(_I.unpack_from(data, fci + 8 + 4 * i)[0] for i in range(num))
            return Remb(sender, mantissa << exp, ssrcs)
        return OtherRtcp(pt, count)
    return OtherRtcp(pt, count)


def _header(pt: int, count: int, body_len: int) -> bytes:
    return bytes((0x80 | count, pt)) + (body_len // 4).to_bytes(2, "big")


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """A PLI asking ``media_ssrc`` for a keyframe."""
    return _header(RTCP_PSFB, FMT_PLI, 8) + _II.pack(sender_ssrc, media_ssrc)


def build_fir(sender_ssrc: int, media_ssrc: int, seqnr: int) -> bytes:
    """A FIR (RFC 5104) for ``media_ssrc``; ``seqnr`` must grow by one per new request."""
    body = _II.pack(sender_ssrc, 0) + _I.pack(media_ssrc) + bytes((seqnr & 0xFF, 0, 0, 0))
    return _header(RTCP_PSFB, FMT_FIR, len(body)) + body


def nack_fci(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Pack lost sequence numbers into (PID, BLP) entries, handling wrap-around."""
    entries: list[tuple[int, int]] = []
    pid = -1
    blp = 0
    for s in seqs:
        s &= 0xFFFF
        if pid >= 0:
            d = ((s - pid) & 0xFFFF) - 1
            if 0 <= d < 16:
                blp |= 1 << d
                continue
            if d == -1:
                continue  # duplicate of pid
            entries.append((pid, blp))
        pid, blp = s, 0
    if pid >= 0:
        entries.append((pid, blp))
    return entries


def build_nack(sender_ssrc: int, media_ssrc: int, seqs: Iterable[int]) -> bytes:
    """A generic NACK for ``seqs`` (ascending, may wrap) of ``media_ssrc``."""
    fci = b"".join(_HH.pack(p, b) for p, b in nack_fci(seqs))
    body = _II.pack(sender_ssrc, media_ssrc) + fci
    return _header(RTCP_RTPFB, FMT_NACK, len(body)) + body


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: Iterable[int]) -> bytes:
    """A REMB telling the sender of ``ssrcs`` to stay under ``bitrate`` bit/s."""
    ssrc_list = list(ssrcs)
    exp = 0
    mantissa = max(0, bitrate)
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exp += 1
    body = (
        _II.pack(sender_ssrc, 0)
        + _REMB
        + bytes(
            (len(ssrc_list), (exp << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF)
        )
        + b"".join(_I.pack(s) for s in ssrc_list)
    )
    return _header(RTCP_PSFB, FMT_APP, len(body)) + body


def _pack_block(b: ReportBlock) -> bytes:
    lost = max(-0x800000, min(0x7FFFFF, b.packets_lost)).to_bytes(3, "big", signed=True)
    return _BLOCK.pack(b.ssrc, b.fraction_lost, lost, b.highest_seq, b.jitter, b.lsr, b.dlsr)


def build_rr(sender_ssrc: int, reports: Iterable[ReportBlock]) -> bytes:
    """A receiver report: what the relay itself answers for each stream it receives."""
    blocks = [_pack_block(b) for b in reports]
    body = _I.pack(sender_ssrc) + b"".join(blocks)
    return _header(RTCP_RR, len(blocks), len(body)) + body


def build_sr(
    ssrc: int, ntp_timestamp: int, rtp_timestamp: int, packet_count: int, octet_count: int
) -> bytes:
    """A sender report for an outgoing stream, so the receiver can sync audio and video."""
    body = _I.pack(ssrc) + _SR_INFO.pack(
        ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )
    return _header(RTCP_SR, 0, len(body)) + body
