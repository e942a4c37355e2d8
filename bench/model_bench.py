"""Moderation model micro-benchmark: inference latency, batching and decode cost.

Run: ``python -m bench.model_bench [--runs N] [--json FILE] [--only SECTION ...]``. Prints a
table and writes JSON (default ``bench/results/model.json``).

Why each measurement exists:

* intra-op threads 1 vs 2: the relay runs one worker per core, so a session
  with 2 threads only pays off if the machine has idle cores;
* graph optimisation levels: what ORT_ENABLE_ALL buys over none/basic/extended;
* plain ``session.run`` vs IOBinding with a preallocated output;
* batching: per-image cost of one B-image run vs B single runs, and of one
  executor job vs B executor jobs (what :class:`models.batching.AsyncBatcher`
  saves);
* decode: our vectorised decode vs NudeNet's per-row Python loop
  (``nudenet.nudenet._postprocess``), on the same raw outputs;
* runtimes: onnxruntime fp32 beside OpenVINO bf16 and fp32, per image at batch 1 and 4, and
  OpenVINO bf16 through :class:`~models.batching.AsyncBatcher` with the fp32 re-check on
  :func:`probe_set` at the default block list and a face policy: ms per classification with
  re-checks included, and the fraction re-checked (``docs/models.md``).

Configurations being compared are *interleaved* run by run, so a neighbour
process that loads the machine for a while hurts all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from models.detections import decode_yolov8
from models.inference import BatchMode, GraphOptimization, ModelRunner, Runner
from models.letterbox import Letterbox
from models.manifest import default_manifest
from models.preprocess_reference import preprocess

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "model.json"
SECTIONS: Final = ("inference", "batching", "decode", "runtimes")
FACE_POLICY: Final[Mapping[str, float]] = {"FACE_FEMALE": 0.4, "FACE_MALE": 0.3}
"""A policy that trips on ordinary pictures (faces), so near-threshold scores are common."""


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p99/mean in milliseconds."""
    a = np.asarray(samples) * 1e3
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "n": len(samples),
    }


def interleaved(fns: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, Any]:
    """Time each callable ``runs`` times, round-robin, after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t0)
    return {k: percentiles(v) for k, v in samples.items()}


def photos() -> list[NDArray[np.uint8]]:
    """astronaut, coffee, rocket and (grey) moon from skimage.data, as HxWx3 RGB."""
    import skimage.data

    out = []
    for name in ("astronaut", "coffee", "rocket", "moon"):
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out.append(np.ascontiguousarray(img[..., :3]))
    return out


def runs_raw(runner: Runner, x: NDArray[np.float32]) -> Callable[[], object]:
    return lambda: runner.run_raw(x)


def iobinding_runner(runner: ModelRunner, x: NDArray[np.float32]) -> Callable[[], object]:
    """session.run_with_iobinding with input bound once and a preallocated output."""
    sess = runner.session
    out_shape = [x.shape[0], *runner.run_raw(x).shape[1:]]
    out = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32)
    binding = sess.io_binding()
    binding.bind_cpu_input(runner.input_name, x)
    binding.bind_ortvalue_output(runner.output_name, out)

    def run() -> object:
        sess.run_with_iobinding(binding)
        return out

    return run


def bench_inference(x1: NDArray[np.float32], runs: int) -> dict[str, Any]:
    """Batch-1 latency across thread counts, optimisation levels and IOBinding."""
    runners: dict[str, ModelRunner] = {}
    load_s: dict[str, float] = {}
    levels: list[GraphOptimization] = ["disable", "basic", "extended", "all"]
    for level in levels:
        t0 = time.perf_counter()
        runners[f"threads=1 opt={level}"] = ModelRunner(graph_optimization=level)
        load_s[level] = time.perf_counter() - t0
    runners["threads=2 opt=all"] = ModelRunner(intra_op_threads=2)
    fns = {k: runs_raw(r, x1) for k, r in runners.items()}
    fns["threads=1 opt=all iobinding"] = iobinding_runner(runners["threads=1 opt=all"], x1)
    result = interleaved(fns, runs, warmup=5)
    # Spinning pool threads keep burning CPU after a run returns, which would slow
    # whatever ran next in an interleaved loop, so this one is timed on its own.
    spin = ModelRunner(intra_op_threads=2, allow_spinning=True)
    result.update(interleaved({"threads=2 opt=all spin": runs_raw(spin, x1)}, runs, warmup=5))
    del spin
    result["session_load_s"] = load_s
    return result


def bench_batching(x1: NDArray[np.float32], runs: int) -> dict[str, Any]:
    """Per-image cost of batched runs, and one executor job vs B jobs."""
    runner = ModelRunner(batch_mode="tensor")
    out: dict[str, Any] = {}
    fns: dict[str, Callable[[], object]] = {}
    for b in (1, 2, 4, 8):
        xb = np.ascontiguousarray(np.repeat(x1, b, axis=0))
        fns[f"B={b} one run"] = runs_raw(runner, xb)
    res = interleaved(fns, max(runs // 4, 10), warmup=2)
    for k, v in res.items():
        b = int(k.split()[0][2:])
        v["per_image_ms"] = v["p50_ms"] / b
    out["batched_run"] = res

    b = 4
    xb = np.ascontiguousarray(np.repeat(x1, b, axis=0))
    singles = [np.ascontiguousarray(xb[i : i + 1]) for i in range(b)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:

        def separate_jobs() -> object:
            futs = [pool.submit(runner.run_raw, s) for s in singles]
            return [f.result() for f in futs]

        def one_job_loop() -> object:
            return pool.submit(lambda: [runner.run_raw(s) for s in singles]).result()

        def one_job_batched() -> object:
            return pool.submit(runner.run_raw, xb).result()

        out["executor_B4"] = interleaved(
            {
                "4 separate jobs": separate_jobs,
                "1 job, 4 runs back-to-back": one_job_loop,
                "1 job, 1 batched (4,3,S,S) run": one_job_batched,
            },
            max(runs // 4, 10),
            warmup=2,
        )
    out["async_batcher_B4"] = bench_async_batcher(x1, max(runs // 4, 10))
    return out


async def _async_rounds(
    runner: ModelRunner, tensor: NDArray[np.float32], lb: Letterbox, runs: int
) -> tuple[list[float], list[float]]:
    """``runs`` rounds of 4 concurrent submits; seconds to the first and last answer."""
    from models.batching import AsyncBatcher

    first: list[float] = []
    last: list[float] = []

    async def one(t0: float) -> float:
        await batcher.infer(tensor, lb)
        return time.perf_counter() - t0

    async with AsyncBatcher(runner, max_batch=4) as batcher:
        for i in range(runs + 2):
            t0 = time.perf_counter()
            ends = await asyncio.gather(*(one(t0) for _ in range(4)))
            if i >= 2:  # warm-up
                first.append(min(ends))
                last.append(max(ends))
    return first, last


def bench_async_batcher(x1: NDArray[np.float32], runs: int) -> dict[str, Any]:
    """Four concurrent submits through AsyncBatcher: when do the first and last answers come?"""
    lb = Letterbox.identity(x1.shape[-1])
    tensor = np.ascontiguousarray(x1[0])
    res: dict[str, Any] = {}
    modes: list[BatchMode] = ["loop", "tensor"]
    for mode in modes:
        first, last = asyncio.run(_async_rounds(ModelRunner(batch_mode=mode), tensor, lb, runs))
        res[mode] = {"first_answer": percentiles(first), "last_answer": percentiles(last)}
    return res


def bench_decode(runs: int) -> dict[str, Any]:
    """Our vectorised decode vs NudeNet's Python loop on real and synthetic outputs."""
    from nudenet.nudenet import _postprocess

    m = default_manifest()
    runner = ModelRunner(m)
    cases: dict[str, tuple[NDArray[np.float32], Letterbox]] = {}
    for name, img in zip(("astronaut", "coffee", "rocket", "moon"), photos(), strict=True):
        t, lb = preprocess(img, m)
        cases[name] = (runner.run_raw(t[None]), lb)
    res: dict[str, Any] = {}
    for name, (raw, lb) in cases.items():
        w, h, side = lb.frame_width, lb.frame_height, lb.side

        def ours(raw: NDArray[np.float32] = raw, lb: Letterbox = lb) -> object:
            return decode_yolov8(raw[0], lb, m.labels)

        def naive(raw: NDArray[np.float32] = raw, w: int = w, h: int = h, s: int = side) -> object:
            return _postprocess([raw], s - w, s - h, s / w, s / h, w, h, 320, 320)

        r = interleaved({"ours": ours, "nudenet _postprocess": naive}, runs, warmup=3)
        r["detections"] = len(decode_yolov8(raw[0], lb, m.labels))
        r["speedup_p50"] = r["nudenet _postprocess"]["p50_ms"] / r["ours"]["p50_ms"]
        res[name] = r
    return res


def probe_set(*, lfw_faces: int = 40) -> list[tuple[str, NDArray[np.uint8]]]:
    """(name, HxWx3 RGB) pictures the packages ship, as a moderated stream might show them.

    scikit-image's and matplotlib's sample photographs, each as is, mirrored, scaled down to
    40 %, cropped to its centre, through JPEG at quality 25 and through VP8 at ~300 kbit/s
    (PyAV); plus ``lfw_faces`` of scikit-image's 25x25 LFW faces, whose blurred faces score
    all over the range. Why these: a bf16-vs-fp32 comparison needs scores that land near the
    thresholds, which compressed, scaled and partial pictures provide.
    """
    import cv2
    import matplotlib.cbook
    import skimage.data

    bases: list[tuple[str, NDArray[np.uint8]]] = []
    for name in (
        "astronaut", "camera", "coffee", "chelsea", "rocket", "moon", "colorwheel", "brick",
        "grass", "coins", "page", "hubble_deep_field", "immunohistochemistry", "retina",
    ):  # fmt: skip
        bases.append((name, _rgb(np.asarray(getattr(skimage.data, name)()))))
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        bgr = cv2.imread(str(matplotlib.cbook.get_sample_data(name, asfileobj=False)), 1)
        assert bgr is not None, name
        bases.append((name.split(".")[0], np.ascontiguousarray(bgr[..., ::-1])))
    out: list[tuple[str, NDArray[np.uint8]]] = []
    for name, big in bases:
        f = min(1.0, 640 / max(big.shape[:2]))  # a video frame's size, at most
        img = _rgb(cv2.resize(big, None, fx=f, fy=f, interpolation=3)) if f < 1 else big
        h, w = img.shape[:2]
        small = cv2.resize(img, (max(1, w * 2 // 5), max(1, h * 2 // 5)), interpolation=3)
        ok, jpeg = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 25])
        decoded = cv2.imdecode(jpeg, 1)
        assert ok and decoded is not None
        out += [
            (name, img),
            (f"{name} mirrored", np.ascontiguousarray(img[:, ::-1])),
            (f"{name} 40%", np.ascontiguousarray(small)),
            (f"{name} centre", np.ascontiguousarray(img[h // 5 : h - h // 5, w // 5 : w - w // 5])),
            (f"{name} jpeg25", np.ascontiguousarray(decoded[..., ::-1])),
            (f"{name} vp8", vp8_round_trip(img)),
        ]
    faces = np.asarray(skimage.data.lfw_subset())  # type: ignore[no-untyped-call]
    for k in range(min(lfw_faces, len(faces))):
        grey = np.asarray(faces[k * len(faces) // max(lfw_faces, 1)] * 255, np.uint8)
        out.append((f"lfw {k}", _rgb(cv2.resize(grey, (100, 100), interpolation=2))))
    return out


def _rgb(img: NDArray[Any]) -> NDArray[np.uint8]:
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def vp8_round_trip(rgb: NDArray[np.uint8], bit_rate: int = 300_000) -> NDArray[np.uint8]:
    """``rgb`` encoded as one VP8 keyframe at a low quality (PyAV, libvpx) and decoded."""
    import av

    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    enc = av.CodecContext.create("libvpx", "w")
    assert isinstance(enc, av.VideoCodecContext)
    enc.width, enc.height, enc.pix_fmt, enc.bit_rate = w, h, "yuv420p", bit_rate
    enc.options = {"qmin": "40", "qmax": "56", "deadline": "realtime", "cpu-used": "8"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
    packets = [*enc.encode(frame.reformat(format="yuv420p")), *enc.encode(None)]
    dec = av.CodecContext.create("vp8", "r")
    assert isinstance(dec, av.VideoCodecContext)
    pictures = [p for pk in packets for p in dec.decode(pk)] + list(dec.decode(None))
    return np.ascontiguousarray(pictures[-1].to_ndarray(format="rgb24"))


def runtime_runners() -> dict[str, Runner]:
    """onnxruntime fp32 beside OpenVINO bf16 (with its fp32 reference) and fp32, one thread
    each; the OpenVINO ones only where the package is installed (and bf16 where the CPU has it)."""
    runners: dict[str, Runner] = {"onnxruntime fp32": ModelRunner(batch_mode="loop")}
    try:
        from models.openvino_runner import OpenVinoRunner, cpu_has_bf16
    except ImportError:
        return runners
    if cpu_has_bf16():
        runners["openvino bf16"] = OpenVinoRunner(
            precision="bf16", reference=runners["onnxruntime fp32"]
        )
    runners["openvino fp32"] = OpenVinoRunner(precision="fp32")
    return runners


async def _through_batchers(
    runners: dict[str, Runner],
    requests: list[tuple[NDArray[np.float32], Letterbox]],
    thresholds: Mapping[str, float],
    batch: int,
) -> dict[str, dict[str, float]]:
    """Each runner's ms per image for ``requests`` through its AsyncBatcher, ``batch`` at a time,
    and the fraction it re-checked; runners take turns every 8 images (a neighbour's load
    then hurts all alike)."""
    from models.batching import AsyncBatcher

    seconds = dict.fromkeys(runners, 0.0)
    batchers = {name: AsyncBatcher(r, max_batch=batch) for name, r in runners.items()}
    for k in range(0, len(requests), 8):
        for name, batcher in batchers.items():
            t0 = time.perf_counter()
            for j in range(k, min(k + 8, len(requests)), batch):
                chunk = requests[j : min(j + batch, k + 8)]
                await asyncio.gather(
                    *(batcher.infer(t, lb, thresholds=thresholds) for t, lb in chunk)
                )
            seconds[name] += time.perf_counter() - t0
    for batcher in batchers.values():
        await batcher.aclose()  # the re-checks are counted once the runs are over
    return {
        name: {
            "ms_per_image": 1e3 * seconds[name] / len(requests),
            "recheck_fraction": batchers[name].stats.rechecked / len(requests),
        }
        for name in runners
    }


def bench_runtimes(x1: NDArray[np.float32], runs: int) -> dict[str, Any]:
    """Engines side by side: per-image latency at batch 1 and 4, scores against onnxruntime
    fp32, and bf16 + re-check on the probe set (cost per classification, fraction re-checked)."""
    from relay.strict.block_policy import DEFAULT_THRESHOLDS

    runners = runtime_runners()
    x4 = np.ascontiguousarray(np.repeat(x1, 4, axis=0))
    fns: dict[str, Callable[[], object]] = {}
    for name, r in runners.items():
        fns[f"{name} B=1"] = runs_raw(r, x1)
        fns[f"{name} B=4"] = runs_raw(r, x4)
    res: dict[str, Any] = {"latency": interleaved(fns, runs, warmup=3)}
    for k, v in res["latency"].items():
        v["per_image_ms"] = v["p50_ms"] / (4 if k.endswith("B=4") else 1)
    m = default_manifest()
    probes = [preprocess(img, m) for _, img in probe_set()]
    raw = {
        name: np.stack([r.run_raw(t[None])[0] for t, _ in probes]) for name, r in runners.items()
    }
    ref = raw["onnxruntime fp32"][:, 4:].max(axis=2)
    res["max_peak_diff_vs_onnxruntime"] = {
        name: float(np.abs(out[:, 4:].max(axis=2) - ref).max()) for name, out in raw.items()
    }
    res["probe_images"] = len(probes)
    res["recheck"] = {}
    policies = {"default block list": DEFAULT_THRESHOLDS, "faces 0.4/0.3": FACE_POLICY}
    compared = {k: r for k, r in runners.items() if k in ("onnxruntime fp32", "openvino bf16")}
    for policy, thresholds in policies.items():
        for b in (1, 4):
            res["recheck"][f"{policy}, B={b}"] = asyncio.run(
                _through_batchers(compared, probes, thresholds, b)
            )
    return res


def environment() -> dict[str, Any]:
    import nudenet

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "onnxruntime": ort.__version__,
        "openvino": _openvino_version(),
        "numpy": np.__version__,
        "nudenet": getattr(nudenet, "__version__", "3.4.x"),
        "model": default_manifest().name,
    }


def _openvino_version() -> str | None:
    """From the package metadata: importing openvino here would bypass the telemetry guard
    in :mod:`models.openvino_runner`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openvino")
    except PackageNotFoundError:
        return None


def print_table(results: dict[str, Any]) -> None:
    def row(name: str, s: dict[str, Any], extra: str = "") -> None:
        print(f"  {name:<34} p50 {s['p50_ms']:8.3f} ms   p99 {s['p99_ms']:8.3f} ms  {extra}")

    if "inference" in results:
        print("\nInference, batch 1 (320x320), interleaved:")
        for k, v in results["inference"].items():
            if k != "session_load_s":
                row(k, v)
        loads = ", ".join(
            f"{k} {v * 1e3:.0f} ms" for k, v in results["inference"]["session_load_s"].items()
        )
        print(f"  session load: {loads}")
    if "batching" in results:
        print("\nOne session.run on a (B, 3, 320, 320) tensor (threads=1, opt=all):")
        for k, v in results["batching"]["batched_run"].items():
            row(k, v, f"per image {v['per_image_ms']:.3f} ms")
        print("\nFour images through a 1-thread executor:")
        for k, v in results["batching"]["executor_B4"].items():
            row(k, v)
        print("\nAsyncBatcher, 4 concurrent requests (batch_mode):")
        for mode, v in results["batching"]["async_batcher_B4"].items():
            row(f"{mode}: first answer", v["first_answer"])
            row(f"{mode}: last answer", v["last_answer"])
    if "decode" in results:
        print("\nDecode (raw output -> detections):")
        for name, v in results["decode"].items():
            print(f"  {name} ({v['detections']} detections), speedup x{v['speedup_p50']:.0f}")
            row("  ours (vectorised)", v["ours"])
            row("  nudenet _postprocess (loop)", v["nudenet _postprocess"])
    if "runtimes" in results:
        print_runtimes(results["runtimes"], row)


def print_runtimes(res: dict[str, Any], row: Callable[..., None]) -> None:
    print("\nEngines, one thread, interleaved (per image = p50 / B):")
    for k, v in res["latency"].items():
        row(k, v, f"per image {v['per_image_ms']:.3f} ms")
    print("\nLargest per-label peak score difference from onnxruntime fp32 on the probe set:")
    for k, v in res["max_peak_diff_vs_onnxruntime"].items():
        print(f"  {k:<34} {v:.4f}")
    print(f"\nThrough AsyncBatcher with re-check, {res['probe_images']} probe images:")
    for k, v in res["recheck"].items():
        cells = [
            f"{name} {c['ms_per_image']:.2f} ms/image "
            f"(re-checked {100 * c['recheck_fraction']:.1f} %)"
            for name, c in v.items()
        ]
        print(f"  {k:<26} " + ", ".join(cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=100, help="timed runs per configuration")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="sections to run")
    args = ap.parse_args(argv)

    m = default_manifest()
    x1 = preprocess(photos()[0], m)[0][None]
    results: dict[str, Any] = {"environment": environment(), "runs": args.runs}
    if "inference" in args.only:
        results["inference"] = bench_inference(x1, args.runs)
    if "batching" in args.only:
        results["batching"] = bench_batching(x1, args.runs)
    if "decode" in args.only:
        results["decode"] = bench_decode(args.runs)
    if "runtimes" in args.only:
        results["runtimes"] = bench_runtimes(x1, args.runs)
    results["environment"]["loadavg_at_end"] = os.getloadavg()
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
