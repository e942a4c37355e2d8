# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Cheap scene-change measure on the luma plane.

Why: the moderation gate skips re-classifying a frame whose scene is the same as one already
classified safe. A box-averaged thumbnail of Y (e.g. 16x16 or 32x18 cells) is robust to sensor
noise and compression artefacts, costs one pass over Y with the GIL released, and two
thumbnails compare with a mean absolute difference in [0, 255]. The mean alone misses a change
confined to part of the picture (a hand or a body entering one corner moves a tenth of the
cells a lot and the mean a little), so :func:`peak_change` measures the most-changed cells.

Cell ``(i, j)`` of an ``(gh, gw)`` grid covers rows ``[i*h // gh, (i+1)*h // gh)`` and columns
``[j*w // gw, (j+1)*w // gw)``; a cell that would be empty (frame smaller than the grid) takes
the single pixel at its start. ``fastpath.reference.luma_signature`` is the numpy twin.
"""

import numpy as np

from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef enum:
    _MAXW = 1024  # widest grid; sizes the stack buffers below
MAX_GRID_WIDTH = _MAXW


def luma_signature(y, out) -> None:
    """Box-average the Y plane into ``out`` (a C-contiguous float32 ``(gh, gw)`` array)."""
    if not isinstance(y, np.ndarray) or not isinstance(out, np.ndarray):
        raise TypeError("y and out must be numpy arrays")
    if y.dtype != np.uint8 or y.ndim != 2:
        raise TypeError(f"y must be a 2-D uint8 array, got {y.dtype} with {y.ndim} dims")
    if out.dtype != np.float32 or out.ndim != 2:
        raise TypeError(f"out must be a 2-D float32 array, got {out.dtype} with {out.ndim} dims")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    if y.shape[0] < 1 or y.shape[1] < 1 or out.shape[0] < 1 or out.shape[1] < 1:
        raise ValueError("y and out must not be empty")
    if out.shape[1] > MAX_GRID_WIDTH:
        raise ValueError(f"signature grid wider than {MAX_GRID_WIDTH} cells")
    cdef const uint8_t[:, :] yp = y
    cdef float[:, ::1] o = out
    with nogil:
        _signature(yp, o)


cdef void _signature(const uint8_t[:, :] y, float[:, ::1] o) noexcept nogil:
    cdef Py_ssize_t h = y.shape[0], w = y.shape[1], gh = o.shape[0], gw = o.shape[1]
    cdef Py_ssize_t i, j, r, c, r0, r1, step = y.strides[1]
    cdef uint64_t acc[_MAXW]
    cdef Py_ssize_t c0[_MAXW]
    cdef Py_ssize_t c1[_MAXW]
    cdef uint32_t s
    cdef const uint8_t *row
    for j in range(gw):
        c0[j] = min(j * w // gw, w - 1)
        c1[j] = max((j + 1) * w // gw, c0[j] + 1)
    for i in range(gh):
        r0 = min(i * h // gh, h - 1)
        r1 = max((i + 1) * h // gh, r0 + 1)
        for j in range(gw):
            acc[j] = 0
        for r in range(r0, r1):
            row = &y[r, 0]
            for j in range(gw):
                s = 0
                if step == 1:  # the usual case: a contiguous row, a vectorisable reduction
                    for c in range(c0[j], c1[j]):
                        s = s + row[c]
                else:
                    for c in range(c0[j], c1[j]):
                        s = s + row[c * step]
                acc[j] += s
        for j in range(gw):
            o[i, j] = <float>(<double>acc[j] / <double>((r1 - r0) * (c1[j] - c0[j])))


def _check_pair(a, b) -> None:
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        raise TypeError("signatures must be numpy arrays")
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise TypeError("signatures must be float32")
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"signatures must be non-empty 2-D arrays of one shape, got "
                         f"{a.shape} and {b.shape}")


def signature_distance(a, b) -> float:
    """Mean absolute difference of two signatures (same shape, float32), in [0, 255]."""
    _check_pair(a, b)
    cdef const float[:, :] av = a
    cdef const float[:, :] bv = b
    cdef double total = 0.0, d
    cdef Py_ssize_t i, j
    with nogil:
        for i in range(av.shape[0]):
            for j in range(av.shape[1]):
                d = <double>av[i, j] - <double>bv[i, j]
                total += d if d >= 0.0 else -d
    return total / (av.shape[0] * av.shape[1])


cdef enum:
    _MAXK = 256  # most cells peak_change averages; sizes its stack buffer


MAX_PEAK_CELLS = _MAXK


def peak_change(a, b, Py_ssize_t cells) -> float:
    """Mean of the ``cells`` largest absolute cell differences of two signatures, in [0, 255].

    Why not only the maximum: one cell is a few hundred pixels, where a compression artefact
    can move the mean by more than a real change spread over a region moves any one cell."""
    _check_pair(a, b)
    if cells < 1 or cells > MAX_PEAK_CELLS:
        raise ValueError(f"cells must be in 1..{MAX_PEAK_CELLS}, got {cells}")
    cdef const float[:, :] av = a
    cdef const float[:, :] bv = b
    cdef double top[_MAXK]
    cdef double d, total = 0.0
    cdef Py_ssize_t i, j, k, n = 0, size = av.shape[0] * av.shape[1]
    if cells > size:
        cells = size
    with nogil:
        for i in range(av.shape[0]):
            for j in range(av.shape[1]):
                d = <double>av[i, j] - <double>bv[i, j]
                if d < 0.0:
                    d = -d
                if n < cells:
                    n += 1
                elif d <= top[n - 1]:
                    continue
                # insert into top[0:n], kept in descending order
                k = n - 1
                while k > 0 and top[k - 1] < d:
                    top[k] = top[k - 1]
                    k -= 1
                top[k] = d
        for k in range(n):
            total += top[k]
    return total / n


def luma_detail(y) -> float:
    """Mean absolute difference of horizontally adjacent luma samples on every other row, in
    [0, 255]: how much fine detail the picture shows.

    Why: after a scene cut, a keyframe or a drop, a real-time encoder sends a coarse picture and
    refines it over the next second. Measured with Chromium's VP8 on the strict route: 2.2 on the
    first frame after a cut, 2.6 eight frames later, ~4 once settled; the model found no face at
    2.2 and one at 0.47 at 2.6. The signature (cell means) barely moves while the picture
    sharpens, so a safe verdict on the coarse frame covered the sharper ones after it. This
    measure grows with the detail: the gate lets a verdict cover only frames that show little
    more of it. Every other row halves the cost; detail is a property of the whole picture."""
    if not isinstance(y, np.ndarray):
        raise TypeError("y must be a numpy array")
    if y.dtype != np.uint8 or y.ndim != 2:
        raise TypeError(f"y must be a 2-D uint8 array, got {y.dtype} with {y.ndim} dims")
    if y.shape[0] < 1 or y.shape[1] < 1:
        raise ValueError("y must not be empty")
    cdef const uint8_t[:, :] yp = y
    cdef Py_ssize_t h = yp.shape[0], w = yp.shape[1]
    if w < 2:
        return 0.0
    cdef uint64_t total
    with nogil:
        total = _detail(yp)
    return <double>total / <double>(((h + 1) // 2) * (w - 1))


cdef uint64_t _detail(const uint8_t[:, :] y) noexcept nogil:
    cdef Py_ssize_t h = y.shape[0], w = y.shape[1], r, c, step = y.strides[1]
    cdef uint64_t total = 0
    cdef uint32_t s
    cdef int d
    cdef const uint8_t *row
    for r in range(0, h, 2):
        row = &y[r, 0]
        s = 0
        if step == 1:  # the usual case: a contiguous row, a vectorisable reduction
            for c in range(w - 1):
                d = <int>row[c + 1] - <int>row[c]
                s = s + <uint32_t>(d if d >= 0 else -d)
        else:
            for c in range(w - 1):
                d = <int>row[(c + 1) * step] - <int>row[c * step]
                s = s + <uint32_t>(d if d >= 0 else -d)
        total += s
    return total
