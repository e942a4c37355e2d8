"""The benchmarks' pictures: each workload's figures against its load, one point per case.

Every picture is a row of :class:`Panel` s drawn by :func:`draw`; each workload only says which
figures go into which panel (and the service level each must stay under, or above), so the
pictures read alike and the drawing code exists once. The data each panel shows is picked
from the cases (``bench.results``) by plain functions (:func:`curves`, :func:`signaling_curves`,
:func:`strict_curves`), tested without matplotlib; a figure that was not measured (None) is a
gap in its curve.

matplotlib is imported in :func:`draw` only, with the Agg backend (no display on a server), so
runs without ``--plot`` never pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

from bench.results import (
    RelayCase,
    RelayResult,
    RelayTarget,
    SearchResult,
    SignalingCase,
    StrictRun,
)

LABELS = {
    "forward": "relay route (chatguard forwarding relay)",
    "strict": "strict route (relayed and moderated)",
    "naive": "baseline: naive aiortc MediaRelay (decode + re-encode)",
    "forward/tcp": "relay route, users over ICE-TCP",
    "strict/tcp": "strict route, users over ICE-TCP",
}

Points = list[tuple[float, float]]
C = TypeVar("C")


@dataclass(frozen=True)
class Panel:
    """One chart: curves (label -> (load, value) points, in order of load) and the service
    level the curves are judged against (a dashed line), if any."""

    ylabel: str
    curves: Mapping[str, Sequence[tuple[float, float]]]
    level: float | None = None
    latency: bool = False
    """Milliseconds spanning orders of magnitude (an overloaded case): a symlog y axis."""
    top: float | None = None


def _gap(value: float | None) -> float:
    return math.nan if value is None else value


def points(cases: Sequence[C], x: Callable[[C], float], y: Callable[[C], float | None]) -> Points:
    """(x(case), y(case)) per case, in order of load: a search measures loads out of order."""
    return sorted(((x(case), _gap(y(case))) for case in cases), key=lambda p: p[0])


def curves(cases: Sequence[RelayCase]) -> dict[str, list[tuple[int, float, float]]]:
    """Per relay (and transport, where not UDP: ``forward/tcp``), (pairs, fps 5th percentile
    over streams, added latency p99 ms) sorted by pairs.

    The frame rate drawn is the 5th percentile over streams: the mean hides the streams that
    stutter.
    """
    out: dict[str, list[tuple[int, float, float]]] = {}
    for case in cases:
        point = (
            case.pairs,
            _gap(case.delivered_fps.p5),
            _gap(case.latency_ms.added.p99_ms),
        )
        key = case.relay if case.transport == "udp" else f"{case.relay}/{case.transport}"
        out.setdefault(key, []).append(point)
    return {relay: sorted(pts, key=lambda p: p[0]) for relay, pts in out.items()}


def signaling_curves(cases: Sequence[SignalingCase]) -> dict[str, Points]:
    """Pairing latency p50/p99 (ms) and pairs per second against requested clients."""

    def clients(c: SignalingCase) -> float:
        return c.clients_requested

    return {
        "p50": points(cases, clients, lambda c: c.pairing_latency.p50_ms),
        "p99": points(cases, clients, lambda c: c.pairing_latency.p99_ms),
        "pairs/s": points(cases, clients, lambda c: c.pairs_per_second),
    }


def strict_curves(cases: Sequence[StrictRun]) -> dict[str, Points]:
    """Gate latency p50/p99 (ms, every frame), the verdict wait's p99 (ms, the service
    level's), decided fps (slowest stream, mean) and CPU per stream (%) against moderated
    streams."""

    def streams(c: StrictRun) -> float:
        return c.streams

    return {
        "p50": points(cases, streams, lambda c: c.gate_latency.p50_ms),
        "p99": points(cases, streams, lambda c: c.gate_latency.p99_ms),
        "verdict p99": points(cases, streams, lambda c: c.verdict_wait.p99_ms),
        "slowest stream": points(
            cases, streams, lambda c: min(c.decided_fps_by_stream, default=None)
        ),
        "mean": points(cases, streams, lambda c: c.decided_fps_per_stream),
        "cpu": points(cases, streams, lambda c: c.cpu_per_stream_pct),
    }


def plot_relay_cases(
    cases: Sequence[RelayCase],
    path: Path,
    target: RelayTarget,
    found: SearchResult | None,
    title: str,
) -> None:
    by_relay = curves(cases)
    fps = {LABELS.get(r, r): [(p[0], p[1]) for p in pts] for r, pts in by_relay.items()}
    added = {LABELS.get(r, r): [(p[0], p[2]) for p in pts] for r, pts in by_relay.items()}
    draw(
        [
            Panel("delivered fps, 5th percentile of streams", fps, target.full_rate_fps, top=32),
            Panel(
                "added latency p99 (ms, relayed - direct)",
                added,
                target.added_latency_p99_ms,
                latency=True,
            ),
        ],
        "pairs",
        title,
        found.capacity if found else None,
        path,
    )


def plot_signaling_cases(
    cases: Sequence[SignalingCase], path: Path, max_p99_ms: float, capacity_clients: int | None
) -> None:
    c = signaling_curves(cases)
    latency = {"pairing latency p50": c["p50"], "pairing latency p99": c["p99"]}
    draw(
        [
            Panel("pairing latency (ms)", latency, max_p99_ms, latency=True),
            Panel("pairs per second (measured, churn through Next)", {"pairs/s": c["pairs/s"]}),
        ],
        "concurrent clients",
        "chatguard bench signaling: join, pair, offer/answer/candidates, Next",
        capacity_clients,
        path,
    )


def plot_strict_cases(
    cases: Sequence[StrictRun],
    path: Path,
    min_fps: float,
    max_gate_p99_ms: float,
    capacity: int | None,
) -> None:
    engines = list(dict.fromkeys(c.engine for c in cases))
    latency: dict[str, Points] = {}
    fps: dict[str, Points] = {}
    cpu: dict[str, Points] = {}
    for engine in engines:  # one set of curves per engine, named by it when there are several
        c = strict_curves([case for case in cases if case.engine == engine])
        name = f"{engine}: " if len(engines) > 1 else ""
        latency |= {
            f"{name}gate latency p50": c["p50"],
            f"{name}gate latency p99": c["p99"],
            f"{name}verdict wait p99": c["verdict p99"],
        }
        fps |= {f"{name}slowest stream": c["slowest stream"], f"{name}mean of streams": c["mean"]}
        cpu[f"{name}CPU per stream"] = c["cpu"]
    draw(
        [
            Panel(
                "gate latency (ms; the level: verdict wait p99)",
                latency,
                max_gate_p99_ms,
                latency=True,
            ),
            Panel("decided fps per stream (released + dropped)", fps, min_fps, top=32),
            Panel("relay CPU per stream (% of one core)", cpu),
        ],
        "moderated streams",
        "chatguard bench strict: 640x480@30 VP8 through inline moderation, one worker",
        capacity,
        path,
    )


def draw(
    panels: Sequence[Panel], xlabel: str, title: str, capacity: int | None, path: Path
) -> None:
    """Draw ``panels`` side by side against the load (log 2 axis) and save a PNG at ``path``.

    ``capacity``: a capacity search's answer, in the x axis's unit, marked if there is one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig = plt.figure(figsize=(5 * len(panels), 4.6), dpi=100)
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    for ax, panel in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        for label, pts in panel.curves.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        if panel.level is not None:
            ax.axhline(panel.level, color="grey", linestyle="--", label="service level")
        if capacity:
            ax.axvline(capacity, color="green", linestyle=":", label="capacity")
        if panel.latency:
            ax.set_yscale("symlog", linthresh=10)
            ax.yaxis.set_major_locator(
                ticker.SymmetricalLogLocator(base=10, linthresh=10, subs=(1, 2, 5))
            )
            ax.yaxis.set_minor_locator(ticker.NullLocator())
        ax.set_ylim(bottom=0, top=panel.top)
        if panel.level is not None and panel.top is None:  # room above the service level
            ax.set_ylim(top=max(ax.get_ylim()[1], 1.3 * panel.level))
        ax.set(xlabel=xlabel, ylabel=panel.ylabel)
        ax.set_xscale("log", base=2)
        loads = [p[0] for pts in panel.curves.values() for p in pts]
        if loads:  # from the loads, not the figures: a case with no figure (NaN) still counts
            ax.set_xlim(min(loads) / 1.2, max(loads) * 1.2)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_formatter(plain)
        ax.yaxis.set_major_formatter(plain)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_routes(results: Sequence[RelayResult], path: Path) -> None:
    """One picture of several service runs (``chatguard bench relay`` and ``chatguard bench
    strict --service`` JSON): one curve per route and the naive baseline, each run's levels.

    Why a separate step: each route is best measured on its own (a search per route), and the
    comparison an engineer sizing a deployment wants is all of them against pairs.
    """
    cases = [case for result in results for case in result.cases]
    targets = {result.benchmark: result.target for result in results}
    by_relay = curves(cases)
    fps = {LABELS.get(r, r): [(p[0], p[1]) for p in pts] for r, pts in by_relay.items()}
    added = {LABELS.get(r, r): [(p[0], p[2]) for p in pts] for r, pts in by_relay.items()}
    target = targets.get("relay") or next(iter(targets.values()))
    draw(
        [
            Panel("delivered fps, 5th percentile of streams", fps, target.full_rate_fps, top=32),
            Panel("added latency p99 (ms, route - direct)", added, None, latency=True),
        ],
        "pairs",
        "chatguard bench: " + ", ".join(f"{name} route" for name in targets),
        None,
        path,
    )


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.plot",
        description="Draw several runs' JSON (relay, strict --service) in one picture, one "
        "curve per route, e.g. python -m bench.plot docs/bench-routes.png "
        "bench/results/relay.json bench/results/strict.json",
    )
    parser.add_argument("png", type=Path, help="the picture to write")
    parser.add_argument("json", type=Path, nargs="+", help="results of chatguard bench runs")
    args = parser.parse_args(argv)
    results = []
    for file in args.json:
        try:
            results.append(msgspec.json.decode(file.read_bytes(), type=RelayResult))
        except OSError as exc:
            parser.error(f"{file}: {exc}")
        except msgspec.DecodeError as exc:  # a signaling or strict (in-process) run, say
            parser.error(f"{file}: not a relay or strict --service result ({exc})")
    plot_routes(results, args.png)
    print(f"plot written to {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
