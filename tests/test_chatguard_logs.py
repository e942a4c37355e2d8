"""The JSON log format: one object per line, UTC timestamps whatever the machine's zone,
structured event data kept as data."""

from __future__ import annotations

import json
import logging
import sys
import time

import pytest

from chatguard.logs import JsonLines


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("chatguard.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    made.created, made.msecs = 86_400.25, 250.0  # 1970-01-02 00:00:00.250 UTC
    return made


def test_a_line_is_one_json_object_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # local time would read 09:00
    time.tzset()
    try:
        line = JsonLines().format(record("call %s: %d legs", "abc", 2, event={"decision": "x"}))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "1970-01-02T00:00:00.250Z",
        "level": "warning",
        "logger": "chatguard.test",
        "message": "call abc: 2 legs",
        "pid": record("").process,
        "event": {"decision": "x"},
    }


def test_a_traceback_stays_inside_its_line() -> None:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    line = JsonLines().format(made)
    assert "\n" not in line
    assert "ValueError: broken\nacross lines" in json.loads(line)["exception"]
