"""Bad networks in real Chromium: a page whose network drops for a few seconds gets its call
back, with the same partner, and the partner reads "reconnecting" meanwhile rather than an
end; a lossy network brings up the connection-quality hint. Chromium runs in network
namespaces (tests/support/netns.py), so one page's traffic can be cut while signaling stays."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page

from tests.support.browser import frames_decoded, requires_chromium, wait_for_frames, wait_for_state
from tests.support.netns import IsolatedHosts, NamespaceHost, chromium_in
from tests.support.server import chatguard_serve

pytestmark = [pytest.mark.browser, requires_chromium]

CONFIG = """
[server]
host = "0.0.0.0"
[relay]
workers = 1
[matchmaking]
connect_timeout_s = 6
"""


def cut_media(host: NamespaceHost, signaling_port: int) -> None:
    """Drop everything `host` sends except its signaling connection (a TCP port)."""
    for rule in (
        ["-A", "OUTPUT", "-p", "tcp", "--dport", str(signaling_port), "-j", "ACCEPT"],
        ["-A", "OUTPUT", "-j", "DROP"],
    ):
        subprocess.run(host.command("iptables", "-w", "5", *rule), check=True, timeout=10)


def lose_packets(host: NamespaceHost, probability: float) -> None:
    """Drop that share of the UDP packets `host` receives, at random."""
    rule = ["-A", "INPUT", "-p", "udp", "-m", "statistic", "--mode", "random"]
    rule += ["--probability", str(probability), "-j", "DROP"]
    subprocess.run(host.command("iptables", "-w", "5", *rule), check=True, timeout=10)


def restore(host: NamespaceHost) -> None:
    for chain in ("INPUT", "OUTPUT"):
        subprocess.run(host.command("iptables", "-w", "5", "-F", chain), check=True, timeout=10)


async def ice_ufrag(page: Page) -> str:
    """The page's current ICE username fragment: an ICE restart changes it."""
    return str(
        await page.evaluate(
            "window.chatguard.pc.localDescription.sdp.match(/a=ice-ufrag:(\\S+)/)[1]"
        )
    )


async def pair_of(page: Page) -> str:
    return str(await page.evaluate("window.chatguard.pair"))


async def test_a_dropped_network_reconnects_to_the_same_partner(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    a, b = netns_hosts.hosts
    with chatguard_serve(tmp_path, CONFIG, "--route", "relay") as url:
        port = urlsplit(url).port
        assert port is not None
        async with (
            chromium_in(a, a.url(port)) as browser_a,
            chromium_in(b, b.url(port)) as browser_b,
        ):
            pages = []
            for host, browser in ((a, browser_a), (b, browser_b)):
                page = await (await browser.new_context()).new_page()
                await page.goto(host.url(port), timeout=15_000)
                pages.append(page)
            alice, bob = pages
            for page in pages:
                await page.click("#start")
            for page in pages:
                await wait_for_state(page, "connected", timeout_s=30)
                await wait_for_frames(page, 10)
            await drop_and_recover(a, port, alice, bob)
            # a fresh connection to the relay, on the same pair
            assert await alice.evaluate("window.keptPc !== window.chatguard.pc")


async def drop_and_recover(host: NamespaceHost, port: int, dropped: Page, partner: Page) -> None:
    """Cut `host`'s media for a few seconds; both pages must say "reconnecting", then be
    connected again to each other, with video flowing."""
    pair = await pair_of(dropped)
    await dropped.evaluate("window.keptPc = window.chatguard.pc")
    cut_media(host, port)
    try:
        await wait_for_state(dropped, "reconnecting", timeout_s=20)
        await wait_for_state(partner, "reconnecting", timeout_s=5)  # told, not ended
        await asyncio.sleep(2)
    finally:
        restore(host)
    for page in (dropped, partner):
        await wait_for_state(page, "connected", timeout_s=20)
        assert await pair_of(page) == pair  # the same partner
    before = await frames_decoded(partner), await frames_decoded(dropped)
    await wait_for_frames(partner, before[0] + 10)
    await wait_for_frames(dropped, before[1] + 10)


async def direct_call_in(host: NamespaceHost, port: int, browser: Browser) -> list[Page]:
    """Two pages in `host`'s namespace (so they can call directly), connected to each other."""
    pages = []
    for _ in range(2):
        page = await (await browser.new_context()).new_page()
        await page.goto(host.url(port), timeout=15_000)
        await page.click("#start")
        pages.append(page)
    for page in pages:
        await wait_for_state(page, "connected", timeout_s=30)
        assert await page.get_attribute("#status", "data-route") == "direct"
        await wait_for_frames(page, 10)
    return pages


async def test_a_direct_call_restarts_ice_after_a_drop(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    """Both pages in one namespace (so they can call directly); its network drops for both,
    and the offerer's ICE restart brings the same connection back."""
    a = netns_hosts.hosts[0]
    with chatguard_serve(tmp_path, CONFIG.replace("workers = 1", "workers = 0")) as url:
        port = urlsplit(url).port
        assert port is not None
        async with chromium_in(a, a.url(port)) as browser:
            pages = await direct_call_in(a, port, browser)
            ufrags = [await ice_ufrag(page) for page in pages]
            await drop_and_recover(a, port, pages[0], pages[1])
            for page, before in zip(pages, ufrags, strict=True):
                assert await ice_ufrag(page) != before  # ICE restarted, on both sides
            # the same connection, restarted, not a new one nor the relay
            assert await pages[0].evaluate("window.keptPc === window.chatguard.pc")
            assert await pages[0].get_attribute("#status", "data-route") == "direct"


async def test_a_lossy_network_shows_the_quality_hint(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    a = netns_hosts.hosts[0]
    with chatguard_serve(tmp_path, CONFIG.replace("workers = 1", "workers = 0")) as url:
        port = urlsplit(url).port
        assert port is not None
        async with chromium_in(a, a.url(port)) as browser:
            page, _ = await direct_call_in(a, port, browser)
            await asyncio.sleep(5)  # a few measurements on a clean network: no hint
            assert await page.get_attribute("#quality", "data-poor") == "false"
            assert await page.is_hidden("#quality")
            lose_packets(a, 0.4)
            try:
                await page.wait_for_selector('#quality[data-poor="true"]', timeout=20_000)
                hint = await page.text_content("#quality") or ""
                assert "Poor connection" in hint and "% loss" in hint
            finally:
                restore(a)
            await page.wait_for_selector(
                '#quality[data-poor="false"]', state="attached", timeout=20_000
            )
            assert await page.is_hidden("#quality")
