"""End to end: real `chatguard serve`, real headless Chromium pages with fake cameras."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.browser import (
    chromium,
    frames_decoded,
    report,
    requires_chromium,
    status_of,
    wait_for_frames,
    wait_for_state,
    write_y4m,
)
from tests.support.server import ServedUrl, chatguard_serve
from tests.support.strict_support import SAFE, UNSAFE, picture
from tests.support.wsclient import Client

pytestmark = [pytest.mark.browser, requires_chromium]


@pytest.fixture
def serve_url(tmp_path: Path) -> Iterator[ServedUrl]:
    with chatguard_serve(tmp_path, "[relay]\nworkers = 0\n") as url:
        yield url


async def test_two_pages_call_directly_then_next_repairs_with_a_third(serve_url: ServedUrl) -> None:
    async with chromium() as browser:
        pages = []
        for _ in range(3):
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(serve_url)
            pages.append(page)
        alice, bob, carol = pages
        assert await status_of(alice) == ("idle", "none")

        await alice.click("#start")
        await wait_for_state(alice, "waiting")
        await bob.click("#start")
        for page in (alice, bob):
            await wait_for_state(page, "connected")
            assert await status_of(page) == ("connected", "direct")
            assert await page.is_hidden("#remote-notice")  # nothing covers the partner
            assert "direct" in (await page.text_content("#status") or "")
        # both see each other's camera: frames actually decoded, not just a connection
        await wait_for_frames(alice, 10)
        await wait_for_frames(bob, 10)

        await carol.click("#start")
        await wait_for_state(carol, "waiting")
        await alice.click("#next")
        await wait_for_state(carol, "connected")
        await wait_for_state(alice, "connected")
        await wait_for_frames(carol, 10)
        await wait_for_frames(alice, 10)
        # bob lost alice, is told so, and waits (cool-down keeps alice away from him)
        await wait_for_state(bob, "waiting")

        await carol.click("#stop")
        await wait_for_state(carol, "idle")
        await wait_for_state(alice, "waiting")
        await wait_for_state(bob, "waiting")  # alice and bob are still in cool-down
    # three browsers on one address, two calls: inside every default budget of [limits]
    metrics = httpx.get(serve_url.admin + "/metrics", timeout=5).text
    refused = {
        sample.labels["kind"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "chatguard_signaling_rate_limited_total"
    }
    assert refused and not any(refused.values()), refused


async def test_report_ends_the_call_and_looks_again(serve_url: ServedUrl) -> None:
    async with chromium() as browser:
        pages = []
        for _ in range(2):
            page = await (await browser.new_context()).new_page()
            await page.goto(serve_url)
            await page.click("#start")
            pages.append(page)
        alice, bob = pages
        await wait_for_state(alice, "connected")
        await report(alice, "harassment")
        await wait_for_state(alice, "waiting")
        await wait_for_state(bob, "waiting")
        stats = httpx.get(serve_url.admin + "/stats").json()
        assert stats["reports"] == 1
        await asyncio.sleep(1)  # the server's "waiting" came meanwhile; the thanks stay
        status = await alice.text_content("#status") or ""
        assert "Thanks, the stranger was reported (harassment)" in status


async def test_a_call_that_cannot_connect_says_so(tmp_path: Path) -> None:
    """The partner here is a bare WebSocket client that never answers the offer."""
    config = "[matchmaking]\nconnect_timeout_s = 2\n[relay]\nworkers = 0\nfallback_after_s = 1\n"
    with chatguard_serve(tmp_path, config) as url:
        silent_partner = await Client.connect(url.replace("http", "ws") + "/ws")
        await silent_partner.send(type="join")
        async with chromium() as browser:
            page = await (await browser.new_context()).new_page()
            await page.goto(url)
            await page.click("#start")
            await wait_for_state(page, "connecting")
            assert (await silent_partner.expect_paired())["role"] == "answerer"
            assert (await silent_partner.expect("offer"))["sdp"].startswith("v=0")
            await wait_for_state(page, "ended", timeout_s=10)
            # the direct attempt failed, and with no relay to fall back on the call ends
            assert "no relay is available" in (await page.text_content("#status") or "")
            assert await page.is_enabled("#next")
        await silent_partner.close()


async def test_relay_route_in_real_browsers(tmp_path: Path) -> None:
    """`--route relay`: pages talk to the relay worker, not to each other, and Next hands the
    new partner over the same relay connection."""
    with chatguard_serve(tmp_path, "[relay]\nworkers = 1\n", "--route", "relay") as url:
        async with chromium() as browser:
            pages = []
            for _ in range(3):
                page = await (await browser.new_context()).new_page()
                await page.goto(url)
                pages.append(page)
            alice, bob, carol = pages
            for page in (alice, bob):
                await page.click("#start")
            for page in (alice, bob):
                await wait_for_state(page, "connected")
                assert await status_of(page) == ("connected", "relay")
                assert "relayed" in (await page.text_content("#status") or "")
                await wait_for_frames(page, 10)
            stats = httpx.get(url.admin + "/stats").json()
            assert stats["relay_legs"] == 2 and stats["calls_connected"] >= 2

            await carol.click("#start")
            await wait_for_state(carol, "waiting")
            await alice.evaluate("window.keptPc = window.chatguard.pc")
            before = await frames_decoded(alice)
            await alice.click("#next")
            await wait_for_state(carol, "connected")
            await wait_for_state(alice, "connected")
            await wait_for_frames(carol, 10)
            await wait_for_frames(alice, before + 20)  # carol's frames, same connection
            assert await alice.evaluate("window.keptPc === window.chatguard.pc")
            stats = httpx.get(url.admin + "/stats").json()
            assert stats["relay_legs"] == 2 and stats["relay_legs_parked"] == 1  # bob's


async def test_strict_route_blocks_a_camera_in_real_browsers(tmp_path: Path) -> None:
    """Cameras fed real photographs; the test policy blocks FACE_FEMALE (the astronaut)."""
    rocket = write_y4m(tmp_path / "rocket.y4m", picture(SAFE))
    astronaut = write_y4m(tmp_path / "astronaut.y4m", picture(UNSAFE))
    config = "[relay]\nworkers = 1\n"
    extra = ("--route", "strict", "--block", "FACE_FEMALE:0.5")
    with chatguard_serve(tmp_path, config, *extra) as url:
        async with (
            chromium([f"--use-file-for-fake-video-capture={rocket}"]) as safe_browser,
            chromium([f"--use-file-for-fake-video-capture={astronaut}"]) as unsafe_browser,
        ):
            viewer = await (await safe_browser.new_context()).new_page()
            offender = await (await unsafe_browser.new_context()).new_page()
            for page in (viewer, offender):
                await page.goto(url)
                await page.click("#start")
            await viewer.wait_for_selector(
                'video#remote[data-blocked="true"]', state="attached", timeout=30_000
            )
            assert await status_of(viewer) == ("connected", "strict")
            assert "moderated" in (await viewer.text_content("#status") or "")
            notice = await viewer.text_content("#remote-notice") or ""
            assert "stopped" in notice and "face female" in notice
            await offender.wait_for_selector("#local-notice:not([hidden])", timeout=10_000)
            assert "Strike 1" in (await offender.text_content("#local-notice") or "")
            # the offender still sees the viewer's (safe) camera, with nothing in front of it
            assert await offender.get_attribute("video#remote", "data-blocked") == "false"
            assert await offender.is_hidden("#remote-notice")
            assert await viewer.is_visible("#remote-notice")
            await wait_for_frames(offender, 10)
