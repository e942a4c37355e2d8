# distutils: extra_compile_args = -O3 -ffinite-math-only -fno-signed-zeros
# (those two flags let gcc/clang turn the [0, 1] clamps into minps/maxps; the kernels never see
# NaN, infinities or signed zeros. They replace setup.py's flags for this module, hence -O3.)
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
* Chroma is sampled nearest: source pixel ``(x, y)`` uses ``U[y >> 1, x >> 1]``, as
  OpenCV's COLOR_YUV2RGB_I420 and libswscale's unscaled yuv420p->rgb24 path do for even sizes
  (swscale interpolates chroma for odd sizes; we do not).
* Colour is BT.601 limited ("video") range, the default for webcam VP8/H.264 and for PyAV's
  ``to_ndarray(format="rgb24")``, with exact coefficients: at scale 1 the result equals
  cv2.cvtColor(COLOR_YUV2RGB_I420) / 255 to within its uint8 rounding; PyAV's default
  swscale path truncates and reads up to 3/255 (mean ~1/255) lower.
* Y, U and V are interpolated first (bilinear over the same taps) and converted to RGB once per
  output pixel, then clamped to [0, 1]. Because the conversion is affine this equals
  "convert each tap, then interpolate" except where a tap is out of the RGB gamut (clamping),
  and it is three times cheaper. Padding taps are black in RGB, so the YUV offsets (16, 128,
  128) are subtracted only in proportion to the weight that fell inside the frame.

Speed: integer scale factors 2, 4, 6, 8 (640x480, 480x640, 640x360, 1280x720, 1920x1080 to
320) run one fused loop per output row with constant strides that gcc vectorises; when all
four bilinear weights are 0.5 the taps are summed in integers (bit-identical). Other scales
blend the two source rows into a small row buffer (vectorised), gather horizontal taps, then
convert the row (vectorised). Edge columns go through the lookup tables.
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


cdef struct Taps:
    # Raw view of an _Axis for nogil code (the _Axis object keeps the arrays alive).
    const int32_t *i0
    const int32_t *i1
    const int32_t *c0
    const int32_t *c1
    const float *w0
    const float *w1
    const float *ws
    int lo, hi, k, a, ca, cb
    float wa, wb


cdef class _Axis:
    """Two-tap lookup table for one axis: frame indices, chroma indices and weights.

    Also records the "regular" interior where taps follow ``i0 = k * d + a`` (k integer, same
    weights everywhere), as for 640 -> 320 or 1280 -> 320, so the horizontal pass can use
    constant-stride loops the C compiler vectorises instead of table gathers.
    """

    cdef int32_t[::1] i0, i1, c0, c1
    cdef float[::1] w0, w1, ws
    cdef int lo, hi, k, a, ca, cb
    cdef float wa, wb

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
        self._find_regular(m, size)

    cdef void _find_regular(self, int m, int size):
        self.lo = self.hi = 0
        self.k = 0
        if m % size != 0 or m // size not in (2, 4, 6, 8):
            return
        cdef int k = m // size
        cdef int d, lo = -1, hi = -1, first = 0
        while first < size - 1 and (self.w0[first] == 0.0 or self.w1[first] == 0.0):
            first += 1  # the first column with both taps inside the frame defines the pattern
        cdef int a = self.i0[first] - k * first
        cdef float wa = self.w0[first], wb = self.w1[first]
        for d in range(size):
            if (self.i0[d] == k * d + a and self.i1[d] == self.i0[d] + 1
                    and self.w0[d] == wa and self.w1[d] == wb and wa != 0.0):
                if lo < 0:
                    lo = d
                elif hi != d:
                    return  # not one contiguous run: keep the generic path
                hi = d + 1
        if lo < 0:
            return
        # Chroma taps c = x >> 1 must be affine too: c0 = ck * d + ca, c1 = c0 + cb.
        cdef int ck = k // 2
        cdef int ca = self.c0[lo] - ck * lo
        cdef int cb = self.c1[lo] - self.c0[lo]
        for d in range(lo, hi):
            if self.c0[d] != ck * d + ca or self.c1[d] != self.c0[d] + cb:
                return
        self.lo, self.hi, self.k, self.a, self.wa, self.wb = lo, hi, k, a, wa, wb
        self.ca, self.cb = ca, cb

    cdef Taps taps(self):
        cdef Taps t
        t.i0, t.i1, t.c0, t.c1 = &self.i0[0], &self.i1[0], &self.c0[0], &self.c1[0]
        t.w0, t.w1, t.ws = &self.w0[0], &self.w1[0], &self.ws[0]
        t.lo, t.hi, t.k, t.a, t.ca, t.cb = self.lo, self.hi, self.k, self.a, self.ca, self.cb
        t.wa, t.wb = self.wa, self.wb
        return t


cdef extern from *:
    """
    /* Written in C so gcc sees min/max patterns it can vectorise (maxps/minps). */
    static inline float fastpath_clamp01(float x) {
        x = x < 0.0f ? 0.0f : x;
        return x > 1.0f ? 1.0f : x;
    }
    """
    float _clamp01 "fastpath_clamp01"(float x) noexcept nogil
    # Non-aliasing pointers: without them gcc must assume stores may hit the inputs and
    # refuses to vectorise the multi-output loops.
    ctypedef float *fout "float * __restrict"
    ctypedef const float *fin "const float * __restrict"


cdef struct Src:
    # The two source rows (and chroma rows) that one output row blends, and their weights.
    const uint8_t *y0
    const uint8_t *y1
    const uint8_t *u0
    const uint8_t *u1
    const uint8_t *v0
    const uint8_t *v1
    float wy0, wy1


cdef inline void _regular(const Src *s, const Taps *c, Py_ssize_t k, fout ro, fout go,
                          fout bo) noexcept nogil:
    """The regular interior ``[c.lo, c.hi)`` of one output row in one fused loop.

    Luma taps are ``y[k*d + a]``, ``y[k*d + a + 1]``, chroma taps ``u[k/2*d + ca]``,
    ``u[k/2*d + ca + cb]``. Callers pass a literal ``k`` so gcc vectorises with constant
    strides. Locals everywhere: gcc must see that nothing read can alias the outputs.
    """
    cdef const uint8_t *y0 = s.y0 + c.a
    cdef const uint8_t *y1 = s.y1 + c.a
    cdef const uint8_t *u0 = s.u0 + c.ca
    cdef const uint8_t *u1 = s.u1 + c.ca
    cdef const uint8_t *v0 = s.v0 + c.ca
    cdef const uint8_t *v1 = s.v1 + c.ca
    # Py_ssize_t, not int: with Python's -fwrapv, int index arithmetic may wrap, so gcc cannot
    # prove the accesses affine and refuses to vectorise.
    cdef Py_ssize_t d, kc = k >> 1, cb = c.cb
    cdef float wy0 = s.wy0, wy1 = s.wy1, wa = c.wa, wb = c.wb
    cdef float ws = (wy0 + wy1) * (wa + wb)
    cdef float oy = 16.0 * ws, oc = 128.0 * ws
    cdef float ky = K_Y, krv = K_RV, kgu = K_GU, kgv = K_GV, kbu = K_BU
    cdef float yv, uv, vv
    for d in range(c.lo, c.hi):
        yv = (wa * (wy0 * y0[k * d] + wy1 * y1[k * d])
              + wb * (wy0 * y0[k * d + 1] + wy1 * y1[k * d + 1])) - oy
        uv = (wa * (wy0 * u0[kc * d] + wy1 * u1[kc * d])
              + wb * (wy0 * u0[kc * d + cb] + wy1 * u1[kc * d + cb])) - oc
        vv = (wa * (wy0 * v0[kc * d] + wy1 * v1[kc * d])
              + wb * (wy0 * v0[kc * d + cb] + wy1 * v1[kc * d + cb])) - oc
        ro[d] = _clamp01(ky * yv + krv * vv)
        go[d] = _clamp01(ky * yv + kgu * uv + kgv * vv)
        bo[d] = _clamp01(ky * yv + kbu * uv)


cdef inline void _regular_half(const Src *s, const Taps *c, Py_ssize_t k, bint direct,
                               fout ro, fout go, fout bo) noexcept nogil:
    """``_regular`` when all four weights are 0.5 (every interior row of 640->320, 1280->320).

    Then the bilinear value is exactly a quarter of an integer sum of the four taps, so summing
    in integers is bit-identical to the float formula and much cheaper. ``direct``: all four
    taps of a pixel share one chroma sample (e.g. k = 2 or 6 with even offsets), which is then
    read once. Callers pass literal ``k`` and ``direct``.
    """
    cdef const uint8_t *y0 = s.y0 + c.a
    cdef const uint8_t *y1 = s.y1 + c.a
    cdef const uint8_t *u0 = s.u0 + c.ca
    cdef const uint8_t *u1 = s.u1 + c.ca
    cdef const uint8_t *v0 = s.v0 + c.ca
    cdef const uint8_t *v1 = s.v1 + c.ca
    cdef Py_ssize_t d, kc = k >> 1, cb = c.cb
    cdef float q = 0.25, oy = 16.0, oc = 128.0
    cdef float ky = K_Y, krv = K_RV, kgu = K_GU, kgv = K_GV, kbu = K_BU
    cdef float yv, uv, vv
    for d in range(c.lo, c.hi):
        yv = <float>(<int>y0[k * d] + y0[k * d + 1] + y1[k * d] + y1[k * d + 1]) * q - oy
        if direct:
            uv = <float>u0[kc * d] - oc
            vv = <float>v0[kc * d] - oc
        else:
            uv = <float>(<int>u0[kc * d] + u0[kc * d + cb] + u1[kc * d] + u1[kc * d + cb]) * q - oc
            vv = <float>(<int>v0[kc * d] + v0[kc * d + cb] + v1[kc * d] + v1[kc * d + cb]) * q - oc
        ro[d] = _clamp01(ky * yv + krv * vv)
        go[d] = _clamp01(ky * yv + kgu * uv + kgv * vv)
        bo[d] = _clamp01(ky * yv + kbu * uv)


cdef inline void _interior(const Src *s, const Taps *c, bint half, fout ro, fout go,
                           fout bo) noexcept nogil:
    # One call per literal stride, so each inlined copy is specialised and vectorised.
    cdef bint direct = half and c.cb == 0 and s.u0 == s.u1
    if direct and c.k == 2:  # 640x480, 480x640, 640x360 -> 320
        _regular_half(s, c, 2, True, ro, go, bo)
    elif direct and c.k == 6:  # 1920x1080 -> 320
        _regular_half(s, c, 6, True, ro, go, bo)
    elif half:
        if c.k == 2:
            _regular_half(s, c, 2, False, ro, go, bo)
        elif c.k == 4:
            _regular_half(s, c, 4, False, ro, go, bo)
        elif c.k == 6:
            _regular_half(s, c, 6, False, ro, go, bo)
        else:
            _regular_half(s, c, 8, False, ro, go, bo)
    elif c.k == 2:
        _regular(s, c, 2, ro, go, bo)
    elif c.k == 4:
        _regular(s, c, 4, ro, go, bo)
    elif c.k == 6:
        _regular(s, c, 6, ro, go, bo)
    else:
        _regular(s, c, 8, ro, go, bo)


cdef inline void _gathered(const Src *s, const Taps *c, Py_ssize_t lo, Py_ssize_t hi,
                           fout ro, fout go, fout bo) noexcept nogil:
    """Output columns ``[lo, hi)`` through the lookup tables (edges, irregular scales)."""
    cdef const uint8_t *y0 = s.y0
    cdef const uint8_t *y1 = s.y1
    cdef const uint8_t *u0 = s.u0
    cdef const uint8_t *u1 = s.u1
    cdef const uint8_t *v0 = s.v0
    cdef const uint8_t *v1 = s.v1
    cdef Py_ssize_t d, x0, x1, c0, c1
    cdef float wy0 = s.wy0, wy1 = s.wy1, f16 = 16.0, f128 = 128.0
    cdef float wa, wb, ws, yv, uv, vv
    for d in range(lo, hi):
        x0, x1, c0, c1 = c.i0[d], c.i1[d], c.c0[d], c.c1[d]
        wa, wb, ws = c.w0[d], c.w1[d], (wy0 + wy1) * c.ws[d]
        yv = wa * (wy0 * y0[x0] + wy1 * y1[x0]) + wb * (wy0 * y0[x1] + wy1 * y1[x1]) - f16 * ws
        uv = wa * (wy0 * u0[c0] + wy1 * u1[c0]) + wb * (wy0 * u0[c1] + wy1 * u1[c1]) - f128 * ws
        vv = wa * (wy0 * v0[c0] + wy1 * v1[c0]) + wb * (wy0 * v0[c1] + wy1 * v1[c1]) - f128 * ws
        ro[d] = _clamp01(K_Y * yv + K_RV * vv)
        go[d] = _clamp01(K_Y * yv + K_GU * uv + K_GV * vv)
        bo[d] = _clamp01(K_Y * yv + K_BU * uv)


cdef inline void _vblend(const uint8_t *r0, const uint8_t *r1, float w0, float w1, fout t,
                         Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t x
    for x in range(n):
        t[x] = w0 * r0[x] + w1 * r1[x]


cdef inline void _hgather(fin t, const int32_t *i0, const int32_t *i1, fin w0, fin w1, fout h,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t d
    for d in range(n):
        h[d] = w0[d] * t[i0[d]] + w1[d] * t[i1[d]]


cdef inline void _convert(fin hy, fin hu, fin hv, fin wsx, float wsy, fout ro, fout go,
                          fout bo, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t d
    cdef float ws, yv, uv, vv, f16 = 16.0, f128 = 128.0
    cdef float ky = K_Y, krv = K_RV, kgu = K_GU, kgv = K_GV, kbu = K_BU
    for d in range(n):
        ws = wsy * wsx[d]
        yv = hy[d] - f16 * ws
        uv = hu[d] - f128 * ws
        vv = hv[d] - f128 * ws
        ro[d] = _clamp01(ky * yv + krv * vv)
        go[d] = _clamp01(ky * yv + kgu * uv + kgv * vv)
        bo[d] = _clamp01(ky * yv + kbu * uv)


cdef void _separable(const Src *s, const Taps *c, Py_ssize_t w, Py_ssize_t cw, Py_ssize_t size,
                     float *scratch, fout ro, fout go, fout bo) noexcept nogil:
    """One output row for irregular scales (848x480, 960x540, 320x240...): blend the two source
    rows (contiguous, vectorised), gather the horizontal taps from the blended rows, convert
    the whole row (vectorised). Same arithmetic, in the same order, as ``_gathered``."""
    cdef float *ty = scratch
    cdef float *tu = ty + w
    cdef float *tv = tu + cw
    cdef float *hy = tv + cw
    cdef float *hu = hy + size
    cdef float *hv = hu + size
    _vblend(s.y0, s.y1, s.wy0, s.wy1, ty, w)
    _vblend(s.u0, s.u1, s.wy0, s.wy1, tu, cw)
    _vblend(s.v0, s.v1, s.wy0, s.wy1, tv, cw)
    _hgather(ty, c.i0, c.i1, c.w0, c.w1, hy, size)
    _hgather(tu, c.c0, c.c1, c.w0, c.w1, hu, size)
    _hgather(tv, c.c0, c.c1, c.w0, c.w1, hv, size)
    _convert(hy, hu, hv, c.ws, s.wy0 + s.wy1, ro, go, bo, size)


cdef class Letterboxer:
    """Cached lookup tables for one (frame size, tensor size, placement); reuse per stream.

    ``run`` allocates no Python objects (irregular scales malloc ~10 KiB of row buffers per
    call), only reads the tables and releases the GIL, so one instance may be shared by
    threads. Properties map detections back: ``frame = tensor / scale - offset``.
    """

    cdef readonly int src_width
    cdef readonly int src_height
    cdef readonly int size
    cdef readonly bint center
    cdef readonly int offset_x
    cdef readonly int offset_y
    cdef _Axis _cols
    cdef _Axis _rows
    cdef Taps _c
    cdef Taps _r

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
        self._c = self._cols.taps()
        self._r = self._rows.taps()

    @property
    def scale(self) -> float:
        """Tensor pixels per frame pixel: ``size / max(src_width, src_height)``."""
        return <double>self.size / max(self.src_width, self.src_height)

    @property
    def vectorized(self) -> bool:
        """Whether the column pass uses the constant-stride (SIMD) loops for this geometry."""
        return self._c.k != 0

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
        cdef float *scratch = NULL
        if self._c.k == 0:  # irregular scale: row buffers for the separable path (~10 KiB)
            scratch = <float *>malloc((self.src_width + 2 * cw + 3 * self.size) * sizeof(float))
            if scratch == NULL:
                raise MemoryError()
        try:
            with nogil:
                self._run(yp, up, vp, o, scratch)
        finally:
            free(scratch)

    cdef void _run(self, const uint8_t[:, :] yp, const uint8_t[:, :] up,
                   const uint8_t[:, :] vp, float[:, :, ::1] o,
                   float *scratch) noexcept nogil:
        cdef const Taps *cols = &self._c
        cdef const Taps *rows = &self._r
        cdef Py_ssize_t S = self.size, oy
        cdef Py_ssize_t lo = cols.lo, hi = cols.hi
        cdef bint half_cols = cols.wa == 0.5 and cols.wb == 0.5
        cdef Src src
        cdef float *ro
        cdef float *go
        cdef float *bo
        for oy in range(S):
            ro, go, bo = &o[0, oy, 0], &o[1, oy, 0], &o[2, oy, 0]
            src.wy0, src.wy1 = rows.w0[oy], rows.w1[oy]
            if src.wy0 == 0.0 and src.wy1 == 0.0:  # letterbox padding row
                memset(ro, 0, S * sizeof(float))
                memset(go, 0, S * sizeof(float))
                memset(bo, 0, S * sizeof(float))
                continue
            src.y0, src.y1 = &yp[rows.i0[oy], 0], &yp[rows.i1[oy], 0]
            src.u0, src.u1 = &up[rows.c0[oy], 0], &up[rows.c1[oy], 0]
            src.v0, src.v1 = &vp[rows.c0[oy], 0], &vp[rows.c1[oy], 0]
            if cols.k == 0:
                _separable(&src, cols, yp.shape[1], up.shape[1], S, scratch, ro, go, bo)
                continue
            _interior(&src, cols, half_cols and src.wy0 == 0.5 and src.wy1 == 0.5, ro, go, bo)
            _gathered(&src, cols, 0, lo, ro, go, bo)
            _gathered(&src, cols, hi, S, ro, go, bo)


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
    """Return a cached Letterboxer for this geometry (16 entries, oldest evicted first)."""
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
