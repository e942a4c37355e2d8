# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""YUV420 planes straight to a letterboxed float32 model tensor in one pass.

Why: the naive route (PyAV ``to_ndarray("rgb24")`` or ``cv2.cvtColor``, then pad, resize and
normalise) converts and copies every source pixel three or four times although the model only
sees a 320x320 tensor. Here every output pixel is computed once, straight from the Y/U/V
planes, into a tensor the caller preallocates per stream, with the GIL released so several
streams can be preprocessed on a thread pool.

Semantics (``fastpath.reference.letterbox_yuv420`` implements exactly the same math in numpy):

* Geometry is NudeNet's ``_read_image``: the frame is padded with black to a square of side
  ``m = max(w, h)`` (bottom/right, or both sides with ``center=True``), and the square is
  resized to ``size x size`` like ``cv2.resize(..., INTER_LINEAR)``: ``src = (dst + 0.5) * m /
  size - 0.5`` computed in float32, two taps per axis, taps clamped at the square's borders.
  Taps that land in the padding contribute black.
* Chroma is sampled nearest: source pixel ``(x, y)`` uses ``U[y >> 1, x >> 1]`` (what
  libswscale's unscaled yuv420p->rgb24 path does).
* Colour is BT.601 limited ("video") range, the default for webcam VP8/H.264 and for PyAV's
  ``to_ndarray(format="rgb24")``.
* Y, U and V are interpolated first (bilinear over the same taps) and converted to RGB once per
  output pixel, then clamped to [0, 1]. Because the conversion is affine this equals
  "convert each tap, then interpolate" except where a tap is out of the RGB gamut (clamping),
  and it is three times cheaper. Padding taps are black in RGB, so the YUV offsets (16, 128,
  128) are subtracted only in proportion to the weight that fell inside the frame.
"""

import numpy as np

from libc.math cimport floor
from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

# BT.601 limited range, pre-divided by 255 so the result is already in [0, 1].
cdef float K_Y = <float>(255.0 / 219.0 / 255.0)
cdef float K_RV = <float>(1.402 * 255.0 / 224.0 / 255.0)
cdef float K_GU = <float>(-(1.772 * 0.114 / 0.587) * 255.0 / 224.0 / 255.0)
cdef float K_GV = <float>(-(1.402 * 0.299 / 0.587) * 255.0 / 224.0 / 255.0)
cdef float K_BU = <float>(1.772 * 255.0 / 224.0 / 255.0)


cdef inline float _clamp01(float x) noexcept nogil:
    if x < 0.0:
        return 0.0
    if x > 1.0:
        return 1.0
    return x


cdef class _Axis:
    """Two-tap lookup table for one axis: source indices (image coordinates) and weights."""

    cdef int32_t[::1] i0, i1, c0, c1
    cdef float[::1] w0, w1, ws

    def __init__(self, int n, int m, int offset, int size):
        self.i0 = np.empty(size, np.int32)
        self.i1 = np.empty(size, np.int32)
        self.c0 = np.empty(size, np.int32)
        self.c1 = np.empty(size, np.int32)
        self.w0 = np.empty(size, np.float32)
        self.w1 = np.empty(size, np.float32)
        self.ws = np.empty(size, np.float32)
        # cv2.resize computes scale as 1 / (dsize / ssize) in double, fx in float.
        cdef double scale = 1.0 / (<double>size / <double>m)
        cdef int d, s, a, b
        cdef float f, frac, wa, wb
        for d in range(size):
            f = <float>((d + 0.5) * scale - 0.5)
            s = <int>floor(f)
            frac = f - <float>s
            if s < 0:
                s = 0
                frac = 0.0
            if s >= m - 1:
                s = m - 1
                frac = 0.0
            a = s - offset
            b = s + 1 - offset
            wa = 1.0 - frac
            wb = frac
            if a < 0 or a >= n:
                wa = 0.0
                a = 0 if a < 0 else n - 1
            if b < 0 or b >= n:
                wb = 0.0
                b = 0 if b < 0 else n - 1
            self.i0[d] = a
            self.i1[d] = b
            self.c0[d] = a >> 1
            self.c1[d] = b >> 1
            self.w0[d] = wa
            self.w1[d] = wb
            self.ws[d] = wa + wb


cdef class Letterboxer:
    """Cached lookup tables for one (frame size, tensor size, placement); reuse per stream.

    ``run`` allocates no Python objects (only a few-KiB C scratch row per call), reads the
    tables only and releases the GIL, so one instance may be shared by threads.
    """

    cdef readonly int src_width
    cdef readonly int src_height
    cdef readonly int size
    cdef readonly bint center
    cdef readonly int offset_x
    cdef readonly int offset_y
    cdef _Axis _cols
    cdef _Axis _rows

    def __init__(self, int src_width, int src_height, int size, bint center=False):
        if src_width < 1 or src_height < 1:
            raise ValueError(f"frame size must be positive, got {src_width}x{src_height}")
        if size < 1:
            raise ValueError(f"tensor size must be positive, got {size}")
        cdef int m = max(src_width, src_height)
        self.src_width = src_width
        self.src_height = src_height
        self.size = size
        self.center = center
        self.offset_x = (m - src_width) // 2 if center else 0
        self.offset_y = (m - src_height) // 2 if center else 0
        self._cols = _Axis(src_width, m, self.offset_x, size)
        self._rows = _Axis(src_height, m, self.offset_y, size)

    @property
    def scale(self) -> float:
        """Tensor pixels per frame pixel: ``size / max(src_width, src_height)``."""
        return self.size / max(self.src_width, self.src_height)

    def to_frame(self, double x, double y) -> tuple[float, float]:
        """Map a point in tensor coordinates back to frame coordinates."""
        cdef double s = self.scale
        return x / s - self.offset_x, y / s - self.offset_y

    def run(self, y, u, v, out) -> None:
        """Fill ``out`` ((3, S, S) or (1, 3, S, S) float32, C-contiguous) from the planes."""
        cdef int cw = (self.src_width + 1) // 2
        cdef int ch = (self.src_height + 1) // 2
        cdef const uint8_t[:, :] yp = _plane(y, "y", self.src_height, self.src_width)
        cdef const uint8_t[:, :] up = _plane(u, "u", ch, cw)
        cdef const uint8_t[:, :] vp = _plane(v, "v", ch, cw)
        cdef float[:, :, ::1] o = _output(out, self.size)
        cdef float *scratch
        with nogil:
            scratch = <float *>malloc(6 * self.size * sizeof(float))
            if scratch != NULL:
                self._run(yp, up, vp, o, scratch)
                free(scratch)
        if scratch == NULL:
            raise MemoryError()

    cdef void _run(self, const uint8_t[:, :] yp, const uint8_t[:, :] up,
                   const uint8_t[:, :] vp, float[:, :, ::1] o,
                   float *scratch) noexcept nogil:
        cdef int S = self.size
        cdef int oy, ox, x0, x1, c0, c1
        cdef float wa, wb, wy0, wy1, ws, yv, uv, vv
        cdef const uint8_t *y0r
        cdef const uint8_t *y1r
        cdef const uint8_t *u0r
        cdef const uint8_t *u1r
        cdef const uint8_t *v0r
        cdef const uint8_t *v1r
        cdef float *ro
        cdef float *go
        cdef float *bo
        cdef const int32_t *ci0 = &self._cols.i0[0]
        cdef const int32_t *ci1 = &self._cols.i1[0]
        cdef const int32_t *cc0 = &self._cols.c0[0]
        cdef const int32_t *cc1 = &self._cols.c1[0]
        cdef const float *cw0 = &self._cols.w0[0]
        cdef const float *cw1 = &self._cols.w1[0]
        cdef const float *cws = &self._cols.ws[0]
        # Horizontal pass results for the two source rows (Y, U, V), then a vectorisable
        # vertical blend + colour conversion over contiguous rows.
        cdef float *hy0 = scratch
        cdef float *hy1 = hy0 + S
        cdef float *hu0 = hy1 + S
        cdef float *hu1 = hu0 + S
        cdef float *hv0 = hu1 + S
        cdef float *hv1 = hv0 + S
        for oy in range(S):
            ro = &o[0, oy, 0]
            go = &o[1, oy, 0]
            bo = &o[2, oy, 0]
            wy0 = self._rows.w0[oy]
            wy1 = self._rows.w1[oy]
            if wy0 == 0.0 and wy1 == 0.0:
                memset(ro, 0, S * sizeof(float))
                memset(go, 0, S * sizeof(float))
                memset(bo, 0, S * sizeof(float))
                continue
            y0r = &yp[self._rows.i0[oy], 0]
            y1r = &yp[self._rows.i1[oy], 0]
            u0r = &up[self._rows.c0[oy], 0]
            u1r = &up[self._rows.c1[oy], 0]
            v0r = &vp[self._rows.c0[oy], 0]
            v1r = &vp[self._rows.c1[oy], 0]
            for ox in range(S):
                x0 = ci0[ox]
                x1 = ci1[ox]
                c0 = cc0[ox]
                c1 = cc1[ox]
                wa = cw0[ox]
                wb = cw1[ox]
                hy0[ox] = wa * y0r[x0] + wb * y0r[x1]
                hy1[ox] = wa * y1r[x0] + wb * y1r[x1]
                hu0[ox] = wa * u0r[c0] + wb * u0r[c1]
                hu1[ox] = wa * u1r[c0] + wb * u1r[c1]
                hv0[ox] = wa * v0r[c0] + wb * v0r[c1]
                hv1[ox] = wa * v1r[c0] + wb * v1r[c1]
            ws = wy0 + wy1
            for ox in range(S):
                yv = wy0 * hy0[ox] + wy1 * hy1[ox] - 16.0 * (ws * cws[ox])
                uv = wy0 * hu0[ox] + wy1 * hu1[ox] - 128.0 * (ws * cws[ox])
                vv = wy0 * hv0[ox] + wy1 * hv1[ox] - 128.0 * (ws * cws[ox])
                ro[ox] = _clamp01(K_Y * yv + K_RV * vv)
                go[ox] = _clamp01(K_Y * yv + K_GU * uv + K_GV * vv)
                bo[ox] = _clamp01(K_Y * yv + K_BU * uv)


def _plane(a: object, name: str, int h, int w):
    """Validate one input plane; returns an array whose rows are contiguous (strided ok)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} plane must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.uint8:
        raise TypeError(f"{name} plane must be uint8, got {a.dtype}")
    if a.ndim != 2 or a.shape[0] != h or a.shape[1] != w:
        raise ValueError(f"{name} plane must have shape ({h}, {w}), got {a.shape}")
    if a.strides[1] != 1:
        a = np.ascontiguousarray(a)  # rare: column-strided view; rows with padding are fine
    return a


def _output(out: object, int size):
    """Validate the output tensor and return it as a (3, S, S) view."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"out must be float32, got {out.dtype}")
    if out.shape != (3, size, size) and out.shape != (1, 3, size, size):
        raise ValueError(f"out must have shape (3, {size}, {size}) or (1, 3, {size}, {size}), "
                         f"got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    return out.reshape(3, size, size)


_CACHE: dict = {}
_CACHE_MAX = 16


def letterboxer(int src_width, int src_height, int size, bint center=False) -> Letterboxer:
    """Return a cached Letterboxer for this geometry (small LRU-ish cache, oldest evicted)."""
    key = (src_width, src_height, size, bool(center))
    lb = _CACHE.get(key)
    if lb is None:
        lb = Letterboxer(src_width, src_height, size, center)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = lb
    return lb


def letterbox_yuv420(y, u, v, out, bint center=False) -> float:
    """Fill ``out`` from YUV420 planes; returns the scale (tensor px per frame px).

    The frame size comes from the Y plane and the tensor size from ``out``.
    """
    if not isinstance(y, np.ndarray) or y.ndim != 2:
        raise TypeError("y plane must be a 2-D numpy array")
    if not isinstance(out, np.ndarray) or out.ndim < 2:
        raise TypeError("out must be a numpy array of shape (3, S, S) or (1, 3, S, S)")
    lb = letterboxer(y.shape[1], y.shape[0], out.shape[out.ndim - 1], center)
    lb.run(y, u, v, out)
    return lb.scale
