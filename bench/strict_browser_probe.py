"""Real Chromium through a route: unsafe frames that reach the receiving page, and the sender's
quality, measured from the pages themselves.

Why: the strict route's promise ("no frame of an unsafe scene reaches the partner") and its cost
(what the gate does to the sender's congestion control) only show with a real browser's encoder
and bandwidth estimator on both ends; simulated senders answer neither. The sender's fake camera
(a y4m file Chromium loops) alternates safe photographs and photographs the policy blocks, every
frame's index stamped in its corner as a Gray-coded grid of black and white blocks (one block
changes from frame to frame, so the stamp barely moves the gate's scene signature), with a
checksum so a stamp mangled by the encoder is counted as unreadable instead of misread. The
receiving page reads the stamp of every frame its decoder outputs (``MediaStreamTrackProcessor``:
``requestVideoFrameCallback`` undercounts in headless mode), and both pages' ``getStats`` are
sampled every second.

Run it as ``chatguard bench strict-browser`` (``bench.strict_browser_bench``: both routes, the
relay route as the baseline); ``tests/test_strict_route_browser.py`` calls :func:`run`. Needs the
bench extra (Playwright) and Debian's ``/usr/bin/chromium``; never downloads a browser.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from bench.chromium import CHROMIUM, FLAGS
from bench.results import BrowserCall
from bench.service import DECISIONS_LOGGER, EmbeddedService, wait_for_relays, wait_until_up

if TYPE_CHECKING:
    from playwright.async_api import Page

WIDTH, HEIGHT, FPS = 640, 480, 30
INDEX_BITS: Final = 9
CHECK_BITS: Final = 4
GRID: Final = 4
"""The stamp is a GRID x GRID square of blocks: INDEX_BITS of the Gray-coded frame index, then
CHECK_BITS of the Gray-coded number of ones among them (both change by one block per frame), the
rest mid-grey."""
BLOCK: Final = 14
MARGIN: Final = 8
LEVELS: Final = (48, 208)
"""Block values for 0 and 1. Small blocks and less than full contrast: the gate takes a change
confined to part of the picture (``scene_peak_threshold``) for a new scene, and the stamp must
not be one, or every frame would wait for its own verdict."""
SCENES: Final = (
    ("rocket", False, 90),
    ("astronaut", True, 60),
    ("chelsea", False, 90),
    ("camera", True, 60),
)
"""(skimage photograph, unsafe under BLOCKED, frames): a 10 s loop. The model finds nothing in
``rocket`` and ``chelsea``; ``astronaut`` is FACE_FEMALE ~0.8, ``camera`` FACE_MALE ~0.58."""
BLOCKED: Final = ("FACE_FEMALE:0.4", "FACE_MALE:0.3")
LEAK_RUNS: Final = 3
LEAK_BEFORE_S: Final = 3.0
"""How far back from a leak's first frame at the page its decisions are kept: a cut waits
``settle_s`` (1 s) and more before it goes, and its cause may be older."""
LEAK_AFTER_S: Final = 0.3
FIRST_FRAME_S: Final = 120.0
"""How long each page may wait for its partner's first frame: on a loaded machine the strict
route's first verdicts time out (fail closed) for a while."""


def gray(n: int) -> int:
    return n ^ (n >> 1)


def stamp_bits(index: int) -> list[int]:
    """The GRID*GRID block values (row by row) that stamp frame ``index``."""
    code = gray(index % (1 << INDEX_BITS))
    check = gray(bin(code).count("1"))
    bits = [(code >> i) & 1 for i in range(INDEX_BITS)]
    return bits + [(check >> i) & 1 for i in range(CHECK_BITS)]


def read_stamp(bits: Sequence[int]) -> int | None:
    """The frame index a stamp's block values give, None when the checksum disagrees."""
    code = sum(b << i for i, b in enumerate(bits[:INDEX_BITS]))
    check = sum(b << i for i, b in enumerate(bits[INDEX_BITS:]))
    if check != gray(bin(code).count("1")):
        return None
    index = 0
    while code:
        index ^= code
        code >>= 1
    return index


def stamp(rgb: NDArray[np.uint8], index: int) -> NDArray[np.uint8]:
    """``rgb`` with frame ``index`` stamped in its top-left corner (in place)."""
    bits = stamp_bits(index)
    for i in range(GRID * GRID):
        y, x = MARGIN + (i // GRID) * BLOCK, MARGIN + (i % GRID) * BLOCK
        rgb[y : y + BLOCK, x : x + BLOCK] = LEVELS[bits[i]] if i < len(bits) else 128
    return rgb


def loop_length() -> int:
    return sum(frames for _, _, frames in SCENES)


def is_unsafe(index: int) -> bool:
    """Whether stamped frame ``index`` belongs to a scene the policy blocks."""
    at = index % loop_length()
    for _, unsafe, frames in SCENES:
        if at < frames:
            return unsafe
        at -= frames
    raise AssertionError("unreachable")


@cache
def _picture(name: str) -> NDArray[np.uint8]:
    import cv2
    import skimage.data

    img = np.asarray(getattr(skimage.data, name.removesuffix("_mirrored"))())
    if name.endswith("_mirrored"):
        img = img[:, ::-1]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    resized = cv2.resize(
        img[..., :3].astype(np.uint8), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA
    )
    return np.ascontiguousarray(resized)


def write_camera(path: Path) -> Path:
    """The sender's fake camera: SCENES in order, every frame stamped (~460 kB a frame)."""
    import cv2

    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        index = 0
        for name, _, frames in SCENES:
            for _ in range(frames):
                rgb = stamp(_picture(name).copy(), index)
                out.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
                index += 1
    return path


RECEIVER_JS = """
([grid, block, margin, nbits]) => {
  const pc = window.chatguard.pc;
  const receiver = pc.getReceivers().find((r) => r.track && r.track.kind === "video");
  const reader = new MediaStreamTrackProcessor({ track: receiver.track }).readable.getReader();
  const canvas = new OffscreenCanvas(640, 480);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const side = margin + grid * block;
  window.probe = { seen: [], times: [], unreadable: 0, sizes: {} };
  (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const size = value.displayWidth + "x" + value.displayHeight;
      window.probe.sizes[size] = (window.probe.sizes[size] || 0) + 1;
      ctx.drawImage(value, 0, 0, 640, 480);
      value.close();
      const data = ctx.getImageData(0, 0, side, side).data;
      const bits = [];
      let unsure = false;
      for (let i = 0; i < nbits; i++) {
        const q = Math.floor(block / 4), h = Math.floor(block / 2);
        const y0 = margin + Math.floor(i / grid) * block + q;
        const x0 = margin + (i % grid) * block + q;
        let sum = 0;
        for (let y = y0; y < y0 + h; y++) {
          for (let x = x0; x < x0 + h; x++) sum += data[(y * side + x) * 4 + 1];
        }
        const mean = sum / (h * h);
        if (mean > 100 && mean < 156) unsure = true;
        bits.push(mean >= 128 ? 1 : 0);
      }
      if (unsure) window.probe.unreadable += 1;
      else {
        window.probe.seen.push(bits);
        window.probe.times.push(Date.now() / 1000);
      }
    }
  })();
}
"""

STATS_JS = """
async () => {
  const out = { t: performance.now() / 1000 };
  (await window.chatguard.pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "video") {
      Object.assign(out, {
        width: r.frameWidth, height: r.frameHeight, fps: r.framesPerSecond,
        limitation: r.qualityLimitationReason, keyframes: r.keyFramesEncoded,
        frames_encoded: r.framesEncoded, bytes_sent: r.bytesSent,
        target_bitrate: r.targetBitrate,
      });
    } else if (r.type === "inbound-rtp" && r.kind === "video") {
      Object.assign(out, { frames_decoded: r.framesDecoded, plis_sent: r.pliCount });
    } else if (r.type === "candidate-pair" && r.nominated && r.availableOutgoingBitrate) {
      out.available_outgoing = r.availableOutgoingBitrate;
    }
  });
  return out;
}
"""

CAP_JS = """
async (maxBitrate) => {
  const sender = window.chatguard.pc.getSenders().find((s) => s.track && s.track.kind === "video");
  const params = sender.getParameters();
  params.encodings[0].maxBitrate = maxBitrate;
  await sender.setParameters(params);
}
"""


def unsafe_run_starts(indices: Sequence[int]) -> list[int]:
    """Loop positions where a run of unsafe frames at the page began (``indices``: the loop
    positions of the unsafe frames received)."""
    seen = set(indices)
    return sorted(i for i in seen if i - 1 not in seen)


def unsafe_run_times(indices: Sequence[int | None], times: Sequence[float]) -> list[float]:
    """When (wall clock, s) the page decoded the first frame of each run of unsafe frames
    (``indices``: every stamp read, in order, None where unreadable)."""
    starts, previous = [], False
    for index, at in zip(indices, times, strict=True):
        if index is None:
            continue
        unsafe = is_unsafe(index)
        if unsafe and not previous:
            starts.append(at)
        previous = unsafe
    return starts


def _iso_seconds(stamp: str) -> float:
    """A JSON log line's ``time`` (``2026-12-07T09:30:00.123Z``) as Unix seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def decision_events(lines: Sequence[str]) -> list[tuple[float, str, dict[str, Any]]]:
    """(Unix time, message, event) of every decision line a service logged as JSON."""
    found = []
    for line in lines:
        if DECISIONS_LOGGER not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == DECISIONS_LOGGER and "event" in record:
            found.append((_iso_seconds(record["time"]), record["message"], record["event"]))
    return found


def leak_trace(
    events: Sequence[tuple[float, str, dict[str, Any]]], run_times: Sequence[float]
) -> list[str]:
    """What the gate decided in the seconds before each of the first LEAK_RUNS runs of unsafe
    frames reached the page, as ``+seconds message`` lines from that run's first frame: every
    verdict and every frame the gate did more with than release on cover (which would bury
    the rest; their count is given instead)."""
    out = []
    for start in run_times[:LEAK_RUNS]:
        out.append(f"-- a run of unsafe frames reached the page at {start:.3f}")
        covered = 0
        for at, message, event in events:
            if not start - LEAK_BEFORE_S <= at <= start + LEAK_AFTER_S:
                continue
            if event.get("kind") == "frame" and event.get("inputs") == ["COVERED"]:
                covered += 1
                continue
            out.append(f"{at - start:+.3f} {message}")
        out.append(f"-- and {covered} frames released on cover in that window")
    return out


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the sender's figures over the second half of the run, rates from deltas."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return {}
    first, last = half[0], half[-1]
    span = last["t"] - first["t"]
    limitations: dict[str, int] = {}
    for s in half:
        limitations[str(s.get("limitation"))] = limitations.get(str(s.get("limitation")), 0) + 1
    frames = last.get("frames_encoded", 0) - first.get("frames_encoded", 0)
    return {
        "width": statistics.median(s.get("width") or 0 for s in half),
        "height": statistics.median(s.get("height") or 0 for s in half),
        "fps": round(frames / span, 1),
        "kbit_s": round((last.get("bytes_sent", 0) - first.get("bytes_sent", 0)) * 8 / span / 1000),
        "keyframe_share": round(
            (last.get("keyframes", 0) - first.get("keyframes", 0)) / max(frames, 1), 3
        ),
        "limitation": limitations,
        "available_outgoing_kbit_s": round(
            statistics.median(s.get("available_outgoing", 0) for s in half) / 1000
        ),
        "receiver_plis": last.get("receiver_plis", 0) - first.get("receiver_plis", 0),
        # the other direction: the receiving page's own camera (Chromium's default fake one, a
        # moving picture) as the sending page decodes it
        "partner_fps": round(
            (last.get("frames_decoded", 0) - first.get("frames_decoded", 0)) / span, 1
        ),
    }


async def _connected_page(browser: Any, url: str) -> Page:
    page: Page = await (await browser.new_context()).new_page()
    await page.goto(url)
    await page.click("#start")
    return page


async def _wait_for_frames(page: Page, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        state = await page.get_attribute("#status", "data-state")
        if state == "connected":
            stats = await page.evaluate(STATS_JS)
            if stats.get("frames_decoded", 0) > 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no frames decoded within {timeout_s:g} s (page state {state})")
        await asyncio.sleep(0.2)


async def probe(
    url: str, camera: Path, route: str, seconds: float, max_bitrate: int | None
) -> tuple[BrowserCall, list[float]]:
    """The call's figures, and when (Unix s) each run of unsafe frames reached the page."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launch = playwright.chromium.launch
        sending = await launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*FLAGS, f"--use-file-for-fake-video-capture={camera}"],
        )
        receiving = await launch(executable_path=CHROMIUM, headless=True, args=list(FLAGS))
        try:
            sender = await _connected_page(sending, url)
            receiver = await _connected_page(receiving, url)
            await _wait_for_frames(sender, FIRST_FRAME_S)
            await _wait_for_frames(receiver, FIRST_FRAME_S)
            if max_bitrate is not None:
                await sender.evaluate(CAP_JS, max_bitrate)
            await receiver.evaluate(RECEIVER_JS, [GRID, BLOCK, MARGIN, INDEX_BITS + CHECK_BITS])
            samples = []
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                await asyncio.sleep(1.0)
                sample = await sender.evaluate(STATS_JS)
                sample["receiver_plis"] = (await receiver.evaluate(STATS_JS)).get("plis_sent", 0)
                samples.append(sample)
            seen = await receiver.evaluate("() => window.probe")
        finally:
            await sending.close()
            await receiving.close()
    indices = [read_stamp(bits) for bits in seen["seen"]]
    readable = [i for i in indices if i is not None]
    unsafe = [i % loop_length() for i in readable if is_unsafe(i)]
    call = BrowserCall(
        route=route,
        seconds=seconds,
        max_bitrate_bps=max_bitrate,
        unsafe_frames=len(unsafe),
        safe_frames=len(readable) - len(unsafe),
        unreadable_frames=seen["unreadable"] + len(indices) - len(readable),
        unsafe_run_starts=unsafe_run_starts(unsafe),
        received_sizes=seen["sizes"],
        sender=summarize(samples),
        rembs_sent={},
    )
    return call, unsafe_run_times(indices, seen["times"])


def rembs_sent(metrics_url: str) -> dict[str, float]:
    """REMBs the relay sent its senders, by the figure that bound them
    (``relay.sender_bitrate.Bound``): which one held a squeezed sender down."""
    with urllib.request.urlopen(metrics_url, timeout=5.0) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for match in re.finditer(
        r'^\w+_relay_sender_rembs_total\{[^}]*bound="(\w+)"[^}]*\} (\S+)$', text, re.M
    ):
        found[match[1]] = found.get(match[1], 0.0) + float(match[2])
    return found


def run(
    route: str,
    seconds: float,
    max_bitrate: int | None,
    workdir: Path,
    moderation: Sequence[str] = (),
    decisions_to: Path | None = None,
) -> BrowserCall:
    """Start ``chatguard serve --route ROUTE`` here and probe one call through it;
    ``moderation``: extra ``[moderation]`` lines (``key = value``), to compare settings;
    ``decisions_to``: append the relay's decision log (JSON lines) there."""
    camera = write_camera(workdir / "camera.y4m")
    args = ["--route", route, "--relay-workers", "1"]
    for label in BLOCKED:
        args += ["--block", label]
    args += ["--log-format", "json"]
    lines = ["[moderation]", "strikes_to_ban = 1000000", "decision_log = true", *moderation]
    service = EmbeddedService(args, "\n".join(lines) + "\n")
    try:
        wait_until_up(service.endpoints.ws_url, 60)
        wait_for_relays(service.endpoints, 1, 120)
        url = service.endpoints.ws_url.replace("ws://", "http://").removesuffix("/ws")
        call, run_times = asyncio.run(probe(url, camera, route, seconds, max_bitrate))
        logged = service.logged()
        call.leak_trace = leak_trace(decision_events(logged), run_times)
        if decisions_to is not None:
            with decisions_to.open("a") as out:
                out.writelines(f"{line}\n" for line in logged if DECISIONS_LOGGER in line)
        call.rembs_sent = rembs_sent(service.endpoints.stats_url.removesuffix("stats") + "metrics")
        return call
    finally:
        service.stop()
