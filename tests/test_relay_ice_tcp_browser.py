"""Browsers on a network that drops UDP reach each other through the relay's ICE over TCP.

The decisive test of relay/ice_tcp.py: real Chromium pages in network namespaces whose UDP is
dropped both ways (only TCP to the server host gets through), on the relay route. Nothing but
the relay's passive TCP candidate can carry their calls, and the selected candidate pair each
browser reports says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Page

from relay.worker import RelayWorker
from signaling.route_policy import Route
from tests.support.browser import (
    frames_decoded,
    requires_chromium,
    selected_pair,
    status_of,
    wait_for_frames,
    wait_for_state,
)
from tests.support.netns import (
    IsolatedHosts,
    chromium_in,
    open_client,
    udp_blocked_hosts,
)
from tests.support.ports import free_port
from tests.support.server import RunningServer, chatguard_serve, make_config, run_server

pytestmark = [pytest.mark.netns, pytest.mark.browser, requires_chromium]

SERVE_CONFIG = """
[server]
host = "0.0.0.0"

[matchmaking]
connect_timeout_s = 10

[regions]
default_route = "{route}"

[relay]
workers = 1
fallback_after_s = 3
ice_tcp_port = {ice_tcp_port}
"""


async def wait_for_workers(admin_url: str, count: int) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient() as http:
        while len((await http.get(admin_url + "/stats")).json()["relay_workers"]) < count:
            assert time.monotonic() < deadline, "the relay worker did not join"
            await asyncio.sleep(0.2)


class NoVideo(Exception):
    """A page decoded no partner video in time."""


async def first_frame_after(page: Page, started: float, timeout_s: float = 20) -> float:
    """Seconds from `started` (monotonic) until `page` has decoded partner video."""
    deadline = started + timeout_s
    while await frames_decoded(page) < 1:
        if time.monotonic() > deadline:
            raise NoVideo
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@dataclass
class CallResult:
    delays: list[float]
    """Seconds from Start until each page decoded partner video."""
    pairs: list[dict[str, Any] | None]
    stats: dict[str, Any]
    """Signaling's /stats after the call."""


async def call_through_udp_blocked_pages(
    hosts: IsolatedHosts, tmp_path: Path, route: str, ice_tcp_port: int | None = None
) -> CallResult | None:
    """Two UDP-blocked pages press Start; None if a page has no partner video 10 s later."""
    a, b = udp_blocked_hosts(hosts)
    port_tcp = free_port() if ice_tcp_port is None else ice_tcp_port
    config = SERVE_CONFIG.format(route=route, ice_tcp_port=port_tcp)
    with chatguard_serve(tmp_path, config) as url:
        await wait_for_workers(url.admin, 1)
        port = urlsplit(url).port
        assert port is not None
        async with (
            chromium_in(a, a.url(port)) as browser_a,
            chromium_in(b, b.url(port)) as browser_b,
        ):
            pages = [await open_client(browser_a, a, port), await open_client(browser_b, b, port)]
            started = time.monotonic()
            for page in pages:
                await page.click("#start")
            try:
                delays = [await first_frame_after(page, started, timeout_s=10) for page in pages]
            except NoVideo:
                return None
            for page in pages:
                await wait_for_state(page, "connected")
                assert await status_of(page) == ("connected", "relay")
                await wait_for_frames(page, 20)
            pairs = [await selected_pair(page) for page in pages]
        stats = httpx.get(url.admin + "/stats", timeout=5).json()
    print(f"route {route}: Start to partner video {delays[0]:.2f} s and {delays[1]:.2f} s")
    return CallResult(delays, pairs, stats)


def assert_on_ice_tcp(pairs: list[dict[str, Any] | None]) -> None:
    """Each browser's selected pair is its active TCP candidate to the relay's passive one."""
    for pair in pairs:
        assert pair is not None
        assert pair["local_protocol"] == "tcp", pair
        assert pair["local_tcp_type"] == "active", pair
        assert pair["remote_protocol"] == "tcp", pair
        assert pair["state"] == "succeeded", pair


async def test_udp_blocked_browsers_talk_over_ice_tcp_on_the_relay_route(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    result = await call_through_udp_blocked_pages(netns_hosts, tmp_path, "relay")
    assert result is not None, "no partner video over ICE-TCP"
    assert_on_ice_tcp(result.pairs)
    assert max(result.delays) < 3  # the target for the relay route


async def test_without_ice_tcp_udp_blocked_browsers_never_connect(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    """Negative control: the same pages and relay, with the TCP port off, get no video."""
    result = await call_through_udp_blocked_pages(netns_hosts, tmp_path, "relay", 0)
    assert result is None


async def test_udp_blocked_direct_call_falls_back_to_the_relay_over_ice_tcp(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    result = await call_through_udp_blocked_pages(netns_hosts, tmp_path, "direct")
    assert result is not None, "no partner video after the fallback"
    assert_on_ice_tcp(result.pairs)
    assert result.stats["fallbacks_to_relay"] >= 1
    assert max(result.delays) < 8  # the target through the direct-route fallback


@pytest.fixture
def relay_signaling() -> Iterator[RunningServer]:
    """Signaling on every address (the namespaces reach it at their gateways), relay route,
    no workers of its own: the test runs one in this process."""
    config = make_config(
        server={"host": "0.0.0.0"}, relay={"workers": 0, "token": "test-relay-token"}
    )
    yield from run_server(config, Route.RELAY)


async def test_a_tcp_leg_is_a_leg_like_any_other_in_the_worker(
    netns_hosts: IsolatedHosts, relay_signaling: RunningServer
) -> None:
    """The worker in this process (asyncio's own loop, not uvloop), so its legs can be seen:
    both browsers' legs are nominated on the TCP listener's connections and take the relay's
    fast receive path, exactly as UDP legs do."""
    a, b = udp_blocked_hosts(netns_hosts)
    port = relay_signaling.port
    worker = RelayWorker(f"ws://127.0.0.1:{port}/relay", "test-relay-token", "w1", 10, free_port())
    running = asyncio.create_task(worker.run())
    try:
        await wait_for_workers(relay_signaling.admin_url, 1)
        async with (
            chromium_in(a, a.url(port)) as browser_a,
            chromium_in(b, b.url(port)) as browser_b,
        ):
            pages = [await open_client(browser_a, a, port), await open_client(browser_b, b, port)]
            for page in pages:
                await page.click("#start")
            for page in pages:
                await wait_for_frames(page, 20)
            assert len(worker.legs) == 2
            for leg in worker.legs.values():
                relay_leg = leg.relay_leg
                assert relay_leg is not None and relay_leg.fast_path_active
                nominated = relay_leg.ice_connection._nominated[1]
                assert nominated.local_candidate.transport == "tcp"
                assert nominated.local_candidate.tcptype == "passive"
            assert worker.ice_tcp is not None
            assert worker.ice_tcp.stats.attached >= 2
            assert worker.ice_tcp.stats.dropped_packets == 0
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
