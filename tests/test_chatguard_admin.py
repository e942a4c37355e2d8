"""The admin listener of a real service: `/metrics` and `/stats` there and not on the public
port, and Prometheus figures that move with real calls (a relayed one and a strict one, with
real relay worker processes and aiortc peers)."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from chatguard.admin import AdminListener
from signaling.config import AdminConfig
from signaling.route_policy import Route
from tests.support.ports import free_port
from tests.support.rtcclient import ChatPeer
from tests.support.server import RunningServer, make_config, run_server, wait_for_workers
from tests.support.strict_support import SAFE, UNSAFE, PhotoTrack, shows

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: RunningServer) -> Samples:
    response = httpx.get(server.admin_url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


async def eventually(server: RunningServer, check: Callable[[Samples], bool]) -> Samples:
    """Scrape until `check` holds: relay workers report their totals once a second."""
    deadline = time.monotonic() + 15
    while True:
        samples = scrape(server)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, {k: v for k, v in samples.items() if v}
        await asyncio.sleep(0.5)


@pytest.fixture
def plain_server() -> Iterator[RunningServer]:
    yield from run_server(make_config())


def test_metrics_and_stats_are_on_the_admin_port_only(plain_server: RunningServer) -> None:
    for path in ("/metrics", "/stats"):
        assert httpx.get(plain_server.http_url + path).status_code == 404
    assert httpx.get(plain_server.admin_url + "/stats").json()["clients"] == 0
    for path in ("/ws", "/healthz", "/client-settings", "/static/client.js"):
        assert httpx.get(plain_server.admin_url + path).status_code == 404
    samples = scrape(plain_server)
    assert value(samples, "chatguard_clients") == 0
    assert value(samples, "chatguard_pairs_made_total") == 0
    assert value(samples, "process_resident_memory_bytes") > 0  # signaling's own process
    assert value(samples, "chatguard_pairing_wait_seconds_count") == 0
    full_collections = value(samples, "chatguard_gc_pause_seconds_count", generation="2")
    gc.collect()
    after = scrape(plain_server)
    assert value(after, "chatguard_gc_pause_seconds_count", generation="2") >= full_collections + 1


@pytest.fixture
def relay_server() -> Iterator[RunningServer]:
    yield from run_server(make_config(relay={"workers": 1}), Route.RELAY)


@pytest.mark.slow
async def test_a_relayed_call_moves_the_call_and_relay_figures(
    relay_server: RunningServer,
) -> None:
    (worker,) = [str(w["worker"]) for w in await wait_for_workers(relay_server, 1)]
    before = await eventually(
        relay_server, lambda s: value(s, "chatguard_relay_cpu_seconds_total", worker=worker) > 0
    )
    assert value(before, "chatguard_relay_packets_forwarded_total") == 0
    alice = await ChatPeer.join(relay_server.ws_url, level=200, tone_hz=440)
    bob = await ChatPeer.join(relay_server.ws_url, level=60, tone_hz=1000)
    try:
        await alice.wait_for_frames(20)
        await bob.wait_for_frames(20)
        during = await eventually(
            relay_server,
            lambda s: value(s, "chatguard_relay_packets_forwarded_total", worker=worker) > 100,
        )
    finally:
        await alice.close()
        await bob.close()
    assert value(during, "chatguard_clients") == 2
    assert value(during, "chatguard_pairs") == 1
    assert value(during, "chatguard_pairs_made_total") == 1
    assert value(during, "chatguard_pairing_wait_seconds_count") == 2
    assert value(during, "chatguard_calls_total", route="relay", outcome="connected") == 1
    assert value(during, "chatguard_relay_legs", worker=worker) == 2
    assert value(during, "chatguard_signaling_messages_total", type="offer") == 2
    assert value(during, "chatguard_signaling_messages_total", type="join") == 2
    assert value(during, "chatguard_relay_bytes_forwarded_total", worker=worker) > 10_000
    assert value(during, "chatguard_relay_resident_memory_bytes", worker=worker) > 10_000_000
    assert value(during, "chatguard_relay_cpu_seconds_total", worker=worker) > value(
        before, "chatguard_relay_cpu_seconds_total", worker=worker
    )
    # a relayed call forwards without moderation: no strict figures for this worker
    assert value(during, "chatguard_strict_classifications_total") == 0
    after = await eventually(relay_server, lambda s: value(s, "chatguard_clients") == 0)
    assert value(after, "chatguard_pairs") == 0
    # the worker's totals keep what the closed legs forwarded
    assert value(after, "chatguard_relay_packets_forwarded_total", worker=worker) >= value(
        during, "chatguard_relay_packets_forwarded_total", worker=worker
    )


@pytest.fixture
def strict_server() -> Iterator[RunningServer]:
    config = make_config(
        relay={"workers": 1},
        moderation={"block": {"FACE_FEMALE": 0.5}, "strikes_to_ban": 5},
    )
    yield from run_server(config, Route.STRICT)


@pytest.mark.slow
async def test_a_strict_call_moves_the_moderation_figures(strict_server: RunningServer) -> None:
    (worker,) = [str(w["worker"]) for w in await wait_for_workers(strict_server, 1)]
    shown = PhotoTrack(SAFE)
    alice = await ChatPeer.join(
        strict_server.ws_url, 0, 440, video=lambda: PhotoTrack(SAFE), recognise=shows
    )
    bob = await ChatPeer.join(strict_server.ws_url, 0, 1000, video=lambda: shown, recognise=shows)
    try:
        await alice.wait_for_frames(10, timeout=30)
        shown.name = UNSAFE
        blocked = await eventually(
            strict_server,
            lambda s: (
                value(s, "chatguard_moderation_decisions_total", decision="blocked") >= 1
                and value(s, "chatguard_strict_frames_withheld_total", worker=worker) > 0
            ),
        )
    finally:
        await alice.close()
        await bob.close()
    assert value(blocked, "chatguard_calls_total", route="strict", outcome="connected") == 1
    assert value(blocked, "chatguard_moderation_strikes_total") == 1
    assert value(blocked, "chatguard_bans_total") == 0
    assert value(blocked, "chatguard_strict_classifications_total", worker=worker) > 0
    assert value(blocked, "chatguard_strict_frames_released_total", worker=worker) > 0
    assert value(blocked, "chatguard_relay_moderation_ready", worker=worker) == 1
    released = value(blocked, "chatguard_strict_gate_latency_seconds_count", worker=worker)
    assert released > 0
    assert value(blocked, "chatguard_strict_gate_latency_seconds_bucket", le="+Inf") == released
    assert value(blocked, "chatguard_strict_gate_latency_seconds_sum", worker=worker) > 0
    # the first keyframe is a cut: its frames waited for it to settle, counted apart
    assert value(blocked, "chatguard_strict_settle_latency_seconds_count", worker=worker) > 0
    # the worker times each model run (an image, or a stack of them) and reports it
    runs = value(blocked, "chatguard_model_inference_seconds_count", worker=worker)
    assert runs > 0
    assert value(blocked, "chatguard_model_inference_seconds_sum", worker=worker) > 0
    assert value(blocked, "chatguard_model_inference_seconds_bucket", le="+Inf") == runs


def test_a_taken_admin_port_stops_serve_at_start(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        admin_port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "chatguard.cli", "serve", "--port", str(free_port()),
             "--admin-port", str(admin_port), "--relay-workers", "1"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode != 0
    assert "Address already in use" in done.stderr
    assert "relay worker" not in done.stderr  # none was started


async def test_uvicorns_lines_about_the_admin_listener_say_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The process runs two uvicorn servers, and uvicorn logs its start and stop for each on
    one logger: the admin listener's lines name it, the public server's are left as they are."""
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    listener = AdminListener(AdminConfig(port=free_port()))
    listener.app = Starlette()
    await listener.start()
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)  # another task's
    await listener.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"]
    assert any(line.startswith("admin listener: Started server process") for line in lines)
    assert any(line.startswith("admin listener: Finished server process") for line in lines)
    assert "Started server process [1]" in lines
