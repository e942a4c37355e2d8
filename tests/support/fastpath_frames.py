"""Shared helpers for the fast-path tests: synthetic frames pushed through PyAV's yuv420p."""

from __future__ import annotations

import av
import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]


def synthetic_rgb(w: int, h: int, noise: int = 0, seed: int = 0) -> U8:
    """A smooth colourful image (bicubic-upscaled random grid) plus optional uniform noise."""
    rng = np.random.default_rng(seed)
    grid = (rng.random((9, 12, 3)) * 255).astype(np.uint8)
    base = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, 3)
    if noise:
        base = np.clip(base.astype(np.int16) + rng.integers(-noise, noise + 1, base.shape), 0, 255)
    return np.ascontiguousarray(base, dtype=np.uint8)


def yuv_frame(rgb: U8) -> av.VideoFrame:
    """The frame a decoder would hand us: PyAV's own RGB -> yuv420p conversion."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def planes(frame: av.VideoFrame) -> tuple[U8, U8, U8]:
    """Y, U, V as zero-copy views with PyAV's row padding (``line_size`` may exceed width)."""
    views = [
        np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width]
        for p in frame.planes
    ]
    return views[0], views[1], views[2]


def i420_to_rgb_cv2(y: U8, u: U8, v: U8) -> U8:
    """OpenCV's BT.601 limited-range I420 -> RGB (even frame sizes only)."""
    h, w = y.shape
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    return np.asarray(cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420), dtype=np.uint8)


def opencv_route(rgb: U8, size: int, center: bool = False) -> npt.NDArray[np.float32]:
    """Pad to a square (bottom/right, or centred), cv2.resize INTER_LINEAR, /255, CHW."""
    h, w = rgb.shape[:2]
    m = max(w, h)
    top, left = ((m - h) // 2, (m - w) // 2) if center else (0, 0)
    padded = cv2.copyMakeBorder(
        rgb, top, m - h - top, left, m - w - left, cv2.BORDER_CONSTANT, value=0
    )
    small = cv2.resize(padded, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(small.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)
