"""The strict workload's clip: photographs with cuts, one segment unsafe under a test policy.

The clip (:func:`bench.relay_clip.encode_clip`, drawn by :func:`draw`) cuts between photographs
from ``skimage.data`` every 1-1.8 s with a slow pan, hand-shake jitter and sensor noise, so the
gate's scene-change path runs at a realistic rate. One segment shows ``astronaut``, unsafe under
the test policy (FACE_FEMALE only); it starts in delta frames. The VP8 picture id of every
packet is the frame's index in the clip, so a receiver identifies every frame it gets and a
leak (a frame of an unsafe segment) is counted exactly.

scikit-image (the photographs) and OpenCV (resizing) are the ``bench`` extra's: imported where
a picture is made, so that importing this module (the policy, the unsafe frames) needs neither.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from bench.relay_clip import FPS, HEIGHT, WIDTH, Clip, encode_clip
from fastpath.scene import luma_signature, signature_distance
from relay.strict.block_policy import ModerationPolicy
from relay.strict.moderation import SIGNATURE_GRID

NEEDS: Final = ("skimage", "cv2")
"""What making the clip imports (:func:`bench.extra.require`)."""
POLICY: Final = ModerationPolicy(thresholds={"FACE_FEMALE": 0.5})
UNSAFE_PHOTOS: Final = frozenset({"astronaut"})
SEGMENTS: Final = (
    ("rocket", 55),
    ("coffee", 55),
    ("astronaut", 30),
    ("chelsea", 50),
    ("camera", 50),
)
"""(photograph, frames): 8 s looped, a cut every 1-1.8 s. The unsafe segment [110, 140) starts
in delta frames; the clip's keyframes (every 2 s: 0, 60, 120, 180) include one inside it."""
KEYFRAME_S: Final = 2.0
PAN_PX_PER_S: Final = 15
"""How fast the camera drifts within a segment: a slow pan, not a sweep (a sweep of the
textured photographs changes the scene signature within a second, which is a scene change)."""


def segment_starts() -> list[int]:
    """Clip index of each segment's first frame."""
    starts, i = [], 0
    for _, frames in SEGMENTS:
        starts.append(i)
        i += frames
    return starts


CLIP_FRAMES: Final = sum(f for _, f in SEGMENTS)
CUTS: Final = frozenset(segment_starts())
UNSAFE: Final = frozenset(
    i
    for start, (name, frames) in zip(segment_starts(), SEGMENTS, strict=True)
    if name in UNSAFE_PHOTOS
    for i in range(start, start + frames)
)
"""Clip indexes of the frames the policy must never let through."""


@cache
def photo(name: str) -> NDArray[np.uint8]:
    """The photograph as RGB, wide enough to pan across a whole segment."""
    import cv2
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    longest = max(f for _, f in SEGMENTS)
    return np.ascontiguousarray(
        cv2.resize(
            img[..., :3],
            (WIDTH + PAN_PX_PER_S * longest // FPS + 8, HEIGHT + 8),
            interpolation=cv2.INTER_AREA,
        )
    )


def draw(index: int) -> NDArray[np.uint8]:
    """Clip frame ``index``: its segment's photograph, panned, shaken and noisy like a webcam."""
    starts = segment_starts()
    seg = max(k for k, s in enumerate(starts) if s <= index % CLIP_FRAMES)
    t = index % CLIP_FRAMES - starts[seg]
    rng = np.random.default_rng(index)
    dx, dy = rng.integers(0, 5, 2)
    x = PAN_PX_PER_S * t // FPS + int(dx)
    img = photo(SEGMENTS[seg][0])[int(dy) : int(dy) + HEIGHT, x : x + WIDTH]
    noise = rng.normal(0.0, 2.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def strict_clip() -> Clip:
    """The clip every sender replays (encoded once, about 1 s)."""
    return encode_clip(seconds=CLIP_FRAMES / FPS, keyframe_s=KEYFRAME_S, draw=draw)


def cut_distances() -> list[float]:
    """Signature distance across each cut: must exceed the gate's scene threshold, or the new
    scene would be covered by the old one's verdict and the cut would test nothing."""
    import cv2

    sig = [np.empty(SIGNATURE_GRID, np.float32) for _ in range(2)]
    out = []
    for s in segment_starts():
        for k, i in enumerate((s - 1, s)):
            y = np.asarray(cv2.cvtColor(draw(i % CLIP_FRAMES), cv2.COLOR_RGB2GRAY), np.uint8)
            luma_signature(y, sig[k])
        out.append(round(float(signature_distance(sig[0], sig[1])), 1))
    return out
