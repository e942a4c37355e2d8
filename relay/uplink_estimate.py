"""The relay's own estimate of one sender's uplink (sender -> relay), sans-I/O.

Why: what the relay tells a sender in REMB used to come from its receiver alone (plus what the
strict gate withheld, ``relay.sender_bitrate``). A receiver that sends no REMB left the sender
with nothing to stop its growth (10-34 Mbit/s on loopback), and a receiver's estimate carries
the relay's holds and the receiver's own downlink, not the sender's uplink. This estimates the
uplink where it ends, from the arrival of the sender's video packets at the relay, *before*
anything is held, the way a receiving browser does: delay-based (abs-send-time against arrival
time), with an AIMD rate control that never lets the estimate grow past about 1.5x what
arrives. Holding frames for a verdict therefore never reads as congestion here.

The parts are aiortc's (``aiortc.rate``: the Kalman overuse estimator, overuse detector and
AIMD rate control, ported from webrtc.org), wired as aiortc's own ``RemoteBitrateEstimator.add``
wires them, with three differences, none in the figures (a property test holds it to aiortc's
estimator packet by packet): the clock is passed in (seconds, as the hub has it); the incoming
rate is a window of the packets themselves instead of aiortc's 1000 one-millisecond buckets
(about 96 KiB per sender, and a loop over every millisecond of a pause on the first packet
after it); and the inter-arrival filter that groups packets (``InterArrival``) runs inline on
plain ints, since it is the part that runs for every packet (it builds no object per packet).
"""

from __future__ import annotations

from collections import deque
from typing import Final

from aiortc.rate import (
    INTER_ARRIVAL_SHIFT,
    TIMESTAMP_GROUP_LENGTH_MS,
    TIMESTAMP_TO_MS,
    AimdRateControl,
    BandwidthUsage,
    OveruseDetector,
    OveruseEstimator,
)

RATE_WINDOW_MS: Final = 1000
"""The incoming rate is measured over the last second, as aiortc's and webrtc.org's are."""
GROUP_LENGTH: Final = (TIMESTAMP_GROUP_LENGTH_MS << INTER_ARRIVAL_SHIFT) // 1000
"""Packets sent within 5 ms of a group's first form one group (abs-send-time << 8 units)."""
BURST_DELTA_THRESHOLD_MS: Final = 5


class _ArrivalRate:
    """Bits per second that arrived over the last ``RATE_WINDOW_MS``: aiortc's ``RateCounter``
    (same figures, same "None" cases) over a queue of one int per packet (``ms << 16 | bytes``:
    ~40 bytes a packet in the window, ~20 KiB at 480 packets/s), with
    ``RemoteBitrateEstimator``'s restart after an empty window folded into :meth:`add`."""

    __slots__ = ("_live", "_origin_ms", "_packets", "_total")

    def __init__(self) -> None:
        self._packets: deque[int] = deque()
        self._origin_ms: int | None = None
        self._total = 0
        self._live = True

    def add(self, size: int, now_ms: int) -> None:
        """Count a packet; the window starts over when the one before it had emptied (aiortc
        checks ``rate(now) is not None`` before each add, and resets once when it is not)."""
        if self._origin_ms is not None:
            self._erase_old(now_ms)
        origin = self._origin_ms
        if origin is not None and self._packets and now_ms > origin:  # rate(now) is not None
            self._live = True
        elif self._live:
            self.reset()
            self._live = False
        if self._origin_ms is None:
            self._origin_ms = now_ms
        size &= 0xFFFF  # an RTP packet's size fits (a UDP datagram's)
        self._packets.append(now_ms << 16 | size)
        self._total += size

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is None:
            return None
        self._erase_old(now_ms)
        active_ms = now_ms - self._origin_ms + 1
        if self._packets and active_ms > 1:
            return round(8000 * self._total / active_ms)
        return None

    def reset(self) -> None:
        self._packets.clear()
        self._origin_ms = None
        self._total = 0

    def _erase_old(self, now_ms: int) -> None:
        new_origin = now_ms - RATE_WINDOW_MS + 1
        if self._origin_ms is not None and self._origin_ms < new_origin:
            self._origin_ms = new_origin
            packets = self._packets
            while packets and packets[0] >> 16 < new_origin:
                self._total -= packets.popleft() & 0xFFFF


class UplinkEstimate:
    """One sender's uplink, from its video packets as they arrive at the relay."""

    __slots__ = (
        "_control",
        "_detector",
        "_estimator",
        "_feedback_ms",
        "_first_ts",
        "_group_arrival_ms",
        "_group_size",
        "_last_ts",
        "_last_update_ms",
        "_previous",
        "_rate",
        "bps",
    )

    def __init__(self) -> None:
        self._rate = _ArrivalRate()
        self._first_ts: int | None = None
        self._last_ts = self._group_size = self._group_arrival_ms = 0
        """The current group of packets: first and last send time, bytes, last arrival."""
        self._previous: tuple[int, int, int] | None = None
        """The group before it: ``(last send time, last arrival ms, bytes)``."""
        self._estimator = OveruseEstimator()
        self._detector = OveruseDetector()
        self._control = AimdRateControl()
        self._feedback_ms: int = self._control.feedback_interval()
        self._last_update_ms: int | None = None
        self.bps: int | None = None
        """The latest estimate, bits per second; None until the rate control has one (about
        3 s of packets, or sooner on overuse)."""

    def on_packet(self, abs_send_time: int, payload_size: int, now: float) -> int | None:
        """One packet arrived at ``now`` (seconds) with this 24-bit abs-send-time and payload
        size; returns the new estimate when the rate control updated it (every 0.5 s, and at
        once on overuse), else None."""
        now_ms = round(now * 1000)
        rate = self._rate
        rate.add(payload_size, now_ms)
        detector = self._detector
        self._group(abs_send_time << 8, now_ms, payload_size)
        last = self._last_update_ms
        if (
            last is not None
            and now_ms - last <= self._feedback_ms
            and detector.state() != BandwidthUsage.OVERUSING
        ):
            return None
        target: int | None = self._control.update(detector.state(), rate.rate(now_ms), now_ms)
        if target is None:
            return None
        self._last_update_ms = now_ms
        self.bps = target
        return target

    def _group(self, ts: int, now_ms: int, size: int) -> None:
        """aiortc's ``InterArrival.compute_deltas`` (webrtc.org's inter-arrival filter), inline
        on plain ints: the same groups and deltas (a property test holds it to aiortc's), with
        a fraction of the calls and objects per packet; each closed group feeds the filter."""
        first = self._first_ts
        if first is None:
            self._first_ts = self._last_ts = ts
        elif (ts - first) & 0xFFFFFFFF >= 0x80000000:
            return  # out of order: not counted in any group
        else:
            last = self._last_ts
            since_last = (ts - last) & 0xFFFFFFFF
            since_last_ms = round(TIMESTAMP_TO_MS * since_last)
            arrival_delta = now_ms - self._group_arrival_ms
            burst = since_last_ms == 0 or (
                arrival_delta - since_last_ms < 0 and arrival_delta <= BURST_DELTA_THRESHOLD_MS
            )
            if not burst and (ts - first) & 0xFFFFFFFF > GROUP_LENGTH:
                previous = self._previous
                if previous is not None:
                    self._on_deltas(
                        (last - previous[0]) & 0xFFFFFFFF,
                        self._group_arrival_ms - previous[1],
                        self._group_size - previous[2],
                        now_ms,
                    )
                self._previous = (last, self._group_arrival_ms, self._group_size)
                self._first_ts = self._last_ts = ts
                self._group_size = 0
            elif 0 < since_last < 0x80000000:  # later than the group's last (mod 2^32)
                self._last_ts = ts
        self._group_size += size
        self._group_arrival_ms = now_ms

    def _on_deltas(
        self, send_delta: int, arrival_delta_ms: int, size_delta: int, now_ms: int
    ) -> None:
        detector, estimator = self._detector, self._estimator
        send_delta_ms = send_delta * TIMESTAMP_TO_MS
        estimator.update(arrival_delta_ms, send_delta_ms, size_delta, detector.state(), now_ms)
        detector.detect(estimator.offset(), send_delta_ms, estimator.num_of_deltas(), now_ms)
