"""The page's layout in real Chromium at a phone's size (390x844) and a desktop's (1280x800):
element sizes checked, screenshots kept with the test's files (and, with
CHATGUARD_SCREENSHOTS=docs, written to docs/ for the README)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.support.browser import chromium, requires_chromium, wait_for_frames, wait_for_state
from tests.support.server import chatguard_serve

pytestmark = [pytest.mark.browser, requires_chromium]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
DOCS = Path(__file__).resolve().parent.parent / "docs"
THUMB_PX = 44
"""Smallest comfortable touch target (Apple's and Google's guidelines say 44-48 px)."""


async def open_page(browser: Browser, url: str, viewport: dict[str, int]) -> Page:
    phone = viewport == PHONE
    context = await browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
    page = await context.new_page()
    await page.goto(url)
    return page


async def box(page: Page, selector: str) -> dict[str, float]:
    found = await page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not shown"
    return dict(found)


async def in_a_call(browser: Browser, url: str, viewport: dict[str, int]) -> Page:
    """A page at `viewport` connected to a partner, after a short exchange of messages."""
    page = await open_page(browser, url, viewport)
    partner = await open_page(browser, url, DESKTOP)
    for each in (page, partner):
        await each.click("#start")
    for each in (page, partner):
        await wait_for_state(each, "connected")
    await wait_for_frames(page, 15)
    await partner.fill("#chat-input", "hi! where are you from?")
    await partner.press("#chat-input", "Enter")
    await page.wait_for_selector("#chat-log li.stranger")
    await page.fill("#chat-input", "Lisbon, and you?")
    await page.press("#chat-input", "Enter")
    await partner.wait_for_selector("#chat-log li.stranger")
    return page


async def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    await page.screenshot(path=str(path))
    if os.environ.get("CHATGUARD_SCREENSHOTS") == "docs":
        from PIL import Image  # only when refreshing the README's pictures

        # a small palette PNG: the README's picture, not a photograph
        Image.open(path).convert("RGB").quantize(64).save(DOCS / name, optimize=True)


def controls_fit(viewport: dict[str, int], buttons: list[dict[str, float]]) -> list[str]:
    problems = []
    for button in buttons:
        if button["y"] + button["height"] > viewport["height"] or button["y"] < 0:
            problems.append(f"a control at y={button['y']} is off screen")
        if button["height"] < THUMB_PX:
            problems.append(f"a control is only {button['height']} px tall")
        if button["x"] < 0 or button["x"] + button["width"] > viewport["width"]:
            problems.append(f"a control at x={button['x']} is off screen")
    return problems


async def page_overflows(page: Page) -> Any:
    return await page.evaluate(
        "() => document.scrollingElement.scrollHeight > window.innerHeight"
        " || document.scrollingElement.scrollWidth > window.innerWidth"
    )


async def test_phone_layout(tmp_path: Path) -> None:
    with chatguard_serve(tmp_path, "[relay]\nworkers = 0\n") as url:
        async with chromium() as browser:
            # before Start: what the site is, its rules, and what Start agrees to
            first = await open_page(browser, url, PHONE)
            intro = await first.text_content("#intro") or ""
            assert "random stranger" in intro and "Rules" in intro and "agree" in intro
            assert not await page_overflows(first)

            page = await in_a_call(browser, url, PHONE)
            remote, local = await box(page, "#remote"), await box(page, "#local")
            assert remote["width"] >= PHONE["width"]  # the partner fills the width
            assert remote["height"] >= 0.4 * PHONE["height"]
            # your own preview floats small inside the partner's picture, in a corner
            assert local["width"] <= 0.35 * PHONE["width"]
            assert local["x"] + local["width"] <= remote["x"] + remote["width"]
            assert remote["y"] <= local["y"] < remote["y"] + 0.25 * remote["height"]
            buttons = [await box(page, f"#{name}") for name in ("next", "stop", "report", "mute")]
            assert controls_fit(PHONE, buttons) == []
            assert min(b["y"] for b in buttons) > 0.75 * PHONE["height"]  # at the bottom
            chat = await box(page, "#chat-input")
            assert chat["y"] + chat["height"] <= min(b["y"] for b in buttons)
            assert not await page_overflows(page)
            await screenshot(page, tmp_path, "web-client-phone.png")


async def test_desktop_layout_puts_the_videos_side_by_side(tmp_path: Path) -> None:
    with chatguard_serve(tmp_path, "[relay]\nworkers = 0\n") as url:
        async with chromium() as browser:
            page = await in_a_call(browser, url, DESKTOP)
            remote, local = await box(page, "#remote"), await box(page, "#local")
            assert local["x"] >= remote["x"] + remote["width"]  # beside, not below
            assert abs(local["y"] - remote["y"]) < 5 and local["height"] == remote["height"]
            assert remote["width"] >= 0.4 * DESKTOP["width"]
            buttons = [await box(page, f"#{name}") for name in ("next", "stop", "report")]
            assert controls_fit(DESKTOP, buttons) == []
            assert not await page_overflows(page)
            await screenshot(page, tmp_path, "web-client-desktop.png")
