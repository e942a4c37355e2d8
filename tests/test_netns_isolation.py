"""The network-namespace test hosts (tests/netns.py) isolate what they claim to isolate.

These tests guard the fixture that the relay fallback test stands on: if two pages in different
namespaces could still call each other directly, a "relay fallback works" test would pass
without the relay. So each claim is shown next to its positive control.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.support.browser import requires_chromium, status_of, wait_for_frames, wait_for_state
from tests.support.netns import (
    IsolatedHosts,
    NamespaceHost,
    candidate_addresses,
    chromium_in,
    dropped_packets,
    echo_server,
    forwarding_enabled,
    isolated_hosts_or_skip,
    leftovers,
    local_candidates,
    pids_in,
    probe,
    wait_for_remote_candidate,
)
from tests.support.server import chatguard_serve

pytestmark = [pytest.mark.netns]

# Signaling on every host address, so that the namespaces reach it at their gateways; the
# client's own connect timer (not Chromium's ~15 s ICE failure) ends a call that cannot connect.
SERVE_CONFIG = """
[server]
host = "0.0.0.0"

[matchmaking]
connect_timeout_s = 4

[regions]
default_route = "direct"

[relay]
fallback_after_s = 3
workers = {workers}
"""

HEALTHZ = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from the env
print(opener.open(sys.argv[1], timeout=5).status)
"""


@contextmanager
def serve(tmp_path: Path, relay_workers: int = 0) -> Iterator[tuple[int, str]]:
    """`chatguard serve` listening on all addresses (its relay workers too); yields its port
    and its admin listener's URL (/stats)."""
    with chatguard_serve(tmp_path, SERVE_CONFIG.format(workers=relay_workers)) as url:
        port = urlsplit(url).port
        assert port is not None
        yield port, url.admin


async def open_client(browser: Browser, host: NamespaceHost, port: int) -> Page:
    """The web client, loaded the way a user on `host` would: from the host's gateway address."""
    page = await (await browser.new_context()).new_page()
    await page.goto(host.url(port), timeout=15_000)
    return page


def test_each_test_host_reaches_signaling_on_the_host(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    with serve(tmp_path) as (port, _admin):
        for source in netns_hosts.hosts:
            # its own gateway, and the host's address on the other link (local delivery, not
            # forwarding: this is how both test hosts will reach one relay)
            for target in netns_hosts.hosts:
                status = source.python(HEALTHZ, target.url(port, "/healthz"), timeout_s=15)
                assert status.strip() == "200", (source.namespace, target.gateway)


def test_test_hosts_cannot_reach_each_other(netns_hosts: IsolatedHosts) -> None:
    a, b = netns_hosts.hosts
    dropped_before = dropped_packets(netns_hosts.chain)
    with echo_server(a) as port_a, echo_server(b) as port_b:
        # controls: each echo server answers on its test host's address over TCP and UDP, from
        # inside its namespace and from the host (connected route)
        for host, port in ((a, port_a), (b, port_b)):
            assert probe(host, host.address, port) == {"tcp": True, "udp": True}
            assert probe(None, host.address, port) == {"tcp": True, "udp": True}
        with ThreadPoolExecutor() as pool:  # each failing probe waits out its time-outs
            a_to_b = pool.submit(probe, a, b.address, port_b)
            b_to_a = pool.submit(probe, b, a.address, port_a)
            results = [a_to_b.result(), b_to_a.result()]
    for result in results:
        assert (result["tcp"], result["udp"]) == (False, False), result
        assert "timed out" in str(result["tcp_error"]), result  # dropped, not refused
    # the chain is hooked in; where the host forwards at all, it is what dropped the probes
    forward = subprocess.run(
        ["iptables", "-w", "5", "-S", "FORWARD"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert f"-j {netns_hosts.chain}" in forward
    if forwarding_enabled():
        assert dropped_packets(netns_hosts.chain) > dropped_before


@pytest.mark.browser
@requires_chromium
async def test_pages_in_two_namespaces_are_paired_but_cannot_call_directly(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    a, b = netns_hosts.hosts
    with serve(tmp_path) as (port, admin):
        async with (
            chromium_in(a, a.url(port)) as browser_a,
            chromium_in(b, b.url(port)) as browser_b,
        ):
            pages = []
            for host, browser in ((a, browser_a), (b, browser_b)):
                page = await open_client(browser, host, port)
                # a browser in a namespace offers its veth address as its only host candidate
                # (not mDNS-hidden, no loopback), so a direct call would have to reach it
                candidates = await local_candidates(page)
                assert candidate_addresses(candidates) == {host.address}, candidates
                pages.append(page)
            for page in pages:
                await page.click("#start")
            for page in pages:
                await wait_for_state(page, "connecting")
                assert await status_of(page) == ("connecting", "direct")
            # each side was told the other's address, and the call still cannot connect
            await wait_for_remote_candidate(pages[0], b.address)
            await wait_for_remote_candidate(pages[1], a.address)
            started = time.monotonic()
            for page in pages:
                await wait_for_state(page, "ended", timeout_s=15)
                # no relay runs here, so the failed direct call cannot fall back: it ends
                assert "no relay is available" in (await page.text_content("#status") or "")
            assert time.monotonic() - started < 10  # the 3 s fallback timer, not ICE failure
        stats = httpx.get(f"{admin}/stats", timeout=5).json()
        assert stats["pairs_made"] == 1
        assert stats["calls_connected"] == 0
        assert stats["calls_failed"] >= 1


@pytest.mark.browser
@requires_chromium
async def test_call_that_cannot_go_direct_falls_back_to_the_relay_by_itself(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    """The issue's fallback: no user action, the status ends up "relayed", video flows."""
    a, b = netns_hosts.hosts
    with serve(tmp_path, relay_workers=1) as (port, admin):
        stats_url = f"{admin}/stats"
        deadline = time.monotonic() + 20
        while not httpx.get(stats_url, timeout=5).json()["relay_workers"]:
            assert time.monotonic() < deadline, "the relay worker did not join"
            await asyncio.sleep(0.2)
        async with (
            chromium_in(a, a.url(port)) as browser_a,
            chromium_in(b, b.url(port)) as browser_b,
        ):
            pages = [
                await open_client(browser_a, a, port),
                await open_client(browser_b, b, port),
            ]
            started = time.monotonic()
            for page in pages:
                await page.click("#start")
            for page in pages:
                await wait_for_state(page, "connecting")
                assert await status_of(page) == ("connecting", "direct")
            for page in pages:
                await wait_for_state(page, "connected", timeout_s=20)
                assert await status_of(page) == ("connected", "relay")
                assert "relayed" in (await page.text_content("#status") or "")
            assert time.monotonic() - started < 15  # "within a few seconds"
            for page in pages:
                await wait_for_frames(page, 10)
        stats = httpx.get(stats_url, timeout=5).json()
        assert stats["fallbacks_to_relay"] >= 1
        assert stats["calls_connected"] >= 2


@pytest.mark.browser
@requires_chromium
async def test_two_pages_in_one_namespace_call_directly(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    """Positive control: the same setup connects when the peers can reach each other, so the
    failure above is the isolation's doing (and not flags, origins or the served address)."""
    a = netns_hosts.hosts[0]
    with serve(tmp_path) as (port, _admin):
        async with chromium_in(a, a.url(port)) as browser:
            pages = [await open_client(browser, a, port) for _ in range(2)]
            for page in pages:
                await page.click("#start")
            for page in pages:
                await wait_for_state(page, "connected", timeout_s=15)
                assert await status_of(page) == ("connected", "direct")
            for page in pages:
                await wait_for_frames(page, 5)


def test_teardown_removes_everything_even_after_a_failure() -> None:
    with pytest.raises(RuntimeError, match="test failed"), isolated_hosts_or_skip(1) as hosts:
        token = hosts.token
        (host,) = hosts.hosts
        # a process left running inside the namespace, like a browser a failed test never closed
        straggler = subprocess.Popen(
            host.command(sys.executable, "-c", "import time; time.sleep(60)")
        )
        deadline = time.monotonic() + 10
        while straggler.pid not in pids_in(host.namespace):
            assert time.monotonic() < deadline and straggler.poll() is None
            time.sleep(0.02)
        assert len(leftovers(token)) >= 4  # netns, link, chain, FORWARD jump
        raise RuntimeError("test failed")
    assert leftovers(token) == []
    assert straggler.wait(timeout=5) == -signal.SIGTERM
