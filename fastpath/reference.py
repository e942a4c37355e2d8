"""Plain numpy reference implementations of the Cython fast paths.

Why: they pin down the exact semantics (the tests compare the Cython code against them) and
they are the "naive" vectorised baseline the benchmark measures. Every operation is done in
float32 in the same order as the Cython kernels, so results agree to float rounding.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

# BT.601 limited range ("video range"), pre-divided by 255.
K_Y = np.float32(255.0 / 219.0 / 255.0)
K_RV = np.float32(1.402 * 255.0 / 224.0 / 255.0)
K_GU = np.float32(-(1.772 * 0.114 / 0.587) * 255.0 / 224.0 / 255.0)
K_GV = np.float32(-(1.402 * 0.299 / 0.587) * 255.0 / 224.0 / 255.0)
K_BU = np.float32(1.772 * 255.0 / 224.0 / 255.0)


def axis_taps(n: int, m: int, offset: int, size: int) -> tuple[I64, I64, F32, F32]:
    """cv2 INTER_LINEAR taps for one axis of an ``m``-long padded square resized to ``size``.

    The frame occupies square positions ``[offset, offset + n)``. Returns frame indices
    (clamped into range) and float32 weights, with weight 0 for taps that fall in the padding.
    """
    scale = 1.0 / (size / m)
    f = ((np.arange(size, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    frac = (f - s.astype(np.float32)).astype(np.float32)
    low = s < 0
    s[low], frac[low] = 0, 0
    high = s >= m - 1
    s[high], frac[high] = m - 1, 0
    i0, i1 = s - offset, s + 1 - offset
    w0 = np.where((i0 >= 0) & (i0 < n), np.float32(1) - frac, np.float32(0)).astype(np.float32)
    w1 = np.where((i1 >= 0) & (i1 < n), frac, np.float32(0)).astype(np.float32)
    return np.clip(i0, 0, n - 1), np.clip(i1, 0, n - 1), w0, w1


def letterbox_yuv420(y: U8, u: U8, v: U8, out: F32, center: bool = False) -> float:
    """Reference for ``fastpath.preprocess.letterbox_yuv420`` (same signature, same math)."""
    h, w = y.shape
    size = out.shape[-1]
    m = max(w, h)
    off_x = (m - w) // 2 if center else 0
    off_y = (m - h) // 2 if center else 0
    x0, x1, wx0, wx1 = axis_taps(w, m, off_x, size)
    r0, r1, wy0, wy1 = axis_taps(h, m, off_y, size)
    cx0, cx1, cr0, cr1 = x0 >> 1, x1 >> 1, r0 >> 1, r1 >> 1

    def interp(p: U8, a0: I64, a1: I64, b0: I64, b1: I64) -> F32:
        # Vertical blend first, then horizontal: the Cython kernel's order of operations.
        top, bot = p[a0].astype(np.float32), p[a1].astype(np.float32)
        t0 = wy0[:, None] * top[:, b0] + wy1[:, None] * bot[:, b0]
        t1 = wy0[:, None] * top[:, b1] + wy1[:, None] * bot[:, b1]
        res: F32 = wx0 * t0 + wx1 * t1
        return res

    ws = (wy0 + wy1)[:, None] * (wx0 + wx1)[None, :]
    yv = interp(y, r0, r1, x0, x1) - np.float32(16) * ws
    uv = interp(u, cr0, cr1, cx0, cx1) - np.float32(128) * ws
    vv = interp(v, cr0, cr1, cx0, cx1) - np.float32(128) * ws
    o = out.reshape(3, size, size)
    np.clip(K_Y * yv + K_RV * vv, 0, 1, out=o[0])
    np.clip(K_Y * yv + K_GU * uv + K_GV * vv, 0, 1, out=o[1])
    np.clip(K_Y * yv + K_BU * uv, 0, 1, out=o[2])
    return float(size / m)


def cell_bounds(n: int, cells: int) -> tuple[I64, I64]:
    """Start/end (exclusive) of each of ``cells`` box cells over ``n`` pixels, never empty."""
    i = np.arange(cells, dtype=np.int64)
    start = np.minimum(i * n // cells, n - 1)
    end = np.maximum((i + 1) * n // cells, start + 1)
    return start, end


def luma_signature(y: U8, out: F32) -> None:
    """Reference for ``fastpath.scene.luma_signature``: box means of Y over ``out``'s grid."""
    gh, gw = out.shape
    integral = np.zeros((y.shape[0] + 1, y.shape[1] + 1), np.int64)
    integral[1:, 1:] = y.astype(np.int64).cumsum(0).cumsum(1)
    rs, re = cell_bounds(y.shape[0], gh)
    cs, ce = cell_bounds(y.shape[1], gw)
    sums = integral[re][:, ce] - integral[rs][:, ce] - integral[re][:, cs] + integral[rs][:, cs]
    area = (re - rs)[:, None] * (ce - cs)[None, :]
    out[...] = sums / area


def signature_distance(a: F32, b: F32) -> float:
    """Reference for ``fastpath.scene.signature_distance``: mean absolute difference."""
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def peak_change(a: F32, b: F32, cells: int) -> float:
    """Reference for ``fastpath.scene.peak_change``: mean of the largest cell differences."""
    d = np.sort(np.abs(a.astype(np.float64) - b.astype(np.float64)).ravel())
    return float(np.mean(d[-min(cells, d.size) :]))


def luma_detail(y: U8) -> float:
    """Reference for ``fastpath.scene.luma_detail``: mean absolute horizontal step, even rows."""
    if y.shape[1] < 2:
        return 0.0
    rows = y[::2].astype(np.int64)
    return float(np.abs(np.diff(rows, axis=1)).sum() / (rows.shape[0] * (y.shape[1] - 1)))
