"""The benchmarks' pictures: what each panel draws, in order of load, gaps for what was not
measured; several runs' JSON drawn in one picture; a file that is no relay run refused."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bench.plot import (
    Panel,
    curves,
    draw,
    plot_relay_cases,
    signaling_curves,
    strict_curves,
)
from bench.plot import main as plot_main
from bench.results import (
    AddedLatency,
    Calls,
    ClipInfo,
    FpsSummary,
    GroupLoss,
    GroupPackets,
    Latency,
    Loss,
    Packets,
    RelayCase,
    RelayResult,
    RelayTarget,
    RssKib,
    SignalingCase,
)
from bench.stats import Percentiles
from tests.support.bench_results import signaling_case, strict_run

NOTHING = Percentiles(0, None, None, None, None)
TARGET = RelayTarget(100, 5.0, 29.0, 0.99)


def relay_case(relay: str, pairs: int, p5: float | None, added_p99: float | None) -> RelayCase:
    """A case whose every figure but the two drawn is empty."""
    fps = FpsSummary(2 * pairs, p5, p5, p5, 0)
    return RelayCase(
        relay=relay,
        pairs=pairs,
        one_way_streams=2 * pairs,
        legs=2 * pairs,
        delivered_fps=fps,
        fps_per_stream=[],
        service_levels_missed=[],
        direct_fps=fps,
        latency_ms=Latency(NOTHING, NOTHING, AddedLatency(None, None, added_p99)),
        switch_ms=NOTHING,
        calls=Calls(),
        routes={},
        moderation_notices={},
        unsafe_frames_received=0,
        errors=[],
        relay_cpu_percent_of_core=None,
        relay_cpu_measured_by="/proc",
        worker_moderation=None,
        relay_cpu_percent_per_stream=None,
        streams_per_core_at_this_cost=None,
        loadgen_cpu_percent_of_core=[],
        loadgen_send_lag_ms=NOTHING,
        loadgen_srtp_errors=0,
        packets=GroupPackets(Packets(), Packets()),
        packet_loss=GroupLoss(Loss(None, None), Loss(None, None)),
        streams_without_frames=0,
        measured_s=1.0,
        relay_runqueue_wait_percent=None,
        machine_cpu_pressure_percent=None,
        saturated="none",
        peers_connected="0/0",
        relay_rss_kib=RssKib(0, 0),
        memory_per_session_kib=0.0,
        loadavg_before=(0.0, 0.0, 0.0),
        loadavg_after=(0.0, 0.0, 0.0),
    )


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_plot_curves_are_per_relay_and_in_order_of_load() -> None:
    cases = [
        relay_case("forward", 16, 28.0, 9.0),
        relay_case("forward", 4, 30.0, 1.0),
        relay_case("naive", 1, 30.0, 40.0),
    ]
    assert curves(cases) == {
        "forward": [(4, 30.0, 1.0), (16, 28.0, 9.0)],
        "naive": [(1, 30.0, 40.0)],
    }


def test_a_plot_of_loads_that_measured_nothing_is_still_a_picture(tmp_path: Path) -> None:
    plot_relay_cases([relay_case("forward", 1, None, None)], tmp_path / "p.png", TARGET, None, "t")
    _assert_png(tmp_path / "p.png")


def test_signaling_and_strict_plots_draw_every_case_in_order_of_load() -> None:
    def signaling(clients: int, p99: float, rate: float) -> SignalingCase:
        case = signaling_case(p99)
        return msgspec.structs.replace(case, clients_requested=clients, pairs_per_second=rate)

    cases = [signaling(80, 60.0, 300.0), signaling(20, 2.0, 90.0)]
    assert signaling_curves(cases) == {
        "p50": [(20, 1.0), (80, 1.0)],
        "p99": [(20, 2.0), (80, 60.0)],
        "pairs/s": [(20, 90.0), (80, 300.0)],
    }
    four = strict_run([30.0, 27.0, 30.0, 29.0], 30.0)
    four.decided_fps_per_stream = 29.0
    one = strict_run([30.0], 9.0)
    curves_ = strict_curves([four, one])
    assert curves_["verdict p99"] == [(1, 9.0), (4, 30.0)]
    assert curves_["p99"] == [(1, 1000.0), (4, 1000.0)]  # every frame: a cut settled
    assert curves_["slowest stream"] == [(1, 30.0), (4, 27.0)]
    assert curves_["mean"] == [(1, 30.0), (4, 29.0)]


def test_a_plot_of_cases_without_figures_is_still_drawn(tmp_path: Path) -> None:
    """A load where nothing got through (no latency) is a result too, not a crash."""
    png = tmp_path / "gap.png"
    panel = Panel("latency (ms)", {"p99": [(1, float("nan"))]}, level=50, latency=True)
    draw([panel, Panel("fps", {"mean": [(1, 0.0)]})], "streams", "t", None, png)
    _assert_png(png)


def test_routes_from_several_runs_are_drawn_in_one_picture(tmp_path: Path) -> None:
    def run(benchmark: str, relay: str, pairs: list[int]) -> RelayResult:
        clip = ClipInfo("vp8", 640, 480, 30, 120, 1e6, 100.0, 60, True)
        result = RelayResult(benchmark, "here", {}, {}, {}, clip, TARGET)
        result.cases = [relay_case(relay, n, 30.0, float(n)) for n in pairs]
        return result

    relay, strict = tmp_path / "relay.json", tmp_path / "strict.json"
    relay.write_bytes(msgspec.json.encode(run("relay", "forward", [4, 16])))
    strict.write_bytes(msgspec.json.encode(run("strict", "strict", [2, 8])))
    png = tmp_path / "routes.png"
    assert plot_main([str(png), str(relay), str(strict)]) == 0
    _assert_png(png)
    signaling = tmp_path / "signaling.json"
    signaling.write_text('{"benchmark": "signaling", "cases": [{"clients": 10}]}')
    with pytest.raises(SystemExit):
        plot_main([str(png), str(signaling)])
