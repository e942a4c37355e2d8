"""Make one continuous outgoing RTP stream out of a source that changes.

Why: each receiver has one outgoing stream per media kind, negotiated once with a fixed SSRC,
but what feeds it changes: the partner changes on "Next", a sender restarts its encoder
(new SSRC, or a sequence jump on the same one), or the relay replays a cached keyframe before
the live stream. A browser's jitter buffer and NACK logic treat a sequence jump as massive
loss and a timestamp jump backwards as a clock reset, so the relay rewrites:

* within one source *epoch* the mapping is a fixed offset, so gaps and reordering pass
  through unchanged (modulo 2^16 for seq, 2^32 for ts); NACKs stay meaningful;
* on a new epoch the outgoing seq continues at ``highest + 1`` and the outgoing ts moves
  forward by the wall time since the last packet sent, in clock-rate ticks (at least 1);
* packets older than the epoch's first packet, or from a previous source, are dropped
  (their outgoing numbers belong to the previous epoch).

Sans-I/O: the caller passes ``now`` (seconds, monotonic). No sockets, no timers.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final

from relay import rtp

SEQ_MOD: Final = 1 << 16
TS_MOD: Final = 1 << 32
MAX_DROPOUT: Final = 3000
"""Forward seq jump (RFC 3550 A.1) beyond which the source is treated as restarted."""
RETIRED_MAX: Final = 8
"""How many previous sources are remembered as stale."""
MAX_MISORDER: Final = 100
"""Backward seq distance still accepted as reordering rather than a restart."""


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 16-bit sequence numbers, in [-32768, 32767]."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


class SequenceRewriter:
    """Seq/ts rewriting state for one outgoing stream (one receiver, one media kind).

    ``source`` is any hashable naming the input (e.g. ``(partner_id, ssrc)``); passing a
    different value starts a new epoch. Per packet cost: a few integer operations; the
    result is written into the packet with :meth:`rewrite_packet` or returned by
    :meth:`translate`.
    """

    __slots__ = (
        "_bad_seq",
        "_last_out_time",
        "_last_out_ts",
        "_max_in",
        "_retired",
        "_seq_off",
        "_source",
        "_span",
        "_ts_off",
        "clock_rate",
        "dropped_late",
        "epochs",
        "max_out_seq",
        "out_ssrc",
        "started",
    )

    def __init__(self, clock_rate: int, out_ssrc: int, initial_seq: int, initial_ts: int) -> None:
        """``initial_seq``/``initial_ts`` should be random (RFC 3550 8.x) and fixed per stream."""
        self.clock_rate = clock_rate
        self.out_ssrc = out_ssrc & 0xFFFFFFFF
        self.max_out_seq = (initial_seq - 1) & 0xFFFF
        """Highest outgoing seq emitted so far (or initial - 1 before the first packet)."""
        self._last_out_ts = initial_ts & 0xFFFFFFFF
        self._last_out_time: float | None = None
        self._source: Hashable | None = None
        self._seq_off = 0
        self._ts_off = 0
        self._max_in = 0
        self._span = 0
        self._bad_seq = -1
        self._retired: list[Hashable] = []
        self.started = False
        self.epochs = 0
        """Number of epochs started (switches + restarts), for metrics and tests."""
        self.dropped_late = 0
        """Packets dropped as stale (previous source, or before the epoch start)."""

    @property
    def source(self) -> Hashable | None:
        """The source of the current epoch."""
        return self._source

    def _start_epoch(self, source: Hashable, seq: int, ts: int, now: float) -> None:
        out_seq = (self.max_out_seq + 1) & 0xFFFF
        if self._last_out_time is None:
            out_ts = self._last_out_ts
        else:
            ticks = int((now - self._last_out_time) * self.clock_rate)
            out_ts = (self._last_out_ts + max(1, ticks)) & 0xFFFFFFFF
        self._source = source
        self._seq_off = (out_seq - seq) & 0xFFFF
        self._ts_off = (out_ts - ts) & 0xFFFFFFFF
        self._max_in = seq
        self._span = 0
        self._bad_seq = -1
        self.started = True
        self.epochs += 1

    def translate(self, source: Hashable, seq: int, ts: int, now: float) -> tuple[int, int] | None:
        """Map an incoming (seq, ts) to the outgoing (seq, ts), or None to drop it.

        Packets must be passed in arrival order. A packet with a new ``source`` starts an
        epoch; a late packet of an earlier source returns None.
        """
        if source != self._source or not self.started:
            if source in self._retired:
                self.dropped_late += 1
                return None
            if self._source is not None:
                self._retire(self._source)
            self._start_epoch(source, seq, ts, now)
        else:
            d = seq_diff(seq, self._max_in)
            if d > 0:
                if d > MAX_DROPOUT:
                    return self._restart(source, seq, ts, now)
                self._max_in = seq
                if self._span < SEQ_MOD:
                    self._span += d
            elif d < -MAX_MISORDER:
                # RFC 3550 A.1 probation: two consecutive packets confirm a restart.
                if seq == self._bad_seq:
                    return self._restart(source, seq, ts, now)
                self._bad_seq = (seq + 1) & 0xFFFF
                self.dropped_late += 1
                return None
            elif -d > self._span:
                # Reordered from before this epoch's first packet: its outgoing number
                # would collide with the previous epoch's.
                self.dropped_late += 1
                return None
        out_seq = (seq + self._seq_off) & 0xFFFF
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        if seq_diff(out_seq, self.max_out_seq) > 0:
            self.max_out_seq = out_seq
            self._last_out_ts = out_ts
            self._last_out_time = now
        return out_seq, out_ts

    def _restart(self, source: Hashable, seq: int, ts: int, now: float) -> tuple[int, int]:
        self._start_epoch(source, seq, ts, now)
        out_seq = (seq + self._seq_off) & 0xFFFF
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        self.max_out_seq = out_seq
        self._last_out_ts = out_ts
        self._last_out_time = now
        return out_seq, out_ts

    def _retire(self, source: Hashable) -> None:
        """Remember a left-behind source so its late packets are dropped, not a switch back.

        Bounded to the most recent few; a deliberate switch back should use a new source key.
        """
        lst = self._retired
        if source in lst:
            lst.remove(source)
        lst.append(source)
        if len(lst) > RETIRED_MAX:
            del lst[0]

    def rewrite_packet(self, buf: bytearray | memoryview, source: Hashable, now: float) -> bool:
        """Rewrite seq, ts and SSRC of a validated packet in place; False means drop it."""
        r = self.translate(source, rtp.sequence_number(buf), rtp.timestamp(buf), now)
        if r is None:
            return False
        rtp.rewrite_seq_ts_ssrc(buf, r[0], r[1], self.out_ssrc)
        return True

    def out_timestamp(self, source: Hashable, ts: int) -> int | None:
        """Outgoing timestamp for a source timestamp of the current epoch (for SR translation)."""
        if not self.started or source != self._source:
            return None
        return (ts + self._ts_off) & 0xFFFFFFFF

    def source_seq(self, out_seq: int) -> int | None:
        """Translate an outgoing seq (e.g. from a NACK) back to the current source's seq.

        None if it belongs to an earlier epoch or was never sent.
        """
        if not self.started:
            return None
        in_seq = (out_seq - self._seq_off) & 0xFFFF
        back = -seq_diff(in_seq, self._max_in)
        if back < 0 or back > self._span:
            return None
        return in_seq
