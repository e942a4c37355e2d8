"""Reports that act, in real Chromium: reports from the configured number of distinct
reporters ban the reported device; one reporter reporting twice does not."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.support.browser import chromium, report, requires_chromium, wait_for_state
from tests.support.server import chatguard_serve

pytestmark = [pytest.mark.browser, requires_chromium]

CONFIG = """
[relay]
workers = 0
[matchmaking]
repair_cooldown_s = 0
[reports]
reporters_to_ban = 2
ban_s = 600
"""


async def new_device(browser: Browser, url: str) -> Page:
    """A page in a fresh browser profile: a device of its own (its own device id)."""
    page = await (await browser.new_context()).new_page()
    await page.goto(url)
    return page


async def meet(reporter: Page, offender: Page) -> None:
    await reporter.click("#start")
    for page in (reporter, offender):
        await wait_for_state(page, "connected")


async def test_distinct_reporters_ban_the_reported_device(tmp_path: Path) -> None:
    with chatguard_serve(tmp_path, CONFIG) as url:
        async with chromium() as browser:
            offender = await new_device(browser, url)
            await offender.click("#start")
            first = await new_device(browser, url)
            await meet(first, offender)
            await report(first, "harassment")
            # no cool-down here, so they meet again; the second report of one reporter
            # counts once
            await wait_for_state(first, "connected")
            await report(first, "spam")
            await first.click("#stop")
            await wait_for_state(first, "idle")
            assert httpx.get(url.admin + "/stats").json()["reports"] == 2
            assert await offender.get_attribute("#status", "data-state") != "ended"

            second = await new_device(browser, url)
            await meet(second, offender)
            await report(second, "nudity")
            await offender.wait_for_selector("#status >> text=reported by 2 people")
            assert await offender.get_attribute("#status", "data-state") == "ended"
            assert await offender.evaluate("window.chatguard.localStream === null")

            # refused at the door: a reload (same device) is turned away
            await offender.reload()
            await offender.click("#start")
            await offender.wait_for_selector("#status >> text=banned for now")
            # the reporters, on the same address, are not
            await second.click("#stop")
            await second.click("#start")
            await wait_for_state(second, "waiting")
