"""Reports counted by the nodes of a pool together: reports about one person filed through
different nodes add up to the ban that `[reports] reporters_to_ban` sets, as on one node.

As for strikes (``signaling.cluster.bans``), the count that answers a report at once stays
local and synchronous: this log counts a report on top of the reporters Redis last said, and
lists the reports filed here for the node to hand to Redis. In Redis a reported device's
reporters are one sorted set (reporter device -> when, in Unix milliseconds), changed by one
atomic script: reports older than the window go, the reporter is added unless it is there
already (a repeat counts once, whichever node it came through), the key expires a window after
the last report, and the whole set is published so that each node's log mirrors it. The node
whose report brought Redis's count to the limit bans, even if its own count had not.
"""

from __future__ import annotations

from dataclasses import dataclass

from signaling.reports import ReportLog, ReportOutcome, ReportRecord
from signaling.strikes import Person

REPORT_SCRIPT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], 'NX', now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
local reporters = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
redis.call('PUBLISH', ARGV[4], cjson.encode({ARGV[5], reporters}))
return reporters
"""
"""One report, atomically: KEYS[1] the reported device's set; ARGV now (Unix ms), window (ms),
reporter, channel, reported device. Returns and publishes [reporter, ms, reporter, ms, ...]."""


@dataclass(frozen=True, slots=True)
class FiledReport:
    """A report filed here, for Redis's count."""

    reported: Person
    session: str
    """The reported session, for the ban's operator event should Redis's count ban it."""
    reporter: str
    """The reporter's device key."""


class SharedReportLog(ReportLog):
    """A ``ReportLog`` whose reporters are the pool's (monotonic clock, as its own)."""

    def __init__(self, reporters_to_ban: int, window_s: float) -> None:
        super().__init__(reporters_to_ban, window_s)
        self._filed_here: list[FiledReport] = []

    def record(
        self, report: ReportRecord, reporter_key: str, reported: Person, now: float
    ) -> ReportOutcome:
        outcome = super().record(report, reporter_key, reported, now)
        if outcome.counted and reported.device:  # a repeat, or no device: nothing to share
            self._filed_here.append(FiledReport(reported, report.reported, reporter_key))
        return outcome

    def mirrored(self, device: str, reporters: list[str], now: float, now_unix: float) -> None:
        """Redis's reporters of `device`, as the script returns them ([reporter, Unix ms,
        ...]): counted here too, at their times on this node's clock."""
        known = self._reporters_of(device)
        for reporter, at_ms in zip(reporters[::2], reporters[1::2], strict=True):
            known.setdefault(reporter, now - (now_unix - float(at_ms) / 1000))

    def reaches_limit(self, reporters: int) -> bool:
        return reporters >= self._limit

    def forget(self, device: str) -> None:
        """`device` is banned: the ban settles its reports (as when a ban is made here)."""
        self._reporters.pop(device, None)

    def drain_filed_here(self) -> list[FiledReport]:
        out, self._filed_here = self._filed_here, []
        return out
