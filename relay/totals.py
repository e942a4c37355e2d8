"""A relay worker's running totals, for signaling's Prometheus metrics (``control.RelayTotals``).

Why read rather than counted: the per-packet path already keeps counters (each outgoing
stream's forwarded packets and bytes, the hub's drops and RTCP), so the totals are summed from
them once per load report, and a leg's streams are added to a retired sum when it closes, so
nothing is lost when their records go. The strict route's per-interval meter is folded in
before the worker drains it for the load report.
"""

from __future__ import annotations

import resource
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from relay import control as c
from relay.forwarding_hub import ForwardingHub

if TYPE_CHECKING:
    from relay.forwarder import StreamForwarder
    from relay.legs import Leg
    from relay.strict.moderation import ModerationMeter


class RelayTally:
    """Totals of one worker process since it started."""

    def __init__(self, hub: ForwardingHub) -> None:
        self._hub = hub
        self._retired_packets = 0
        self._retired_bytes = 0
        self._retired_dropped: Counter[str] = Counter()
        self._moderation: c.ModerationTotals | None = None

    def retire(self, leg: Leg) -> None:
        """Keep what the streams towards ``leg`` counted; call before the hub forgets it."""
        for fwd in self._hub.outgoing_streams(leg):
            self._retired_packets += fwd.forwarded
            self._retired_bytes += fwd.octets
            self._retired_dropped.update(fwd.dropped)

    def absorb(self, meter: ModerationMeter, inference_s: Iterable[float]) -> None:
        """Fold in the strict route's figures since the meter's last drain (call just before),
        and the model runs' durations since the last call."""
        totals = self._moderation = self._moderation or c.ModerationTotals()
        totals.classified += meter.classified
        totals.no_verdict += meter.no_verdict
        totals.frames_released += meter.released
        totals.frames_withheld += meter.withheld
        for held_s in meter.hold_s:
            totals.gate_latency.observe(held_s)
        for held_s in meter.settle_hold_s:
            totals.settle_latency.observe(held_s)
        for run_s in inference_s:
            totals.inference.observe(run_s)

    def sender_estimates(self) -> c.Histogram:
        """The relay's own estimate of each sender's uplink, now (a gauge, not a total)."""
        hist = c.Histogram.empty(c.SENDER_ESTIMATE_BOUNDS_BPS)
        for bps in self._hub.uplink_estimates():
            hist.observe(bps)
        return hist

    def totals(self, defences: Mapping[str, int] | None = None) -> c.RelayTotals:
        """``defences``: the worker's own counts of refusals (the hub adds its NACK limits)."""
        hub = self._hub
        live: list[StreamForwarder] = hub.outgoing_streams()
        dropped = self._retired_dropped + hub.dropped
        for fwd in live:
            dropped.update(fwd.dropped)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return c.RelayTotals(
            packets_forwarded=self._retired_packets + sum(fwd.forwarded for fwd in live),
            bytes_forwarded=self._retired_bytes + sum(fwd.octets for fwd in live),
            dropped=dict(dropped),
            nacks_received=hub.rtcp_in["Nack"],
            retransmitted=hub.retransmitted,
            nacks_sent=hub.nacks_forwarded,
            plis_received=hub.rtcp_in["Pli"] + hub.rtcp_in["Fir"],
            plis_sent=hub.pli_sent,
            keyframe_requests=dict(hub.keyframe_requests),
            keyframes_replayed=hub.keyframes_replayed,
            rembs_sent=dict(hub.rembs_sent),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            defences=dict(Counter(defences or {}) + hub.nack_limits),
            moderation=self._moderation,
        )
