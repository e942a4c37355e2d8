"""The fp32 re-check: the pure rule, and the equivalence gate that decisions stay fp32's.

The gate: pictures the packages ship (skimage and matplotlib photographs, mirrored, scaled,
cropped, through JPEG and VP8; LFW faces), classified by OpenVINO bf16 through the real
AsyncBatcher with the re-check, must be blocked or allowed exactly as onnxruntime fp32 decides,
at the default block list, at a face policy, and at thresholds placed right beside fp32's own
scores (where bf16 alone would flip). Score differences are printed and in every message.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from models.detections import Detection
from models.inference import ModelRunner
from models.letterbox import Letterbox
from models.manifest import default_manifest
from models.preprocess_reference import preprocess
from models.recheck import needs_recheck
from relay.strict.block_policy import DEFAULT_THRESHOLDS, ModerationPolicy

LABELS = ["A", "B", "C"]
BOX = (0.0, 0.0, 10.0, 10.0)


def peaks(a: float, b: float, c: float) -> NDArray[np.float32]:
    return np.array([a, b, c], np.float32)


@pytest.mark.parametrize(
    ("label_peaks", "detections", "expected", "why"),
    [
        (peaks(0.1, 0.9, 0.9), [], False, "blocked label far below: certainly safe"),
        (peaks(0.36, 0.9, 0.9), [], False, "0.36 < 0.4 - 0.03: certainly safe"),
        (peaks(0.38, 0.9, 0.9), [], True, "0.38 within 0.03 below the threshold"),
        (peaks(0.42, 0.9, 0.9), [Detection("A", 0.42, BOX)], True, "just over it"),
        (peaks(0.44, 0.0, 0.0), [Detection("A", 0.44, BOX)], False, "certainly unsafe"),
        (peaks(0.6, 0.0, 0.0), [], True, "a peak over it but no detection (arg-max, NMS)"),
        (
            peaks(0.39, 0.0, 0.0),
            [Detection("A", 0.39, BOX), Detection("A", 0.39, BOX), Detection("C", 0.95, BOX)],
            True,
            "unblocked labels count for nothing",
        ),
    ],
)
def test_the_rule(
    label_peaks: NDArray[np.float32], detections: list[Detection], expected: bool, why: str
) -> None:
    assert needs_recheck(LABELS, label_peaks, detections, {"A": 0.4}, 0.03) is expected, why


def test_no_thresholds_or_no_margin() -> None:
    assert not needs_recheck(LABELS, peaks(0.5, 0.5, 0.5), [], {}, 0.03)
    assert not needs_recheck(LABELS, peaks(0.39, 0, 0), [], {"A": 0.4}, 0.0)
    assert needs_recheck(LABELS, peaks(0.4, 0, 0), [], {"A": 0.4}, 0.0)  # fp32 might say 0.4


# -- the equivalence gate ----------------------------------------------------------------


@dataclass
class Probe:
    name: str
    tensor: NDArray[np.float32]
    letterbox: Letterbox
    fp32_raw: NDArray[np.float32]
    fast_raw: NDArray[np.float32]


@pytest.fixture(scope="module")
def fast_runner() -> Any:
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed (pip install 'chatguard[openvino]')")
    from models.openvino_runner import OpenVinoRunner, cpu_has_bf16

    # Without bf16 on this CPU, OpenVINO fp32 stands in (its scores differ from onnxruntime's
    # by ~1e-6: the gate still checks the batching and re-check path).
    return OpenVinoRunner(precision="bf16" if cpu_has_bf16() else "fp32", reference=ModelRunner())


@pytest.fixture(scope="module")
def probes(fast_runner: Any) -> list[Probe]:
    from bench.model_bench import probe_set

    m = default_manifest()
    reference = fast_runner.reference
    out = []
    for name, img in probe_set():
        t, lb = preprocess(img, m)
        out.append(
            Probe(name, t, lb, reference.run_raw(t[None])[0], fast_runner.run_raw(t[None])[0])
        )
    return out


def tight_policies(runner: Any, probes: list[Probe]) -> dict[str, dict[str, float]]:
    """One policy per face label, its threshold half-way between fp32's and the fast runtime's
    peak on the picture where they differ most and that threshold flips the fast runtime's
    decision: the re-check must catch exactly such cases."""
    policies = {}
    for label in ("FACE_FEMALE", "FACE_MALE"):
        i = 4 + runner.labels.index(label)
        by_gap = sorted(probes, key=lambda p: -abs(p.fast_raw[i].max() - p.fp32_raw[i].max()))
        for p in by_gap:
            policy = ModerationPolicy({label: float(p.fast_raw[i].max() + p.fp32_raw[i].max()) / 2})
            fast = policy.verdict(runner.decode(p.fast_raw, p.letterbox))
            if fast.safe != policy.verdict(runner.decode(p.fp32_raw, p.letterbox)).safe:
                policies[f"tight {label}"] = dict(policy.thresholds)
                break
    return policies


async def classify_all(
    runner: Any, probes: list[Probe], thresholds: Mapping[str, float]
) -> tuple[list[list[Detection]], int]:
    from models.batching import AsyncBatcher

    async with AsyncBatcher(runner, max_batch=4) as batcher:
        dets = await asyncio.gather(
            *(batcher.infer(p.tensor, p.letterbox, thresholds=thresholds) for p in probes)
        )
    return list(dets), batcher.stats.rechecked  # counted once the runs are over


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_decisions_with_recheck_are_fp32_decisions(fast_runner: Any, probes: list[Probe]) -> None:
    labels = fast_runner.labels
    reference = fast_runner.reference
    margin = fast_runner.recheck_margin
    peak_diff = np.stack([np.abs(p.fast_raw[4:].max(1) - p.fp32_raw[4:].max(1)) for p in probes])
    box_diff = np.stack([np.abs(p.fast_raw[4:] - p.fp32_raw[4:]).max(axis=1) for p in probes])
    worst = {labels[i]: float(peak_diff[:, i].max()) for i in range(len(labels))}
    report = [
        f"{fast_runner.name} vs onnxruntime fp32 on {len(probes)} pictures, margin {margin}",
        "largest peak score difference per label: "
        + ", ".join(f"{k} {v:.4f}" for k, v in sorted(worst.items(), key=lambda kv: -kv[1])),
        f"peak differences p50 {np.median(peak_diff.max(1)):.4f}, "
        f"p99 {np.percentile(peak_diff.max(1), 99):.4f}; "
        f"largest difference of any box's score {box_diff.max():.4f}",
    ]
    policies = {
        "default block list": dict(DEFAULT_THRESHOLDS),
        "faces 0.4/0.3": {"FACE_FEMALE": 0.4, "FACE_MALE": 0.3},
        **tight_policies(fast_runner, probes),
    }
    failures = []
    rechecks, flips = {}, {}
    for name, thresholds in policies.items():
        policy = ModerationPolicy(thresholds)
        got, rechecked = asyncio.run(classify_all(fast_runner, probes, thresholds))
        rechecks[name] = rechecked
        alone_flips = 0
        for p, dets in zip(probes, got, strict=True):
            truth = policy.verdict(reference.decode(p.fp32_raw, p.letterbox))
            alone = policy.verdict(fast_runner.decode(p.fast_raw, p.letterbox))
            alone_flips += alone.safe != truth.safe
            if policy.verdict(dets).safe != truth.safe:
                failures.append(f"{name}: {p.name}: fp32 says safe={truth.safe} ({truth})")
        flips[name] = alone_flips
        report.append(
            f"{name} {' '.join(f'{k} {v:.4f}' for k, v in thresholds.items())}: "
            f"re-checked {rechecked}/{len(probes)} ({100 * rechecked / len(probes):.1f} %), "
            f"decisions bf16 alone would flip: {alone_flips}"
        )
    print("\n" + "\n".join(report))
    assert not failures, "\n".join(failures + report)
    # The re-check path really ran, and the rule's premise holds on this set: no label's peak
    # moved by the margin or more (else raise runtime.recheck_margin in the manifest).
    tight = [name for name in policies if name.startswith("tight")]
    assert all(rechecks[name] >= 1 for name in tight), "\n".join(report)
    if fast_runner.precision == "bf16":  # so the re-check had work to do
        assert len(tight) == 2 and all(flips[name] >= 1 for name in tight), "\n".join(report)
    assert max(worst.values()) < margin, "\n".join(report)
