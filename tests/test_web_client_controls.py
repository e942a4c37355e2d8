"""The page's own controls in real Chromium: mute and camera off as the partner receives them,
Stop releasing the camera, the consent step, Esc for Next, and status lines that stay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.support.browser import (
    chromium,
    frames_decoded,
    open_pages,
    requires_chromium,
    wait_for_frames,
    wait_for_state,
)
from tests.support.server import chatguard_serve

pytestmark = [pytest.mark.browser, requires_chromium]

AUDIO_ENERGY_JS = """
async () => {
  let energy = 0;
  (await window.chatguard.pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      energy += report.totalAudioEnergy || 0;
    }
  });
  return energy;
}
"""
BRIGHTNESS_JS = """
() => {
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 48;
  const context = canvas.getContext("2d");
  context.drawImage(document.querySelector("#remote"), 0, 0, 64, 48);
  const pixels = context.getImageData(0, 0, 64, 48).data;
  let sum = 0;
  for (let i = 0; i < pixels.length; i += 4) sum += pixels[i] + pixels[i + 1] + pixels[i + 2];
  return sum / (pixels.length / 4) / 3;
}
"""


async def heard(page: Page, seconds: float = 2.0) -> float:
    """Audio energy the page received from its partner over `seconds`."""
    before = float(await page.evaluate(AUDIO_ENERGY_JS))
    await asyncio.sleep(seconds)
    return float(await page.evaluate(AUDIO_ENERGY_JS)) - before


async def wait_for_brightness(page: Page, condition: str) -> None:
    """Wait until the partner's picture, as this page draws it, satisfies `condition`."""
    await page.wait_for_function(f"() => ({BRIGHTNESS_JS})() {condition}", timeout=15_000)


async def test_mute_and_camera_off_reach_the_partner_and_stop_releases_the_camera(
    tmp_path: Path,
) -> None:
    config = "[relay]\nworkers = 0\n[matchmaking]\nrepair_cooldown_s = 0\n"
    with chatguard_serve(tmp_path, config) as url:
        async with chromium() as browser:
            alice, bob = await open_pages(browser, url, 2)
            for page in (alice, bob):
                await page.click("#start")
            for page in (alice, bob):
                await wait_for_state(page, "connected")
            await wait_for_frames(bob, 10)
            await wait_for_brightness(bob, "> 20")  # the fake camera's green picture
            assert await heard(bob) > 0  # and its beeps

            await alice.click("#mute")
            assert await alice.get_attribute("#mute", "aria-pressed") == "true"
            await asyncio.sleep(1)  # what was already on its way
            # silence: 0, or a trace of the last decoded samples (9e-12 in one CI run; the
            # fake microphone's beeps measure many orders more)
            assert await heard(bob) < 1e-6
            await alice.click("#camera")
            assert await alice.evaluate(
                "window.chatguard.localStream.getVideoTracks().every(t => !t.enabled)"
            )
            await wait_for_brightness(bob, "< 5")  # black frames
            await alice.click("#mute")
            await alice.click("#camera")
            await wait_for_brightness(bob, "> 20")
            await asyncio.sleep(1)
            assert await heard(bob) > 0

            await alice.evaluate("window.keptStream = window.chatguard.localStream")
            await alice.click("#stop")
            await wait_for_state(alice, "idle")
            assert await alice.evaluate(
                "window.keptStream.getTracks().every(t => t.readyState === 'ended')"
            )
            assert await alice.evaluate("document.querySelector('#local').srcObject === null")
            assert await alice.is_visible("#intro")
            await alice.click("#start")  # and Start asks for it again
            await wait_for_state(alice, "connected")
            assert await alice.evaluate(
                "window.chatguard.localStream.getTracks().every(t => t.readyState === 'live')"
            )


async def test_age_confirmation_comes_before_the_camera(tmp_path: Path) -> None:
    config = (
        "[relay]\nworkers = 0\n[web_client]\nrequire_age_confirmation = true\nminimum_age = 21\n"
    )
    with chatguard_serve(tmp_path, config) as url:
        async with chromium() as browser:
            (page,) = await open_pages(browser, url, 1)
            await page.wait_for_selector("#age-line:not([hidden])")
            assert "21 or older" in (await page.text_content("#age-line") or "")
            await page.click("#start")
            assert "confirm that you are 21" in (await page.text_content("#status") or "")
            assert await page.evaluate("window.chatguard.localStream === null")  # no camera
            await page.check("#age-confirm")
            await page.click("#start")
            await wait_for_state(page, "waiting")
            assert await page.evaluate("window.chatguard.localStream !== null")


async def test_esc_is_next_and_the_partner_keeps_reading_why_it_waits(tmp_path: Path) -> None:
    config = "[relay]\nworkers = 0\n[matchmaking]\nrepair_cooldown_s = 60\n"
    with chatguard_serve(tmp_path, config) as url:
        async with chromium() as browser:
            alice, bob = await open_pages(browser, url, 2)
            for page in (alice, bob):
                await page.click("#start")
            for page in (alice, bob):
                await wait_for_state(page, "connected")
            await alice.keyboard.press("Escape")
            for page in (alice, bob):
                await wait_for_state(page, "waiting")
            await asyncio.sleep(1.5)  # the server's "waiting" has long arrived
            assert "The stranger left" in (await bob.text_content("#status") or "")
            await alice.wait_for_selector("#wait-note >> text=not paired with the same person")
            note = await alice.text_content("#wait-note") or ""
            assert "Searching for" in note and "60 s" in note
            assert "Searching for" in (await bob.text_content("#wait-note") or "")


async def test_choosing_another_camera_keeps_the_call_going(tmp_path: Path) -> None:
    # Chromium's fake devices: 0 and 2 are ordinary cameras (1 is a depth camera, not sendable)
    with chatguard_serve(tmp_path, "[relay]\nworkers = 0\n") as url:
        async with chromium(["--use-fake-device-for-media-stream=device-count=3"]) as browser:
            alice, bob = await open_pages(browser, url, 2)
            for page in (alice, bob):
                await page.click("#start")
            for page in (alice, bob):
                await wait_for_state(page, "connected")
            cameras = await alice.eval_on_selector_all(
                "#camera-select option", "options => options.map(o => [o.value, o.textContent])"
            )
            assert [label for _, label in cameras] == [f"fake_device_{n}" for n in range(3)]
            assert await alice.input_value("#camera-select") == cameras[0][0]
            other = cameras[2][0]
            await wait_for_frames(bob, 10)
            before = await frames_decoded(bob)
            await alice.click("#devices summary")
            await alice.select_option("#camera-select", other)
            await alice.wait_for_function(
                """(id) => window.chatguard.pc.getSenders().some((s) => s.track
                    && s.track.kind === "video" && s.track.getSettings().deviceId === id)""",
                arg=other,
            )
            tracks = await alice.evaluate(
                "window.chatguard.localStream.getVideoTracks().map(t => t.label)"
            )
            assert tracks == ["fake_device_2"]  # the old camera was let go
            await wait_for_frames(bob, before + 20)  # and the new one reaches the partner
