"""The browser probe's own arithmetic, without a browser: stamps read back what was stamped (and
a flipped block is unreadable, never misread), and the summary's rates, the partner's direction
included."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bench.strict_browser_probe import (
    INDEX_BITS,
    decision_events,
    is_unsafe,
    leak_trace,
    loop_length,
    read_stamp,
    stamp_bits,
    summarize,
    unsafe_run_starts,
    unsafe_run_times,
)


def test_every_stamp_reads_back_and_a_flipped_block_is_unreadable() -> None:
    for index in range(1 << INDEX_BITS):
        bits = stamp_bits(index)
        assert read_stamp(bits) == index
        for i in range(len(bits)):
            flipped = [b ^ (j == i) for j, b in enumerate(bits)]
            assert read_stamp(flipped) != index


def test_the_loop_is_ten_seconds_with_two_unsafe_scenes() -> None:
    assert loop_length() == 300
    unsafe = [i for i in range(loop_length()) if is_unsafe(i)]
    assert unsafe == [*range(90, 150), *range(240, 300)]
    assert is_unsafe(300 + 100) and not is_unsafe(300 + 10)


def test_the_summary_takes_rates_over_the_second_half() -> None:
    samples = [
        {
            "t": float(t),
            "width": 640,
            "height": 480,
            "frames_encoded": 30 * t,
            "bytes_sent": 100_000 * t,
            "keyframes": t // 2,
            "limitation": "none" if t < 8 else "bandwidth",
            "available_outgoing": 1_000_000,
            "frames_decoded": 5 * t if t < 5 else 25 + 4 * (t - 5),
            "receiver_plis": t // 4,
        }
        for t in range(10)
    ]
    summary = summarize(samples)
    assert (summary["width"], summary["height"], summary["fps"]) == (640, 480, 30.0)
    assert summary["kbit_s"] == 800
    assert summary["limitation"] == {"none": 3, "bandwidth": 2}
    assert summary["partner_fps"] == 4.0
    assert summary["receiver_plis"] == 9 // 4 - 5 // 4
    assert summarize(samples[:1]) == {}  # too few samples for a rate


def test_runs_of_unsafe_frames_are_named_by_where_they_start() -> None:
    assert unsafe_run_starts([240, 241, 242, 95, 96]) == [95, 240]


def test_a_leak_is_timed_from_its_first_frame_at_the_page() -> None:
    indices = [88, 89, None, 90, 91, 149, 150, 240]
    times = [float(t) for t in range(len(indices))]
    # 90 starts a run after a safe frame, 240 after 150 (safe); an unreadable frame between
    # a safe and an unsafe one does not hide the start
    assert unsafe_run_times(indices, times) == [3.0, 7.0]
    assert unsafe_run_times([], []) == []


def _line(at: str, event: dict[str, object], logger: str = "relay.strict.decisions") -> str:
    message = f"stream 1 {event['kind']} {event.get('frame', '')}"
    return json.dumps({"time": at, "logger": logger, "message": message, "event": event})


def test_the_leak_trace_keeps_verdicts_and_decisions_before_the_leak_not_plain_cover() -> None:
    covered = {"kind": "frame", "frame": 5, "inputs": ["COVERED"], "actions": ["release 5"]}
    cut = {"kind": "frame", "frame": 4, "inputs": ["DELTA"], "actions": ["classify 4 scene"]}
    safe = {"kind": "verdict", "frame": 4, "inputs": ["SAFE_ON_HELD"], "actions": ["release 4"]}
    lines = [
        _line("2026-12-07T09:00:00.000Z", cut),  # 4 s before the leak: too early
        _line("2026-12-07T09:00:02.000Z", cut),
        _line("2026-12-07T09:00:02.500Z", safe),
        _line("2026-12-07T09:00:03.000Z", covered),
        "not json " + "relay.strict.decisions",
        _line("2026-12-07T09:00:03.000Z", covered, logger="relay.worker"),
        '{"time": "2026-12-07T09:00:03.000Z", "logger": "chatguard.serve", "message": "up"}',
    ]
    events = decision_events(lines)
    assert [e[2]["kind"] for e in events] == ["frame", "frame", "verdict", "frame"]
    leak_at = datetime(2026, 12, 7, 9, 0, 4, tzinfo=UTC).timestamp()
    trace = leak_trace(events, [leak_at])
    assert trace == [
        f"-- a run of unsafe frames reached the page at {leak_at:.3f}",
        "-2.000 stream 1 frame 4",
        "-1.500 stream 1 verdict 4",
        "-- and 1 frames released on cover in that window",
    ]
    assert leak_trace(events, []) == []
