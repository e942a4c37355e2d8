"""Per-frame cost of turning a decoded yuv420p frame into the classifier's input tensor.

Why: the relay preprocesses every sampled frame of every call; this measures the Cython fast
path against the two obvious alternatives on the same PyAV frames (row-padded planes, as a
decoder hands them over):

* ``cython``: ``fastpath.preprocess.Letterboxer.run`` into a reused tensor,
* ``numpy``: ``fastpath.reference.letterbox_yuv420`` (vectorised numpy, same maths),
* ``opencv``: cvtColor(I420 -> RGB), copyMakeBorder, cv2.dnn.blobFromImage (resize + /255),
  i.e. NudeNet's own ``_read_image`` route starting from the I420 buffer, with OpenCV's
  default thread pool; ``opencv_1t`` is the same with ``cv2.setNumThreads(1)`` (the fair
  comparison: the Cython path is single-threaded, and a relay runs one such job per stream).

Also times the scene signature. Run: ``python -m bench.fastpath_bench [--frames N] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

from fastpath import reference
from fastpath.preprocess import Letterboxer
from fastpath.scene import luma_signature

SIZE = 320
RESOLUTIONS = [(640, 480), (1280, 720)]
U8 = npt.NDArray[np.uint8]


def make_frames(w: int, h: int, count: int) -> list[tuple[U8, U8, U8]]:
    """Synthetic moving content through PyAV's RGB -> yuv420p; planes keep their line padding."""
    rng = np.random.default_rng(w * h)
    grid = (rng.random((9, 12, 3)) * 255).astype(np.uint8)
    base = cv2.resize(grid, (w + count, h), interpolation=cv2.INTER_CUBIC)
    frames = []
    for i in range(count):
        noise = rng.integers(-8, 9, (h, w, 3))
        rgb = np.clip(base[:, i : i + w].astype(np.int16) + noise, 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        views = [
            np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width]
            for p in frame.planes
        ]
        frames.append((views[0], views[1], views[2]))
    return frames


def opencv_route(y: U8, u: U8, v: U8) -> npt.NDArray[np.float32]:
    """The naive route: full-resolution RGB, pad to a square, blobFromImage."""
    h, w = y.shape
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    m = max(w, h)
    padded = cv2.copyMakeBorder(rgb, 0, m - h, 0, m - w, cv2.BORDER_CONSTANT)
    blob = cv2.dnn.blobFromImage(
        padded, 1 / 255.0, (SIZE, SIZE), (0, 0, 0), swapRB=False, crop=False
    )
    return np.asarray(blob, dtype=np.float32)


def opencv_single_thread(y: U8, u: U8, v: U8) -> npt.NDArray[np.float32]:
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return opencv_route(y, u, v)
    finally:
        cv2.setNumThreads(threads)


def time_per_frame(fn: Callable[[tuple[U8, U8, U8]], object], frames: list[Any]) -> list[float]:
    """Milliseconds per call, one call per frame (after a short warm-up)."""
    for f in frames[:5]:
        fn(f)
    times = []
    for f in frames:
        t0 = time.perf_counter()
        fn(f)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def summary(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=10)
    return {"median_ms": statistics.median(times), "p90_ms": q[8]}


def bench_resolution(w: int, h: int, count: int) -> dict[str, Any]:
    frames = make_frames(w, h, count)
    out = np.empty((1, 3, SIZE, SIZE), np.float32)
    ref_out = np.empty_like(out)
    sig = np.empty((18, 32), np.float32)
    lb = Letterboxer(w, h, SIZE)
    routes: dict[str, Callable[[tuple[U8, U8, U8]], object]] = {
        "cython": lambda f: lb.run(f[0], f[1], f[2], out),
        "numpy": lambda f: reference.letterbox_yuv420(f[0], f[1], f[2], ref_out),
        "opencv": lambda f: opencv_route(*f),
        "opencv_1t": lambda f: opencv_single_thread(*f),
        "scene_cython": lambda f: luma_signature(f[0], sig),
        "scene_numpy": lambda f: reference.luma_signature(f[0], sig),
    }
    result: dict[str, Any] = {"width": w, "height": h, "frames": count, "vectorized": lb.vectorized}
    for name, fn in routes.items():
        result[name] = summary(time_per_frame(fn, frames))
    fast = result["cython"]["median_ms"]
    result["speedup_vs_opencv"] = result["opencv"]["median_ms"] / fast
    result["speedup_vs_opencv_1t"] = result["opencv_1t"]["median_ms"] / fast
    result["speedup_vs_numpy"] = result["numpy"]["median_ms"] / fast
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    routes = ["cython", "numpy", "opencv", "opencv_1t", "scene_cython"]
    print(f"{'ms/frame':<10}" + "".join(f"{r + ' median/p90':>24}" for r in routes))
    for r in results:
        cells = "".join(f"{r[k]['median_ms']:>15.3f} /{r[k]['p90_ms']:>7.3f}" for k in routes)
        print(f"{r['width']}x{r['height']:<6}{cells}")
    print()
    for r in results:
        print(
            f"{r['width']}x{r['height']}: cython is {r['speedup_vs_opencv']:.1f}x faster than "
            f"opencv ({r['speedup_vs_opencv_1t']:.1f}x vs single-threaded opencv), "
            f"{r['speedup_vs_numpy']:.1f}x faster than numpy; scene signature "
            f"{r['scene_cython']['median_ms']:.3f} ms (numpy {r['scene_numpy']['median_ms']:.3f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=300, help="frames per resolution")
    parser.add_argument("--json", type=Path, default=Path("bench/results/fastpath.json"))
    args = parser.parse_args(argv)
    results = [bench_resolution(w, h, max(args.frames, 10)) for w, h in RESOLUTIONS]
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "tensor": [1, 3, SIZE, SIZE],
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "opencv_threads": cv2.getNumThreads(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
