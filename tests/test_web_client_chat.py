"""Text chat in real Chromium pages: a round trip on the direct and the relay route, nothing for
a third page, markup shown as text, and the rate limit's message."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.support.browser import chromium, open_pages, requires_chromium, wait_for_state
from tests.support.server import chatguard_serve

pytestmark = [pytest.mark.browser, requires_chromium]

MARKUP = '<img src=x onerror="window.pwned = 1"><b>bold</b> & <script>window.pwned = 2</script>'


async def lines(page: Page, who: str) -> list[str]:
    """The texts of the chat lines from `who` ("stranger" or "you")."""
    return await page.eval_on_selector_all(
        f"#chat-log li.{who} .text", "items => items.map(item => item.textContent)"
    )


async def wait_for_line(page: Page, who: str, text: str) -> None:
    await page.wait_for_function(
        """([who, text]) => [...document.querySelectorAll(`#chat-log li.${who} .text`)]
            .some(item => item.textContent === text)""",
        arg=[who, text],
        timeout=10_000,
    )


async def chat_round_trip_with_a_bystander(url: str, route: str) -> None:
    async with chromium() as browser:
        alice, bob, carol = await open_pages(browser, url, 3)
        for page in (alice, bob):
            await page.click("#start")
        for page in (alice, bob):
            await wait_for_state(page, "connected")
            assert await page.get_attribute("#status", "data-route") == route
        await carol.click("#start")
        await wait_for_state(carol, "waiting")

        await alice.fill("#chat-input", "hello bob")
        await alice.press("#chat-input", "Enter")  # Enter sends
        await wait_for_line(bob, "stranger", "hello bob")
        assert await lines(alice, "you") == ["hello bob"]
        assert await alice.input_value("#chat-input") == ""
        await bob.fill("#chat-input", "hi alice")
        await bob.click("#chat-send")
        await wait_for_line(alice, "stranger", "hi alice")

        await alice.fill("#chat-input", MARKUP)
        await alice.click("#chat-send")
        await wait_for_line(bob, "stranger", MARKUP)  # the markup, shown as text
        for tag in ("img", "b", "script"):
            assert await bob.locator(f"#chat-log {tag}").count() == 0
        assert await bob.evaluate("window.pwned") is None

        # the bystander, waiting all along, got nothing
        assert await lines(carol, "stranger") == [] and await lines(carol, "you") == []
        assert await carol.is_disabled("#chat-input")


async def test_chat_on_the_direct_route(tmp_path: Path) -> None:
    with chatguard_serve(tmp_path, "[relay]\nworkers = 0\n") as url:
        await chat_round_trip_with_a_bystander(url, "direct")


async def test_chat_on_the_relay_route(tmp_path: Path) -> None:
    with chatguard_serve(tmp_path, "[relay]\nworkers = 1\n", "--route", "relay") as url:
        await chat_round_trip_with_a_bystander(url, "relay")


async def test_flooding_the_chat_says_to_slow_down(tmp_path: Path) -> None:
    config = "[relay]\nworkers = 0\n[chat]\nburst = 2\nper_s = 0.2\n"
    with chatguard_serve(tmp_path, config) as url:
        async with chromium() as browser:
            alice, bob = await open_pages(browser, url, 2)
            for page in (alice, bob):
                await page.click("#start")
            await wait_for_state(alice, "connected")
            for n in range(3):
                await alice.fill("#chat-input", f"message {n}")
                await alice.press("#chat-input", "Enter")
            await alice.wait_for_selector("#chat-log li.system >> text=too fast", timeout=5_000)
            await wait_for_line(bob, "stranger", "message 1")
            assert await lines(bob, "stranger") == ["message 0", "message 1"]
