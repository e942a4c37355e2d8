"""Lean RTP header access for the per-packet path.

Why this exists: aiortc's ``RtpPacket.parse``/``serialize`` build a Python object, a
``HeaderExtensions`` object and fresh ``bytes`` for every packet, which is a large part of the
~60 µs/packet its media path costs. A forwarding relay only needs to read a few header fields,
decide, and patch seq/ts/ssrc/PT in place, so everything here works on ``bytes``, ``bytearray``
or ``memoryview`` with ``struct`` and never builds a packet object.

Validation never raises: :func:`check_rtp` returns a :class:`DropReason` for a malformed packet
so the caller drops and counts it instead of tearing down the session.

What may live here: RFC 3550 / RFC 8285 header layout. No codec knowledge (see ``codecs``), no
stream state (see ``rewriter``), no I/O.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence
from typing import Final

Buffer = bytes | bytearray | memoryview
"""Any read-only byte buffer a datagram may arrive in."""

RTP_HEADER_LEN: Final = 12
ONE_BYTE_PROFILE: Final = 0xBEDE
"""RFC 8285 one-byte header extension profile."""
TWO_BYTE_PROFILE_MASK: Final = 0xFFF0
TWO_BYTE_PROFILE: Final = 0x1000
"""RFC 8285 two-byte header extension profile (low 4 bits are "appbits")."""

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_SEQ_TS_SSRC: Final = struct.Struct("!HII")
_PT_SEQ_TS_SSRC: Final = struct.Struct("!BHII")
_HHHH: Final = struct.Struct("!HH")


class DropReason(enum.StrEnum):
    """Why a datagram was dropped; the value is a stable counter name for metrics."""

    TOO_SHORT = "too_short"
    BAD_VERSION = "bad_version"
    TRUNCATED_CSRC = "truncated_csrc"
    TRUNCATED_EXTENSION = "truncated_extension"
    BAD_PADDING = "bad_padding"
    NOT_RTP = "not_rtp"
    """The second byte says RTCP (RFC 5761 demultiplexing), not RTP."""


def is_rtcp(data: Buffer) -> bool:
    """RFC 5761 demux: RTCP packet types 192-223 sit where RTP's marker+PT byte is."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def check_rtp(data: Buffer) -> int | DropReason:
    """Validate an RTP packet; return the payload offset, or why it must be dropped.

    Returning the offset (an int) on success avoids a second header walk on the hot path.
    The payload is ``data[offset:payload_end(data)]``.
    """
    n = len(data)
    if n < RTP_HEADER_LEN:
        return DropReason.TOO_SHORT
    b0 = data[0]
    if b0 >> 6 != 2:
        return DropReason.BAD_VERSION
    if 192 <= data[1] <= 223:
        return DropReason.NOT_RTP
    pos = RTP_HEADER_LEN + 4 * (b0 & 0x0F)
    if n < pos:
        return DropReason.TRUNCATED_CSRC
    if b0 & 0x10:
        if n < pos + 4:
            return DropReason.TRUNCATED_EXTENSION
        pos += 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
        if n < pos:
            return DropReason.TRUNCATED_EXTENSION
    if b0 & 0x20:
        pad = data[n - 1]
        if pad == 0 or pad > n - pos:
            return DropReason.BAD_PADDING
    return pos


def payload_offset(data: Buffer) -> int:
    """Offset of the payload in a packet already accepted by :func:`check_rtp`."""
    b0 = data[0]
    pos = RTP_HEADER_LEN + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        pos += 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
    return pos


def payload_end(data: Buffer) -> int:
    """End of the payload (start of RTP padding) in a packet accepted by :func:`check_rtp`."""
    n = len(data)
    return n - data[n - 1] if data[0] & 0x20 else n


def version(data: Buffer) -> int:
    """RTP version field (must be 2)."""
    return data[0] >> 6


def has_padding(data: Buffer) -> bool:
    """Padding (P) bit."""
    return bool(data[0] & 0x20)


def has_extension(data: Buffer) -> bool:
    """Header extension (X) bit."""
    return bool(data[0] & 0x10)


def csrc_count(data: Buffer) -> int:
    """Number of CSRC entries (CC)."""
    return data[0] & 0x0F


def marker(data: Buffer) -> bool:
    """Marker bit: last packet of a video frame."""
    return bool(data[1] & 0x80)


def payload_type(data: Buffer) -> int:
    """Payload type (7 bits)."""
    return data[1] & 0x7F


def sequence_number(data: Buffer) -> int:
    """16-bit sequence number."""
    return (data[2] << 8) | data[3]


def timestamp(data: Buffer) -> int:
    """32-bit media timestamp."""
    return int(_U32.unpack_from(data, 4)[0])


def ssrc(data: Buffer) -> int:
    """32-bit synchronisation source."""
    return int(_U32.unpack_from(data, 8)[0])


def csrcs(data: Buffer) -> list[int]:
    """CSRC list (rare on the relay path; allocates, so not for per-packet use)."""
    return [int(_U32.unpack_from(data, 12 + 4 * i)[0]) for i in range(data[0] & 0x0F)]


def set_sequence_number(buf: bytearray | memoryview, seq: int) -> None:
    """Overwrite the sequence number in place."""
    _U16.pack_into(buf, 2, seq & 0xFFFF)


def set_timestamp(buf: bytearray | memoryview, ts: int) -> None:
    """Overwrite the timestamp in place."""
    _U32.pack_into(buf, 4, ts & 0xFFFFFFFF)


def set_ssrc(buf: bytearray | memoryview, value: int) -> None:
    """Overwrite the SSRC in place."""
    _U32.pack_into(buf, 8, value & 0xFFFFFFFF)


def set_payload_type(buf: bytearray | memoryview, pt: int) -> None:
    """Overwrite the payload type in place, keeping the marker bit."""
    buf[1] = (buf[1] & 0x80) | (pt & 0x7F)


def rewrite_header(
    buf: bytearray | memoryview, pt: int, seq: int, ts: int, ssrc_value: int
) -> None:
    """Rewrite PT, seq, ts and SSRC with one ``pack_into`` (the forwarding hot path)."""
    _PT_SEQ_TS_SSRC.pack_into(
        buf,
        1,
        (buf[1] & 0x80) | (pt & 0x7F),
        seq & 0xFFFF,
        ts & 0xFFFFFFFF,
        ssrc_value & 0xFFFFFFFF,
    )


def rewrite_seq_ts_ssrc(buf: bytearray | memoryview, seq: int, ts: int, ssrc_value: int) -> None:
    """Rewrite seq, ts and SSRC, leaving marker and PT alone."""
    _SEQ_TS_SSRC.pack_into(buf, 2, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc_value & 0xFFFFFFFF)


def extensions(data: Buffer) -> list[tuple[int, bytes]]:
    """Decode RFC 8285 header extension elements as ``(id, value)`` (tests and debugging).

    Raises ``ValueError`` on a malformed block; the hot path uses :func:`map_extension_ids`.
    """
    return [(xid, bytes(data[i : i + n])) for xid, i, n in _extension_elements(data)]


def _extension_elements(data: Buffer) -> Iterator[tuple[int, int, int]]:
    """``(id, value offset, value length)`` of each RFC 8285 element; ``ValueError`` where the
    block is malformed. Nothing for an unknown profile."""
    if not data[0] & 0x10:
        return
    pos = RTP_HEADER_LEN + 4 * (data[0] & 0x0F)
    profile, words = _HHHH.unpack_from(data, pos)
    start = pos + 4
    end = start + 4 * words
    if end > len(data):
        raise ValueError("truncated extension block")
    i = start
    two_byte = (profile & TWO_BYTE_PROFILE_MASK) == TWO_BYTE_PROFILE
    if profile != ONE_BYTE_PROFILE and not two_byte:
        return
    while i < end:
        b = data[i]
        if b == 0:
            i += 1
            continue
        if two_byte:
            if i + 2 > end:
                raise ValueError("truncated two-byte extension")
            xid, length = b, data[i + 1]
            i += 2
        else:
            xid, length = b >> 4, (b & 0x0F) + 1
            if xid == 15:
                return
            i += 1
        if i + length > end:
            raise ValueError("truncated extension value")
        yield xid, i, length
        i += length


def map_extension_ids(buf: bytearray | memoryview, id_map: Sequence[int]) -> bool:
    """Renumber header extensions in place for the other leg; erase the ones it lacks.

    Why in place: the two legs negotiate their own extension ids, and stripping the block
    would mean copying the packet. Elements whose ``id_map[id]`` is 0 are overwritten with
    zero bytes, which RFC 8285 defines as padding, so the block keeps its length and no
    byte moves. ``id_map`` has 256 entries (index = incoming id, value = outgoing id).
    Returns False, leaving the packet partly mapped, if the block is malformed (drop it).
    """
    if not buf[0] & 0x10:
        return True
    pos = RTP_HEADER_LEN + 4 * (buf[0] & 0x0F)
    profile = (buf[pos] << 8) | buf[pos + 1]
    start = pos + 4
    end = start + 4 * ((buf[pos + 2] << 8) | buf[pos + 3])
    if end > len(buf):
        return False
    i = start
    if profile == ONE_BYTE_PROFILE:
        while i < end:
            b = buf[i]
            if b == 0:
                i += 1
                continue
            xid = b >> 4
            if xid == 15:  # reserved: stop processing (RFC 8285 4.2)
                return True
            length = (b & 0x0F) + 1
            if i + 1 + length > end:
                return False
            new = id_map[xid]
            if new == 0 or new > 14:
                buf[i : i + 1 + length] = bytes(1 + length)
            else:
                buf[i] = (new << 4) | (b & 0x0F)
            i += 1 + length
        return True
    if (profile & TWO_BYTE_PROFILE_MASK) == TWO_BYTE_PROFILE:
        while i < end:
            b = buf[i]
            if b == 0:
                i += 1
                continue
            if i + 2 > end:
                return False
            length = buf[i + 1]
            if i + 2 + length > end:
                return False
            new = id_map[b]
            if new == 0:
                buf[i : i + 2 + length] = bytes(2 + length)
            else:
                buf[i] = new
            i += 2 + length
        return True
    # Unknown profile: the receiver would not understand it either; erase the whole block.
    buf[start:end] = bytes(end - start)
    buf[pos : pos + 2] = b"\xbe\xde"
    return True


ABS_SEND_TIME_UNITS: Final = 1 << 18
"""abs-send-time is 6.18 fixed-point seconds in 24 bits (it wraps every 64 s)."""


def abs_send_time(data: Buffer, ext_id: int) -> int | None:
    """The 24-bit abs-send-time value of element ``ext_id``, None when absent or malformed.

    For the relay's own estimate of a sender's uplink (``relay.uplink_estimate``), read on
    every arriving video packet, so it walks the block with plain indexing rather than
    :func:`extensions`, and never raises.
    """
    at = _find_element(data, ext_id, 3)
    if at is None:
        return None
    return (data[at] << 16) | (data[at + 1] << 8) | data[at + 2]


def _find_element(data: Buffer, ext_id: int, length: int) -> int | None:
    """The value offset of RFC 8285 element ``ext_id`` if it is ``length`` bytes long, else
    None (no block, unknown profile, malformed, absent, or another length)."""
    n = len(data)
    if n < RTP_HEADER_LEN or not data[0] & 0x10:
        return None
    pos = RTP_HEADER_LEN + 4 * (data[0] & 0x0F)
    if pos + 4 > n:
        return None
    profile = (data[pos] << 8) | data[pos + 1]
    i = pos + 4
    end = i + 4 * ((data[pos + 2] << 8) | data[pos + 3])
    if end > n:
        return None
    if profile == ONE_BYTE_PROFILE:
        while i < end:
            b = data[i]
            if b == 0:
                i += 1
                continue
            xid, size = b >> 4, (b & 0x0F) + 1
            if xid == 15 or i + 1 + size > end:
                return None
            if xid == ext_id:
                return i + 1 if size == length else None
            i += 1 + size
    elif (profile & TWO_BYTE_PROFILE_MASK) == TWO_BYTE_PROFILE:
        while i < end:
            xid = data[i]
            if xid == 0:
                i += 1
                continue
            if i + 2 > end:
                return None
            size = data[i + 1]
            if i + 2 + size > end:
                return None
            if xid == ext_id:
                return i + 2 if size == length else None
            i += 2 + size
    return None


def delay_abs_send_time(buf: bytearray | memoryview, ext_id: int, seconds: float) -> bool:
    """Move the 3-byte abs-send-time element ``ext_id`` (already mapped) ``seconds`` later.

    Why: a receiver's delay-based bandwidth estimator reads growth of (arrival - send time) as
    queueing. A frame the strict gate held for its verdict, or a packet resent from the relay's
    buffer, would look that much late: congestion that is not there, and the receiver's REMB
    squeezes the sender. Moved by the time the relay kept the packet, the send time says when
    the sender would have sent it for it to arrive now, so the receiver measures the two legs'
    delay and nothing the relay did on purpose (end-to-end latency measured from this
    extension excludes those holds too). False when the packet has no such element (nothing
    is added: no byte moves).
    """
    i = _find_element(buf, ext_id, 3)
    if i is None:
        return False
    value = (buf[i] << 16) | (buf[i + 1] << 8) | buf[i + 2]
    value = (value + round(seconds * ABS_SEND_TIME_UNITS)) & 0xFFFFFF
    buf[i : i + 3] = value.to_bytes(3, "big")
    return True


def unwrap_rtx(data: Buffer, media_pt: int, media_ssrc: int) -> bytearray | DropReason:
    """Recover the original packet from an RFC 4588 retransmission.

    The RTX payload starts with the original sequence number (OSN); the rest is the original
    payload. Header, CSRCs and extensions are kept; PT, seq and SSRC become the media
    stream's. Allocates (retransmissions are rare). RTX packets with no OSN (padding-only
    bandwidth probes) return ``DropReason.TOO_SHORT``.
    """
    off = check_rtp(data)
    if not isinstance(off, int):
        return off
    end = payload_end(data)
    if end - off < 2:
        return DropReason.TOO_SHORT
    osn = (data[off] << 8) | data[off + 1]
    out = bytearray(data[:off])
    out += data[off + 2 : end]
    out[0] &= ~0x20 & 0xFF  # padding (if any) was dropped with the tail
    rewrite_header(out, media_pt, osn, timestamp(data), media_ssrc)
    return out
