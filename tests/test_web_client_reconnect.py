"""A rolling restart seen from real Chromium: a page waiting on one `chatguard serve` is sent
away when that process drains (SIGTERM), reconnects with back-off to the next process on the
same port, and is waiting there again, so a stranger who arrives there meets it."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.browser import chromium, frames_decoded, requires_chromium, wait_for_state
from tests.support.server import ServedUrl, chatguard_serve

pytestmark = [pytest.mark.browser, requires_chromium]

CONFIG = "[relay]\nworkers = 0\n[matchmaking]\nrepair_cooldown_s = 0\n"


async def wait_for_stat(url: ServedUrl, name: str, value: int, timeout_s: float = 30) -> None:
    """Until the service's own figure (/stats on the admin listener) is `value`."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while (stats := (await http.get(url.admin + "/stats")).json())[name] != value:
            assert time.monotonic() < deadline, f"{name}: {stats[name]}, not {value}"
            await asyncio.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_waiting_page_waits_again_on_the_next_process(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    async with chromium() as browser:
        page = await browser.new_page()
        with chatguard_serve(tmp_path / "first", CONFIG) as first:
            port = urlsplit(first).port
            assert port is not None
            await page.goto(first)
            await page.fill("#interests", "chess")
            await page.click("#start")
            await wait_for_state(page, "waiting")
            await wait_for_stat(first, "waiting", 1)
            first.process.send_signal(signal.SIGTERM)
            first.process.wait(timeout=15)  # nothing held it: the page was sent away at once
            assert first.process.returncode == 0
        status = await page.text_content("#status")
        assert status is not None and "restarting" in status, status
        assert await page.get_attribute("#status", "data-state") == "waiting"

        with chatguard_serve(tmp_path / "second", CONFIG, port=port) as second:
            await wait_for_stat(second, "waiting", 1)  # joined again on its own
            other = await browser.new_page()
            await other.goto(second)
            await other.fill("#interests", "chess")
            await other.click("#start")
            for each in (page, other):
                await wait_for_state(each, "connected", timeout_s=40)
            await other.close()
        await page.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_direct_call_outlives_the_restart_and_both_look_again_after_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    async with chromium() as browser:
        pages = [await browser.new_page() for _ in range(2)]
        with chatguard_serve(tmp_path / "first", CONFIG) as first:
            port = urlsplit(first).port
            assert port is not None
            for page in pages:
                await page.goto(first)
                await page.click("#start")
            for page in pages:
                await wait_for_state(page, "connected", timeout_s=40)
            first.process.send_signal(signal.SIGTERM)
            first.process.wait(timeout=15)  # media flows peer to peer: nothing held it
        with chatguard_serve(tmp_path / "second", CONFIG, port=port) as second:
            await wait_for_stat(second, "clients", 2)  # both reconnected
            before = [await frames_decoded(page) for page in pages]
            await asyncio.sleep(2)
            for page, earlier in zip(pages, before, strict=True):  # the call goes on
                assert await page.get_attribute("#status", "data-state") == "connected"
                assert await frames_decoded(page) > earlier
            await wait_for_stat(second, "pairs_made", 0)  # kept their call: nobody joined

            # Next ends the call on both sides, and both look again on this process, where
            # (no re-pair cool-down here) they meet once more, as a pair this process made
            await pages[0].click("#next")
            await wait_for_stat(second, "pairs", 1, timeout_s=60)
            for page in pages:
                await wait_for_state(page, "connected", timeout_s=40)
        for page in pages:
            await page.close()
