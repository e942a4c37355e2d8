"""The relay workload's report: the summary table, call and moderation lines, the JSON, the plot."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Final

from bench.plot import plot_relay_cases
from bench.relay_clip import FPS
from bench.results import RelayCase, RelayResult
from bench.search_cli import describe_search
from bench.table import cell
from bench.workload import write_json


def table(cases: list[RelayCase]) -> str:
    """One row per case; a figure that was not measured is a dash."""
    head = (
        f"{'relay':7} {'ice':4} {'pairs':>5} {'streams':>7} {'fps mean/min':>13} {'full':>7} "
        f"{'relayed p50/p99 ms':>19} {'direct p50/p99':>15} {'added p50/p99':>14} "
        f"{'switch p50':>10} {'relay CPU':>9} {'CPU/stream':>10} {'str/core':>8} "
        f"{'KiB/sess':>8} {'loadgen CPU':>11} {'loss v/a':>13} {'saturated':>14} "
        f"{'pressure':>8}  service levels"
    )
    lines = [head, "-" * len(head)]
    for c in cases:
        lat, fps, loss = c.latency_ms, c.delivered_fps, c.packet_loss.relayed
        loadgen = "+".join(f"{x:.0f}" for x in c.loadgen_cpu_percent_of_core)
        lines.append(
            f"{c.relay:7} {c.transport:4} {c.pairs:5d} {c.one_way_streams:7d} "
            f"{cell(fps.mean, '6.1f')}/{cell(fps.min, '5.1f')} "
            f"{fps.streams_at_full_rate:>3d}/{fps.streams:<3d} "
            f"{cell(lat.relayed.p50_ms, '8.2f')}/{cell(lat.relayed.p99_ms, '8.2f')}  "
            f"{cell(lat.direct.p50_ms, '6.2f')}/{cell(lat.direct.p99_ms, '7.2f')}  "
            f"{cell(lat.added.p50_ms, '6.2f')}/{cell(lat.added.p99_ms, '6.2f')}  "
            f"{cell(c.switch_ms.p50_ms, '8.0f', 'ms')} "
            f"{cell(c.relay_cpu_percent_of_core, '8.1f', '%')} "
            f"{cell(c.relay_cpu_percent_per_stream, '9.2f', '%')} "
            f"{cell(c.streams_per_core_at_this_cost, '8.0f')} "
            f"{c.memory_per_session_kib:8.0f} {loadgen:>10}% "
            f"{_percent(loss.video, 100, '.2f'):>6}/{_percent(loss.audio, 100, '.2f'):>6} "
            f"{c.saturated:>14} {_percent(c.machine_cpu_pressure_percent, 1, '.0f'):>8}  "
            + ("; ".join(c.service_levels_missed) or "held")
        )
    return "\n".join(lines)


TRANSPORT_COLUMNS: Final[tuple[tuple[str, Callable[[RelayCase], float | None], str, str], ...]] = (
    ("CPU/stream", lambda c: c.relay_cpu_percent_per_stream, ".2f", "%"),
    ("added p50 ms", lambda c: c.latency_ms.added.p50_ms, ".2f", ""),
    ("added p99 ms", lambda c: c.latency_ms.added.p99_ms, ".2f", ""),
    ("fps mean", lambda c: c.delivered_fps.mean, ".1f", ""),
    ("video loss", lambda c: _scaled(c.packet_loss.relayed.video, 100), ".2f", "%"),
)
"""The figures :func:`transport_table` puts side by side: title, figure, format, unit."""
_SIDE: Final = 8
"""Width of one transport's figure in :func:`transport_table`."""


def transport_table(cases: list[RelayCase]) -> str | None:
    """UDP and TCP legs side by side at each load measured over both; None if there is none."""
    by_load: dict[tuple[str, int], dict[str, RelayCase]] = {}
    for c in cases:
        by_load.setdefault((c.relay, c.pairs), {})[c.transport] = c
    rows = [(key, both) for key, both in by_load.items() if {"udp", "tcp"} <= both.keys()]
    if not rows:
        return None
    group = 2 * _SIDE + 1
    head1 = f"{'':7} {'':>5}  " + "  ".join(f"{t:^{group}}" for t, *_ in TRANSPORT_COLUMNS)
    head2 = f"{'relay':7} {'pairs':>5}  " + "  ".join(
        f"{'udp':>{_SIDE}} {'tcp':>{_SIDE}}" for _ in TRANSPORT_COLUMNS
    )
    lines = [head1, head2, "-" * len(head2)]
    for (relay, pairs), both in rows:
        figures = "  ".join(
            " ".join(
                f"{cell(get(both[t]), f'{_SIDE - len(unit)}{spec}', unit)}" for t in ("udp", "tcp")
            )
            for _, get, spec, unit in TRANSPORT_COLUMNS
        )
        lines.append(f"{relay:7} {pairs:5d}  {figures}")
    return "\n".join(lines)


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else scale * value


def _percent(value: float | None, scale: float, spec: str) -> str:
    return cell(_scaled(value, scale), spec, "%").strip()


def report(result: RelayResult, args: argparse.Namespace) -> None:
    """The summary table, the search's answer, the JSON file and the plot."""
    print("\n" + table(result.cases))
    if (side_by_side := transport_table(result.cases)) is not None:
        print(
            "\nICE over UDP and over TCP, same loads (added latency: relayed minus direct "
            "pairs, which are UDP in both):\n" + side_by_side
        )
    for case in result.cases:
        calls = case.calls
        if calls.started:
            print(
                f"{case.relay} {case.pairs} pairs: {calls.started} calls started "
                f"({calls.reused} on a kept relay connection), "
                f"{calls.without_media} without media; routes {case.routes}"
                + (f"; errors: {case.errors[:3]}" if case.errors else "")
            )
        if (mod := case.worker_moderation) is not None:
            print(
                f"{case.relay} {case.pairs} pairs, the workers' own moderation figures: "
                f"{mod.classified_per_s:.1f} classifications/s, gate p50 "
                f"{cell(mod.gate_p50_ms_median_second, '.1f')} ms (median second), p99 "
                f"{cell(mod.gate_p99_ms_worst_second, '.1f')} ms (worst second), "
                f"{mod.no_verdict} without verdict"
            )
    load = " ".join(f"{x:.2f}" for x in result.loadavg_end or ())
    print(
        f"\nload average at end: {load}; pressure: share of the measured "
        "time some task on the machine waited for a CPU (Linux PSI); switch: pairing to the "
        "new partner's first frame"
    )
    if result.search is not None:
        print(describe_search(result.search, f"{result.benchmark} route"))
    write_json(result, args.json)
    print(f"results written to {args.json}")
    if args.plot is not None:
        clip = result.clip
        title = (
            f"chatguard bench {result.benchmark}: {clip.width}x{clip.height}@{FPS} "
            f"{clip.codec.upper()}{' + Opus' if clip.audio else ''}, both directions, "
            f"Next after {_dwell_text(args.next_after)}"
        )
        plot_relay_cases(result.cases, args.plot, result.target, result.search, title)
        print(f"plot written to {args.plot}")


def _dwell_text(dwell: tuple[float, float] | None) -> str:
    return "never" if dwell is None else f"{dwell[0]:g}-{dwell[1]:g} s"
