"""The browser probe's own arithmetic, without a browser: stamps read back what was stamped (and
a flipped block is unreadable, never misread), and the summary's rates, the partner's direction
included."""

from __future__ import annotations

from bench.strict_browser_probe import (
    INDEX_BITS,
    is_unsafe,
    loop_length,
    read_stamp,
    stamp_bits,
    summarize,
    unsafe_run_starts,
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
