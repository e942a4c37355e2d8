"""The benchmark's picture: frame rate and added latency against pairs, one curve per relay.

matplotlib is imported here only, with the Agg backend (no display on a server), so runs
without ``--plot`` never pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LABELS = {
    "forward": "relay route (chatguard forwarding relay)",
    "strict": "strict route (relayed and moderated)",
    "naive": "baseline: naive aiortc MediaRelay (decode + re-encode)",
}


def curves(cases: Sequence[dict[str, Any]]) -> dict[str, list[tuple[int, float, float]]]:
    """Per relay, (pairs, fps 5th percentile over streams, added latency p99 ms) sorted by pairs.

    A search measures loads out of order; a curve must be drawn in order of load. The frame
    rate drawn is the 5th percentile over streams: the mean hides the streams that stutter.
    A load that measured nothing (no stream long enough in a call, no latency sample) has no
    point: NaN would leave a log axis with nothing to scale.
    """
    out: dict[str, list[tuple[int, float, float]]] = {}
    for case in cases:
        point = (
            case["pairs"],
            case["delivered_fps"]["p5"],
            case["latency_ms"]["added"]["p99_ms"],
        )
        if math.isnan(point[1]) or math.isnan(point[2]):
            continue
        out.setdefault(case["relay"], []).append(point)
    return {relay: sorted(points) for relay, points in out.items()}


def plot_relay_cases(
    cases: Sequence[dict[str, Any]],
    path: Path,
    target: dict[str, Any],
    found: dict[str, Any] | None,
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, (fps_ax, lat_ax) = plt.subplots(1, 2, figsize=(10, 4.6), dpi=100)
    drawn = curves(cases)
    if not drawn:  # still a valid picture: the service levels, and axes a log scale accepts
        for ax in (fps_ax, lat_ax):
            ax.set_xlim(1, 2)
    for relay, points in drawn.items():
        pairs = [p[0] for p in points]
        label = LABELS.get(relay, relay)
        fps_ax.plot(pairs, [p[1] for p in points], marker="o", label=label)
        lat_ax.plot(pairs, [p[2] for p in points], marker="o", label=label)
    fps_ax.axhline(target["full_rate_fps"], color="grey", linestyle="--", label="service level")
    lat_ax.axhline(
        target["added_latency_p99_ms"], color="grey", linestyle="--", label="service level"
    )
    if found is not None and found["capacity_pairs"]:
        for ax in (fps_ax, lat_ax):
            ax.axvline(found["capacity_pairs"], color="green", linestyle=":", label="capacity")
    fps_ax.set(xlabel="pairs", ylabel="delivered fps, 5th percentile of streams")
    lat_ax.set(xlabel="pairs", ylabel="added latency p99 (ms, relayed - direct)")
    fps_ax.set_ylim(0, 32)
    lat_ax.set_yscale("symlog", linthresh=10)
    lat_ax.set_ylim(bottom=0)
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    for ax in (fps_ax, lat_ax):
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_formatter(plain)
        ax.yaxis.set_major_formatter(plain)
    handles, labels = fps_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
