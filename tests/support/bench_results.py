"""Benchmark results made up for tests of service levels, tables and plots (no run needed)."""

from __future__ import annotations

import msgspec

from bench.results import SignalingCase, StrictRun
from bench.stats import Percentiles

NOTHING = Percentiles(0, None, None, None, None)

BASE_RUN = StrictRun(
    streams=1,
    seconds=1.0,
    engine="onnxruntime fp32",
    relay_cpu_cores=0.1,
    load_cpu_cores=0.05,
    cpu_per_stream_pct=6.0,
    streams_per_core_estimate=16.0,
    sent_fps_per_stream=30.0,
    decided_fps_per_stream=30.0,
    decided_fps_by_stream=[30.0],
    released_fps_per_stream=25.0,
    safe_fps_per_stream=26.0,
    classifications_per_s_per_stream=2.0,
    requests_per_s_per_stream={},
    scene_cuts=1,
    scene_classifications=1,
    no_verdict=0,
    gate_latency=NOTHING,
    verdict_wait=NOTHING,
    settle_wait=NOTHING,
    classify_roundtrip=NOTHING,
    loop_lag=NOTHING,
    leaked_unsafe_frames=0,
    blocked_events=0,
    dropped={},
)


def strict_run(fps: list[float], p99_ms: float | None, leaked: int = 0) -> StrictRun:
    """``p99_ms``: the verdict wait's; frames held while a cut settled waited a second."""
    verdict = Percentiles(len(fps), 1.0, 1.0, p99_ms, p99_ms)
    return msgspec.structs.replace(
        BASE_RUN,
        streams=len(fps),
        decided_fps_by_stream=fps,
        gate_latency=Percentiles(len(fps), 1.0, 1.0, 1000.0, 1000.0),
        verdict_wait=verdict,
        settle_wait=Percentiles(len(fps), 1000.0, 1000.0, 1000.0, 1000.0),
        leaked_unsafe_frames=leaked,
    )


def signaling_case(p99_ms: float | None, connected: int = 10, errors: int = 0) -> SignalingCase:
    return SignalingCase(
        target="ws://127.0.0.1:1/ws",
        clients_requested=10,
        peak_connected_clients=connected,
        pairs_per_second=1.0,
        pairing_latency=Percentiles(5, 1.0, 1.0, p99_ms, p99_ms),
        queue_time=NOTHING,
        signal_relay_latency=NOTHING,
        errors=errors,
        error_examples=["ConnectionClosedError: no close frame"] * min(errors, 1),
        loadgen_cpu_percent_of_one_core=1.0,
    )
