"""Reports shared by the nodes of a pool, the log's rules alone (the nodes' side is in
``test_signaling_cluster_nodes``): a report counts on top of the reporters Redis last said."""

from __future__ import annotations

from signaling.cluster.reports import FiledReport, SharedReportLog
from signaling.reports import ReportRecord
from signaling.strikes import Person

RUDE = Person.of("192.0.2.7", "rude")


def report(log: SharedReportLog, reporter: str, now: float) -> tuple[bool, int, bool]:
    outcome = log.record(ReportRecord(reporter, "s-rude", now, "spam"), reporter, RUDE, now)
    return outcome.counted, outcome.reporters, outcome.ban


def test_a_report_counts_on_top_of_the_pools_reporters() -> None:
    log = SharedReportLog(reporters_to_ban=3, window_s=100)
    # reported through another node 10 s ago (Unix 990 where this node's clock says 40)
    log.mirrored(RUDE.device, ["dev:r1", "990000"], now=50, now_unix=1000)
    assert report(log, "dev:r1", now=51) == (False, 1, False)  # a repeat: counts once
    assert report(log, "dev:r2", now=52) == (True, 2, False)
    assert report(log, "dev:r3", now=139) == (True, 3, True)
    assert report(log, "dev:r4", now=141) == (True, 1, False)  # settled by the ban
    assert log.drain_filed_here() == [
        FiledReport(RUDE, "s-rude", reporter) for reporter in ("dev:r2", "dev:r3", "dev:r4")
    ]
    assert log.drain_filed_here() == []


def test_the_pools_reporters_leave_with_the_window_and_with_a_ban() -> None:
    log = SharedReportLog(reporters_to_ban=2, window_s=100)
    log.mirrored(RUDE.device, ["dev:r1", "900000"], now=100, now_unix=1000)  # 100 s ago
    assert report(log, "dev:r2", now=100) == (True, 1, False)
    log.mirrored(RUDE.device, ["dev:r3", "999000"], now=100, now_unix=1000)
    log.forget(RUDE.device)  # banned on another node
    assert report(log, "dev:r4", now=101) == (True, 1, False)
    assert log.reaches_limit(2) and not log.reaches_limit(1)


def test_a_report_without_a_device_is_not_shared() -> None:
    log = SharedReportLog(reporters_to_ban=2, window_s=100)
    log.record(ReportRecord("s-1", "s-2", 0, "spam"), "dev:r1", Person("", ""), 0)
    assert log.drain_filed_here() == []
