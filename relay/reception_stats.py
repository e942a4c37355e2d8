"""Reception statistics for one incoming stream, for the receiver reports the relay sends.

Why: each leg is its own RTP session, and the relay is the receiver on the sender's leg. The
sender needs RTCP RR (loss, jitter, LSR/DLSR for RTT) from *someone*; aiortc's receiver
would compute them, but the relay bypasses it, so the relay keeps the RFC 3550 appendix A
counters itself: A.1 sequence tracking, A.3 loss, A.8 interarrival jitter. Sans-I/O:
arrival times are passed in.
"""

from __future__ import annotations

from relay.rtcp import ReportBlock

_MAX_DROPOUT = 3000
_MAX_MISORDER = 100


class ReceiveStats:
    """RFC 3550 reception counters for one SSRC."""

    __slots__ = (
        "_base_seq",
        "_cycles",
        "_expected_prior",
        "_jitter",
        "_last_sr_arrival",
        "_lsr",
        "_max_seq",
        "_received",
        "_received_prior",
        "_transit",
        "clock_rate",
        "started",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.started = False
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._transit: int | None = None
        self._jitter = 0.0
        self._lsr = 0
        self._last_sr_arrival: float | None = None

    def update(self, seq: int, ts: int, arrival: float) -> None:
        """Count one received packet (``arrival`` in seconds on a monotonic clock)."""
        if not self.started:
            self.started = True
            self._base_seq = self._max_seq = seq
        else:
            delta = (seq - self._max_seq) & 0xFFFF
            if delta < _MAX_DROPOUT:
                if seq < self._max_seq:
                    self._cycles += 1 << 16
                self._max_seq = seq
            elif delta <= 0x10000 - _MAX_MISORDER:
                # a very large jump: treat as a restart of the sequence space
                self._base_seq = self._max_seq = seq
                self._cycles = 0
                self._received = 0
                self._expected_prior = self._received_prior = 0
            # else: duplicate or reordered; counted as received below
        self._received += 1
        transit = int(arrival * self.clock_rate) - ts
        if self._transit is not None:
            d = abs(((transit - self._transit + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
            self._jitter += (d - self._jitter) / 16.0
        self._transit = transit

    def on_sender_report(self, ntp_timestamp: int, arrival: float) -> None:
        """Remember the sender's last SR so the next RR can carry LSR/DLSR (RTT)."""
        self._lsr = (ntp_timestamp >> 16) & 0xFFFFFFFF
        self._last_sr_arrival = arrival

    @property
    def extended_max_seq(self) -> int:
        """Highest sequence number received, extended with wrap-around cycles."""
        return self._cycles + self._max_seq

    def report_block(self, ssrc: int, now: float) -> ReportBlock:
        """An RR block for this stream, updating the "since last report" interval."""
        expected = self.extended_max_seq - self._base_seq + 1
        lost = expected - self._received
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        fraction = (
            0
            if expected_interval <= 0 or lost_interval <= 0
            else (lost_interval << 8) // expected_interval
        )
        dlsr = 0
        if self._last_sr_arrival is not None:
            dlsr = max(0, int((now - self._last_sr_arrival) * 65536)) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=min(255, fraction),
            packets_lost=lost,
            highest_seq=self.extended_max_seq & 0xFFFFFFFF,
            jitter=int(self._jitter),
            lsr=self._lsr,
            dlsr=dlsr,
        )
