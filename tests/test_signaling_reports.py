"""Reports that act, without sockets: distinct reporters within a window ban a device."""

from __future__ import annotations

import itertools
import logging
import random

import pytest

from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.config import ConfigError, config_from_mapping
from signaling.matchmaking import Matchmaker
from signaling.reports import ReportLog, ReportRecord
from signaling.route_policy import Route, RoutePolicy
from signaling.strikes import Person


def record(log: ReportLog, reporter: str, reported: str, now: float) -> tuple[bool, int, bool]:
    report = ReportRecord(reporter, reported, now, "spam")
    outcome = log.record(report, reporter, Person(reported, ""), now)
    return outcome.counted, outcome.reporters, outcome.ban


def test_distinct_reporters_within_the_window_ban() -> None:
    log = ReportLog(reporters_to_ban=3, window_s=100)
    assert record(log, "r1", "x", 0) == (True, 1, False)
    assert record(log, "r1", "x", 10) == (False, 1, False)  # the same reporter counts once
    assert record(log, "r2", "x", 20) == (True, 2, False)
    assert record(log, "r3", "y", 30) == (True, 1, False)  # about someone else
    assert record(log, "r3", "x", 40) == (True, 3, True)
    assert record(log, "r4", "x", 50) == (True, 1, False)  # the ban settled the earlier ones
    assert log.count_for("x") == 5 and log.total == 6


def test_reports_older_than_the_window_expire() -> None:
    log = ReportLog(reporters_to_ban=2, window_s=100)
    record(log, "r1", "x", 0)
    assert record(log, "r2", "x", 100) == (True, 1, False)
    assert record(log, "r1", "x", 150) == (True, 2, True)


def test_no_one_reports_themselves_and_no_one_bans_alone() -> None:
    log = ReportLog(reporters_to_ban=2, window_s=100)
    assert record(log, "x", "x", 0) == (False, 0, False)
    with pytest.raises(ConfigError, match="no one bans alone"):
        config_from_mapping({"reports": {"reporters_to_ban": 1}})


def make_hub() -> SignalingHub:
    config = config_from_mapping({"reports": {"reporters_to_ban": 2, "ban_s": 600}})
    counter = itertools.count()
    return SignalingHub(
        config,
        RoutePolicy(config.regions, Route.DIRECT),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
        new_id=lambda: f"id{next(counter)}",
    )


def pair_with(hub: SignalingHub, device: str, offender: str, now: float) -> str:
    """A fresh client (on the same address as everyone) paired with `offender`."""
    reporter = hub.connect("default", now, now, address="10.0.0.9", device=device)
    hub.receive(reporter, p.Join(), now, now)
    hub.receive(offender, p.Join(), now, now)
    paired = [m for to, m in hub.drain_outbox() if to == reporter and isinstance(m, p.Paired)]
    assert paired, "the reporter was not paired with the offender"
    return reporter


def report_partner(hub: SignalingHub, device: str, offender: str, now: float) -> None:
    reporter = pair_with(hub, device, offender, now)
    hub.receive(reporter, p.Report(reason="harassment"), now, now)
    hub.disconnect(reporter, now)


def test_the_hub_bans_the_reported_device_at_the_threshold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = make_hub()
    offender = hub.connect("default", 0, 0, address="10.0.0.9", device="dev-x")
    caplog.set_level(logging.INFO, "chatguard.signaling")
    report_partner(hub, "dev-1", offender, 0)
    assert hub.drain_closes() == []
    report_partner(hub, "dev-1", offender, 100)  # same device, new session: not counted
    assert hub.drain_closes() == []
    reporter = pair_with(hub, "dev-2", offender, 200)
    hub.receive(reporter, p.Report(reason="harassment"), 200, 200)
    assert hub.drain_closes() == [(offender, p.CLOSE_BANNED)]
    sent = hub.drain_outbox()
    banned = [m for to, m in sent if to == offender and isinstance(m, p.Banned)]
    assert banned and banned[0].reason == "reported by 2 people"
    # out of play at once, before its socket is closed: only the reporter waits, so nobody
    # who is waiting can be paired with the banned device meanwhile
    assert hub.snapshot()["waiting"] == 1
    assert not [m for to, m in sent if to == offender and isinstance(m, (p.Paired, p.Waiting))]
    assert "a repeat from this reporter, not counted" in caplog.text
    assert f"reports: {offender} banned until" in caplog.text
    # the device is refused at the door; the shared address (the reporters' too) is not
    assert hub.banned_until("10.0.0.9", "dev-x", 300) == 800
    assert hub.banned_until("10.0.0.9", "dev-1", 300) is None
    assert hub.banned_until("10.0.0.9", "dev-x", 801) is None
    # each report and the ban are operator events: the reports a person's, the ban automatic
    events = hub.drain_events()
    assert [(e.decision, e.automated, e.subject) for e in events] == [
        ("report", False, offender), ("report", False, offender), ("report", False, offender),
        ("ban", True, offender),
    ]  # fmt: skip
    assert events[0].ground.report_reason == "harassment"
    assert [e.ground.reporters for e in events] == [1, 1, 2, 2] and events[3].ban_s == 600


def test_the_log_names_sessions_not_the_address_a_person_is_known_by(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = make_hub()
    offender = hub.connect("default", 0, 0, address="10.0.0.7")  # no device id: its address
    caplog.set_level(logging.INFO, "chatguard.signaling")
    report_partner(hub, "dev-1", offender, 0)
    report_partner(hub, "dev-2", offender, 10)
    assert hub.drain_closes() == [(offender, p.CLOSE_BANNED)]
    assert f"reports: {offender} banned until" in caplog.text
    assert "10.0.0.7" not in caplog.text


def test_reporters_are_told_apart_by_device_then_address() -> None:
    assert Person.of("10.0.0.1", "abc").device == "dev:abc"
    assert Person.of("10.0.0.1", "").device == "addr:10.0.0.1"
    assert Person.of("", "").device == ""  # the hub then falls back to the session
