"""What a camera that pans costs on the strict route: frames the gate releases, drops and sends to
the model while the whole picture slides, by speed and by verdict delay.

Run ``.venv/bin/python -m bench.strict_motion_probe`` (needs the ``bench`` extra: skimage, cv2;
a few seconds, no model: every verdict is safe). Why this way: a moving camera is what real
users send and what the probe's browser calls do not (their moving fake camera flashes a disc
and ramps its background, which no signature rule tells from new content), so the gate's own
behaviour under motion is replayed here on photographs panned across a 640x480 window at 30
fps, uncompressed (no encoder: a real stream adds its noise to the signatures), verdicts
arriving ``delay`` frames after their request. Released + dropped + still held = frames sent;
a drop restarts the stream at a keyframe.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastpath.scene import luma_detail, luma_signature
from relay.strict.gate import Classify, Finding, GateConfig, ModerationGate

FPS = 30
FRAMES = 120
PHOTOS = ("chelsea", "astronaut", "coffee")
SPEEDS = (2, 4, 8, 12)
"""Pixels per frame: 60-360 px/s across a 640-pixel picture."""
DELAYS = (1, 2)
"""Verdict delay in frames: 33 ms (a quiet worker), 67 ms (a loaded one)."""


def panned(photo: str, speed: int) -> Iterator[tuple[np.ndarray, float]]:
    """Each frame's signature and detail as the window slides ``speed`` pixels right."""
    import cv2
    import skimage.data

    img = np.asarray(getattr(skimage.data, photo)())
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    big = cv2.resize(img, (640 + speed * FRAMES + 40, 520), interpolation=cv2.INTER_LINEAR)
    for k in range(FRAMES):
        y = np.ascontiguousarray(big[20:500, 20 + speed * k : 660 + speed * k], np.uint8)
        sig = np.empty((18, 32), np.float32)
        luma_signature(y, sig)
        yield sig, luma_detail(y)


def play(photo: str, speed: int, delay: int, config: GateConfig) -> tuple[int, int, int]:
    """Released, dropped and classified frames of one panned photograph."""
    gate = ModerationGate(config)
    pending: list[tuple[int, float]] = []
    classified = 0
    for k, (sig, detail) in enumerate(panned(photo, speed)):
        t = k / FPS
        asked = [
            a.frame_id for a in gate.on_frame(k, k == 0, sig, t, detail) if isinstance(a, Classify)
        ]
        classified += len(asked)
        pending += [(fid, t) for fid in asked]
        while pending and pending[0][1] <= t - delay / FPS + 1e-9:
            gate.on_verdict(pending.pop(0)[0], Finding.SAFE, "", 0.0, t + 0.001)
        gate.on_tick(t)
    return gate.released, gate.dropped, classified


def main() -> None:
    print(f"{FRAMES} frames at {FPS} fps, every verdict safe; released / dropped / classified")
    print(f"{'photo':<10} {'px/frame':>8} " + " ".join(f"{f'delay {d}':>18}" for d in DELAYS))
    for photo in PHOTOS:
        for speed in SPEEDS:
            cells = [play(photo, speed, delay, GateConfig()) for delay in DELAYS]
            row = " ".join(f"{f'{r} / {d} / {c}':>18}" for r, d, c in cells)
            print(f"{photo:<10} {speed:>8} {row}")


if __name__ == "__main__":
    main()
