"""Abuse reports: metadata only (who, whom, when, why), counted per reported user.

Reports never hold media. The per-user count is what later moderation acts on (strikes, bans),
so it is kept even after the reporter and the reported have left.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReportRecord:
    reporter: str
    """Session id of the user who pressed Report."""
    reported: str
    """Session id of the partner being reported."""
    at_unix: float
    """Wall-clock time of the report."""
    reason: str
    """Free text chosen by the reporter (bounded by the protocol)."""


class ReportLog:
    """Recent reports in a bounded window, and a count per reported user."""

    def __init__(self, keep_last: int = 10_000) -> None:
        self._recent: deque[ReportRecord] = deque(maxlen=keep_last)
        self._counts: Counter[str] = Counter()

    def record(self, report: ReportRecord) -> int:
        """Store a report; returns how often this user has now been reported."""
        self._recent.append(report)
        self._counts[report.reported] += 1
        return self._counts[report.reported]

    def count_for(self, user: str) -> int:
        return self._counts[user]

    def recent(self) -> list[ReportRecord]:
        return list(self._recent)

    @property
    def total(self) -> int:
        return self._counts.total()
