"""IP privacy by choice, as a user meets it: the "hide my address" box on the page takes that
user's calls through the relay even where the region's route is direct. And the page's device
id stays out of URLs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from signaling.strikes import Person
from tests.support.browser import (
    chromium,
    open_pages,
    requires_chromium,
    status_of,
    wait_for_frames,
    wait_for_state,
)
from tests.support.server import RunningServer, chatguard_serve

pytestmark = [pytest.mark.browser, requires_chromium]


async def test_a_user_who_hides_their_address_is_never_on_a_direct_call(tmp_path: Path) -> None:
    config = "[relay]\nworkers = 1\n[matchmaking]\nrepair_cooldown_s = 0\n"
    with chatguard_serve(tmp_path, config) as url:  # the default route is direct
        async with chromium() as browser:
            alice, bob, carol = await open_pages(browser, url, 3)
            await alice.check("#hide-address")
            await alice.click("#start")
            await wait_for_state(alice, "waiting")
            await bob.click("#start")
            for page in (alice, bob):
                await wait_for_state(page, "connected")
                assert await status_of(page) == ("connected", "relay")
            await wait_for_frames(alice, 10)
            await wait_for_frames(bob, 10)
            # the choice holds after Next, with someone new
            await carol.click("#start")
            await wait_for_state(carol, "waiting")
            await alice.click("#next")
            await wait_for_state(carol, "connected")
            assert await status_of(carol) == ("connected", "relay")
            await wait_for_frames(carol, 10)
            # and two users who did not ask for it still meet directly
            await wait_for_state(bob, "waiting")
            await alice.click("#stop")
            await wait_for_state(bob, "connected")
            assert await status_of(bob) == ("connected", "direct")


async def test_the_device_id_travels_in_the_handshake_not_the_url(server: RunningServer) -> None:
    """Bans still follow the page's device id, and no URL (proxy logs, history) carries it."""
    service = server.app_state.service  # type: ignore[attr-defined]
    async with chromium() as browser:
        (page,) = await open_pages(browser, server.http_url, 1)
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        await page.evaluate('localStorage.setItem("chatguard-device", "kept-device-1")')
        service.hub.strikes.ban(Person.of("", "kept-device-1"), time.monotonic() + 60, "test")
        await page.click("#start")
        await wait_for_state(page, "ended")
        assert "session was ended" in (await page.text_content("#status") or "")
    assert sockets == [server.ws_url]
    assert service.hub.stats.refused_banned == 1
