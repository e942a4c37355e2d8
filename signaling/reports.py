"""Abuse reports: metadata only (who, whom, when, why), and the rule that turns them into bans.

Reports never hold media. The rule: reports about one device from `reporters_to_ban` distinct
reporters within `window_s` ban that device. Reporters are told apart by their device id, so one
person cannot ban someone alone (the limit is at least 2) and reporting the same person twice
counts once. Sans-I/O: the caller passes the clock and carries out the ban.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import msgspec

from signaling.strikes import Person


@dataclass(frozen=True, slots=True)
class ReportRecord:
    reporter: str
    """Session id of the user who pressed Report."""
    reported: str
    """Session id of the partner being reported."""
    at_unix: float
    """Wall-clock time of the report."""
    reason: str
    """The reason the reporter chose (bounded by the protocol)."""


class OpenReport(msgspec.Struct, kw_only=True):
    """A report as the admin listener lists it while it counts towards a ban (metadata only:
    session ids, never a device id or an address)."""

    id: str
    time: str
    """ISO 8601, UTC."""
    reporter: str
    """Session id of the user who pressed Report."""
    reported: str
    """Session id of the partner being reported."""
    call: str
    """The pair id of the call it was filed from."""
    reason: str
    reporters: int
    """Distinct reporters of the reported device within the window, this one included."""
    counted: bool
    """False when this reporter had already reported this device within the window."""
    ban: bool
    """This report reached the limit and banned the reported device."""


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    counted: bool
    """False when this reporter had already reported this device within the window."""
    reporters: int
    """Distinct reporters of this device within the window, this one included."""
    ban: bool
    """This report reached the limit: the reported device is to be banned now."""


class ReportLog:
    """A count per reported session, and per reported device the distinct reporters within
    the time window (bounded; the admin listener's list is ``signaling.recent_records``)."""

    def __init__(self, reporters_to_ban: int, window_s: float, keep_last: int = 10_000) -> None:
        self._limit = reporters_to_ban
        self._window_s = window_s
        self._keep_last = keep_last
        self._counts: Counter[str] = Counter()
        self._reporters: dict[str, dict[str, float]] = {}
        """Reported device -> reporter device -> when it reported (monotonic clock)."""

    def record(
        self, report: ReportRecord, reporter_key: str, reported: Person, now: float
    ) -> ReportOutcome:
        """Store a report. `reporter_key` names the reporter's device, `reported` the reported
        person (each a session id where a client gave no device id and no address)."""
        self._counts[report.reported] += 1
        reported_key = reported.device or report.reported
        reporters = self._reporters_of(reported_key)
        for key, at in list(reporters.items()):
            if at <= now - self._window_s:
                del reporters[key]
        counted = reporter_key not in reporters and reporter_key != reported_key
        if counted:
            reporters[reporter_key] = now
        ban = counted and len(reporters) >= self._limit
        if ban:
            del self._reporters[reported_key]  # the ban settles these reports
        return ReportOutcome(counted, len(reporters), ban)

    def _reporters_of(self, reported_key: str) -> dict[str, float]:
        """The reporters of `reported_key` (created if none), now the most recently used."""
        reporters = self._reporters.pop(reported_key, {})
        self._reporters[reported_key] = reporters
        while len(self._reporters) > self._keep_last:  # bounded: a service runs for weeks
            del self._reporters[next(iter(self._reporters))]
        return reporters

    def count_for(self, user: str) -> int:
        return self._counts[user]

    @property
    def total(self) -> int:
        return self._counts.total()
