"""Headless Debian Chromium driven by Playwright, with a fake camera; never downloads a browser."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from playwright.async_api import Browser, Page, async_playwright

from bench.chromium import CHROMIUM, FLAGS

# Skipped on a developer's machine without Chromium; in CI (.ci/run installs it) a missing
# browser must fail loudly instead of silently skipping the end-to-end tests.
requires_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="Debian chromium is not installed (.ci/run installs it)",
)


@asynccontextmanager
async def chromium(extra_args: list[str] | None = None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*FLAGS, *(extra_args or [])]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def status_of(page: Page) -> tuple[str, str]:
    state = await page.get_attribute("#status", "data-state")
    route = await page.get_attribute("#status", "data-route")
    return state or "", route or ""


async def wait_for_state(page: Page, state: str, timeout_s: float = 20) -> None:
    await page.wait_for_selector(f'#status[data-state="{state}"]', timeout=timeout_s * 1000)


FRAMES_DECODED_JS = """
async () => {
  const pc = window.chatguard.pc;
  if (!pc) return -1;
  let frames = 0;
  (await pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") {
      frames += report.framesDecoded || 0;
    }
  });
  return frames;
}
"""


async def frames_decoded(page: Page) -> int:
    return int(await page.evaluate(FRAMES_DECODED_JS))


async def wait_for_frames(page: Page, at_least: int, timeout_s: float = 20) -> int:
    """Poll getStats until the current call has decoded `at_least` video frames."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    frames = await frames_decoded(page)
    while frames < at_least:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {frames} video frames decoded, wanted {at_least}")
        await asyncio.sleep(0.2)
        frames = await frames_decoded(page)
    return frames


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 5) -> Path:
    """A fake-camera file showing `rgb` (HxWx3, even sizes) for Chromium's
    --use-file-for-fake-video-capture, which loops it."""
    height, width = rgb.shape[:2]
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    planes = b"".join(
        np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:, : plane.width].tobytes()
        for plane in yuv.planes
    )
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)
    return path


async def report(page: Page, reason: str) -> None:
    """Report the partner the way a user does: Report, pick a reason, confirm."""
    await page.click("#report")
    await page.wait_for_selector("#report-dialog:not([hidden])")
    assert await page.is_disabled("#report-confirm")  # a reason first
    await page.check(f'input[name="report-reason"][value="{reason}"]')
    await page.click("#report-confirm")
    assert await page.is_hidden("#report-dialog")


async def open_pages(browser: Browser, url: str, count: int) -> list[Page]:
    """`count` pages at `url`, each in a context of its own (its own device id and camera)."""
    pages = []
    for _ in range(count):
        page = await (await browser.new_context()).new_page()
        await page.goto(url)
        pages.append(page)
    return pages


SELECTED_PAIR_JS = """
async () => {
  const pc = window.chatguard && window.chatguard.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId);
    }
  });
  if (!pair) {
    stats.forEach((r) => {
      if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r;
    });
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {
    nominated: pair.nominated, state: pair.state,
    local_protocol: local.protocol, local_tcp_type: local.tcpType || null,
    local_type: local.candidateType, local_relay_protocol: local.relayProtocol || null,
    remote_protocol: remote.protocol, remote_address: remote.address, remote_port: remote.port,
  };
}
"""


async def selected_pair(page: Page, timeout_s: float = 5.0) -> dict[str, Any] | None:
    """The browser's selected ICE candidate pair (getStats), or None before there is one.
    A pair whose state reads "in-progress" is read again for up to ``timeout_s``: Chromium
    shows the selected pair so while a check of it (consent, every few seconds) is in flight,
    as it did once in a clean-clone CI run, with media flowing on it."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await page.evaluate(SELECTED_PAIR_JS)
        if found is None or found.get("state") != "in-progress" or time.monotonic() > deadline:
            return None if found is None else dict(found)
        await asyncio.sleep(0.2)
