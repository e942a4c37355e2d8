"""Capacity search: the largest load (pairs) at which a service still holds its service levels.

Each workload states its own service levels (:class:`Levels`: a frozen dataclass of thresholds,
the options that set them, what its load counts, and which levels a measurement misses);
:class:`ServiceLevels` are the media relay's, the signaling and strict workloads keep theirs next
to the figures they judge (``bench.signaling_bench``, ``bench.strict_bench``).

Sans-I/O on purpose: :class:`CapacitySearch` only says which load to measure next and learns
whether it held; the caller measures (a real relay, or a simulated service in the tests). So
the search itself is tested against a service whose capacity is known, and a wrong figure
fails a test instead of going into a README.

Strategy: ramp up geometrically while the levels hold (few probes to get the order of
magnitude), then bisect between the last load that held and the first that did not until they
are within ``resolution`` of each other. If the very first load fails, back off towards 1 the
same way.

A load counts as failed only after it failed ``failures_to_confirm`` times: on a shared
machine one burst of other work makes one measurement miss its latency level, and a search
that believed it would bisect down to a fraction of the real capacity (seen here: 4 pairs
missed once at p99 17 ms on a relay that carries 100).

It stops by itself when the next probe would not fit in the time budget, or at
``max_pairs``; the answer is then the largest load that held so far.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from bench.stats import percentile


@dataclass(frozen=True)
class LevelOption:
    """One service level as a command-line option: ``--NAME`` sets the levels' ``field``.

    Every level is a positive number; a ``fraction`` (a share of streams) is also at most 1.
    """

    name: str
    field: str
    help: str
    fraction: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class Load:
    """What a workload's load (its ``--pairs``) counts, for the search's words and limits.

    ``each``: what one unit is in the unit a reader sizes by (a relay pair is 2 one-way
    streams; a signaling pair is 2 clients), or None. ``max_default``: ``--max-pairs``'s
    default, about twice what the workload's target asks of one machine.
    """

    unit: str
    each: tuple[int, str] | None
    max_default: int

    def text(self, n: int) -> str:
        """``n`` loads in words, e.g. "176 pairs (352 one-way streams)"."""
        if self.each is None:
            return f"{n} {self.unit}"
        per, other = self.each
        return f"{n} {self.unit} ({per * n} {other})"


class Levels(Protocol):
    """A workload's service levels: a frozen dataclass of thresholds (its JSON form).

    Each also has a ``failures`` method (which levels a measurement misses, in words; empty if
    it holds), not part of this protocol because each judges its own figures: frame rates,
    latency percentiles, leaks. The search only needs its answer (``SearchStep.missed``).
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]
    OPTIONS: ClassVar[tuple[LevelOption, ...]]
    LOAD: ClassVar[Load]

    def words(self) -> str:
        """The levels as the end of "capacity: N pairs holding ...", for the search's answer."""
        ...


@dataclass(frozen=True)
class ServiceLevels:
    """The media relay's levels; the defaults are the issue's: >= 29 fps for 99 % of streams."""

    min_fps: float = 29.0
    stream_fraction: float = 0.99
    added_p99_ms: float = 5.0

    OPTIONS: ClassVar[tuple[LevelOption, ...]] = (
        LevelOption("min-fps", "min_fps", "delivered frame rate per stream"),
        LevelOption(
            "stream-fraction", "stream_fraction", "share of streams that must reach --min-fps", True
        ),
        LevelOption(
            "max-added-p99-ms",
            "added_p99_ms",
            "p99 latency the route adds over direct, in ms (the route's target)",
        ),
    )
    LOAD: ClassVar[Load] = Load("pairs", (2, "one-way streams"), 500)

    def words(self) -> str:
        return (
            f">= {self.min_fps:g} fps for {100 * self.stream_fraction:g}% of streams and "
            f"added latency p99 < {self.added_p99_ms:g} ms"
        )

    def failures(self, fps_per_stream: Sequence[float], added_p99_ms: float | None) -> list[str]:
        """Which levels a measurement misses, in words; empty if it holds.

        Why words: the search log and the JSON say why a load failed (frame rate or latency),
        which is what an engineer sizing a deployment needs next.
        """
        misses = []
        if not fps_per_stream:
            return ["no streams delivered anything"]
        at_rate = sum(f >= self.min_fps for f in fps_per_stream) / len(fps_per_stream)
        if at_rate < self.stream_fraction:
            misses.append(
                f"{100 * at_rate:.1f}% of streams at >= {self.min_fps:g} fps "
                f"(need {100 * self.stream_fraction:g}%; p1 "
                f"{percentile(fps_per_stream, 0.01) or 0.0:.1f} fps)"
            )
        if added_p99_ms is None:
            misses.append("no added latency measured (no frame arrived)")
        elif not added_p99_ms < self.added_p99_ms:
            misses.append(f"added latency p99 {added_p99_ms:.2f} ms >= {self.added_p99_ms:g} ms")
        return misses


@dataclass(frozen=True)
class Probe:
    pairs: int
    holds: bool
    seconds: float


@dataclass
class CapacitySearch:
    """Which number of pairs to measure next; see the module docstring for the strategy."""

    start: int = 4
    factor: float = 2.0
    max_pairs: int = 1000
    resolution: float = 0.1
    """Stop bisecting when the gap is at most this fraction of the good load (and at least 1)."""
    budget_s: float = 420.0
    failures_to_confirm: int = 2
    probes: list[Probe] = field(default_factory=list)
    stop_reason: str = ""

    def __post_init__(self) -> None:
        if self.start < 1 or self.max_pairs < self.start:
            raise ValueError("need 1 <= start <= max_pairs")
        if self.factor <= 1 or not 0 <= self.resolution < 1 or self.budget_s <= 0:
            raise ValueError("need factor > 1, 0 <= resolution < 1, budget_s > 0")
        if self.failures_to_confirm < 1:
            raise ValueError("need failures_to_confirm >= 1")

    @property
    def good(self) -> int:
        """The largest load that held (0: none did)."""
        return max((p.pairs for p in self.probes if p.holds), default=0)

    @property
    def bad(self) -> int | None:
        """The smallest load above ``good`` whose failure is confirmed (None: none yet)."""
        confirmed = [
            n for n, count in self._failures().items() if count >= self.failures_to_confirm
        ]
        return min(confirmed, default=None)

    def _failures(self) -> dict[int, int]:
        """Failed measurements per load above ``good`` (a load that held once is good)."""
        good = self.good
        counts: dict[int, int] = {}
        for p in self.probes:
            if not p.holds and p.pairs > good:
                counts[p.pairs] = counts.get(p.pairs, 0) + 1
        return counts

    def record(self, pairs: int, holds: bool, seconds: float) -> None:
        self.probes.append(Probe(pairs, holds, seconds))

    def next_pairs(self, elapsed_s: float) -> int | None:
        """The next load to measure, or None when the search is over (``stop_reason`` says why).

        ``elapsed_s``: time spent so far; the next probe is assumed to take as long as the
        longest one so far, and is skipped if that would overrun the budget.
        """
        candidate = self._candidate()
        if candidate is None:
            return None
        longest = max((p.seconds for p in self.probes), default=0.0)
        if elapsed_s + longest > self.budget_s:
            self.stop_reason = f"time budget ({self.budget_s:g} s) reached"
            return None
        return candidate

    def _candidate(self) -> int | None:
        if not self.probes:
            return self.start
        good, bad = self.good, self.bad
        unconfirmed = [n for n in self._failures() if bad is None or n < bad]
        if unconfirmed:  # measure it again before believing it
            return min(unconfirmed)
        if bad is None:  # still ramping up
            if good >= self.max_pairs:
                self.stop_reason = f"held at --max-pairs {self.max_pairs}"
                return None
            return min(self.max_pairs, max(good + 1, math.ceil(good * self.factor)))
        if bad - good <= max(1.0, self.resolution * good):
            self.stop_reason = (
                f"capacity bracketed: {good} held, {bad} did not"
                if good
                else f"even {bad} did not hold"
            )
            return None
        return (good + bad) // 2  # with good == 0 this backs off by halving


def search(
    measure: Callable[[int], bool],
    strategy: CapacitySearch,
    clock: Callable[[], float],
) -> int:
    """Drive ``strategy`` with ``measure(pairs) -> holds``; returns the capacity in pairs."""
    started = clock()
    while (pairs := strategy.next_pairs(clock() - started)) is not None:
        t0 = clock()
        holds = measure(pairs)
        strategy.record(pairs, holds, clock() - t0)
    return strategy.good
