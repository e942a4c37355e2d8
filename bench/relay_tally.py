"""The relay workload's measurement windows: load-generator reports summed over a span, and the
figures made of them (frame rate per stream, loss, added latency, what saturated).

Pure: reports in, figures out; the orchestration (``bench.relay_cases``) owns the clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bench.chat_load import ERRORS_KEPT
from bench.media_peer import StreamWindow
from bench.results import AddedLatency, Calls, FpsSummary, Packets
from bench.stats import Percentiles, percentile

FULL_RATE_FPS: Final = 29.0
GROUPS: Final = ("relayed", "direct")
MIN_MEDIA_S: Final = 1.0
"""A stream's frame rate is judged only over at least this much call time in the span."""
CALL_COUNTS: Final = ("started", "reused", "nexts", "ended", "without_media", "error_count")
"""The call events a report counts (:class:`bench.results.Calls`)."""


def added_latency_ms(relayed: Percentiles, direct: Percentiles) -> AddedLatency:
    """What the relay adds: relayed minus direct, percentile by percentile (ms)."""

    def minus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    return AddedLatency(
        minus(relayed.p50_ms, direct.p50_ms),
        minus(relayed.p90_ms, direct.p90_ms),
        minus(relayed.p99_ms, direct.p99_ms),
    )


@dataclass
class Tally:
    """Load-generator reports summed over a span: per receiving stream frames and call time."""

    frames: dict[str, dict[tuple[int, int], int]] = field(
        default_factory=lambda: {g: {} for g in GROUPS}
    )
    media_s: dict[str, dict[tuple[int, int], float]] = field(
        default_factory=lambda: {g: {} for g in GROUPS}
    )
    latency_s: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    send_lag_s: list[float] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {g: Counter() for g in GROUPS})
    """Per group, the :attr:`StreamWindow.TOTALS`."""
    receive_errors: dict[int, int] = field(default_factory=dict)
    """Per worker, cumulative since the worker started."""
    leg_transports: dict[int, dict[str, int]] = field(default_factory=dict)
    """Per worker, its users' relay connections by nominated ICE pair protocol, as last seen."""
    calls: Counter[str] = field(default_factory=Counter)
    switch_s: list[float] = field(default_factory=list)
    routes: Counter[str] = field(default_factory=Counter)
    moderation: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, worker: int, report: dict[str, Any]) -> None:
        """One load generator's report (``bench.chat_load``'s or ``bench.relay_procs``')."""
        for group in GROUPS:
            part = report[group]
            frames, media = self.frames[group], self.media_s[group]
            for i, (n, s) in enumerate(zip(part["frames"], part["media_s"], strict=True)):
                frames[worker, i] = frames.get((worker, i), 0) + n
                media[worker, i] = media.get((worker, i), 0.0) + s
            self.latency_s[group].extend(part["latency_s"])
            for key in StreamWindow.TOTALS:
                self.counts[group][key] += part[key]
        self.send_lag_s.extend(report["send_lag_s"])
        self.receive_errors[worker] = report["receive_errors"]
        self.leg_transports[worker] = report.get("leg_transports", {})
        calls = report.get("calls")
        if calls is not None:
            for key in CALL_COUNTS:
                self.calls[key] += calls[key]
            self.switch_s.extend(calls["switch_s"])
            self.routes.update(calls["routes"])
            self.moderation.update(calls["moderation"])
            self.errors.extend(calls["errors"][: ERRORS_KEPT - len(self.errors)])

    def fps(self, group: str, min_media_s: float = MIN_MEDIA_S) -> list[float]:
        """Frames per second of each receiving stream over the call time it had in the span."""
        return [
            self.frames[group][key] / s
            for key, s in sorted(self.media_s[group].items())
            if s >= min_media_s
        ]

    def legs_by_transport(self) -> dict[str, int]:
        """Relay connections by nominated ICE pair protocol, over every worker."""
        total: Counter[str] = Counter()
        for legs in self.leg_transports.values():
            total.update(legs)
        return dict(total)

    def packets(self, group: str) -> Packets:
        return Packets(**self.counts[group])

    def call_counts(self) -> Calls:
        return Calls(**{key: self.calls[key] for key in CALL_COUNTS})


def packet_loss(sent: int, received: int) -> float | None:
    """Share of the packets sent that never arrived; None where senders are not counted.

    Senders and receivers are the same set of clients (both ends of every pair), so over a
    span of many frames the packets in flight at its edges are a rounding error; a negative
    difference (more arrived than were counted as sent) is that error, reported as 0.
    """
    if sent == 0:
        return None
    return max(0.0, 1.0 - received / sent)


def fps_summary(fps: Sequence[float]) -> FpsSummary:
    """Delivered frame rate over streams; full rate is >= ``FULL_RATE_FPS``."""
    return FpsSummary(
        streams=len(fps),
        mean=sum(fps) / len(fps) if fps else None,
        min=min(fps) if fps else None,
        p5=percentile(fps, 0.05),
        streams_at_full_rate=sum(f >= FULL_RATE_FPS for f in fps),
    )


def bottleneck(
    relay_cpu: float | None,
    loadgen_cpu: list[float],
    send_lag_p90_ms: float | None,
    relay_wait_pct: float,
) -> str:
    """Which side ran out of CPU: a process near one core, else the machine as a whole.

    "machine": neither process was busy, but the relay's loop waited for a CPU a fifth of
    the time, or senders were late as a rule (p90 and not p99 of the lag: one stall from
    other work makes a few frames late without anybody being short of CPU).
    """
    if relay_cpu is not None and relay_cpu >= 90:
        return "relay"
    if any(c >= 90 for c in loadgen_cpu):
        return "load generator"
    if relay_wait_pct >= 20 or (send_lag_p90_ms or 0.0) > 5:
        return "machine"
    return "none"
