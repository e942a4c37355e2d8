"""Engine choice (``models.runtime``), the OpenVINO runner, and the batcher's fp32 re-check."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from models import runtime
from models.batching import AsyncBatcher
from models.inference import ModelRunner
from models.manifest import Manifest, RuntimeSpec, default_manifest
from models.preprocess_reference import preprocess
from tests.support.model_photos import photo


def with_runtime(**kw: Any) -> Manifest:
    return msgspec.structs.replace(default_manifest(), runtime=RuntimeSpec(**kw))


@pytest.mark.parametrize(
    ("spec", "installed", "bf16", "expected"),
    [
        ({}, True, True, ("openvino", "bf16")),
        ({}, True, False, ("onnxruntime", "fp32")),
        ({}, False, False, ("onnxruntime", "fp32")),
        ({"precision": "fp32"}, True, True, ("onnxruntime", "fp32")),
        ({"engine": "onnxruntime"}, True, True, ("onnxruntime", "fp32")),
        ({"engine": "openvino"}, True, False, ("openvino", "fp32")),
        ({"engine": "openvino", "precision": "bf16"}, True, True, ("openvino", "bf16")),
        ({"engine": "openvino", "precision": "fp32"}, True, True, ("openvino", "fp32")),
    ],
)
def test_resolve(
    spec: dict[str, str],
    installed: bool,
    bf16: bool,
    expected: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "_openvino_installed", lambda: installed)
    monkeypatch.setattr(runtime, "_openvino_bf16", lambda: installed and bf16)
    assert runtime.resolve(with_runtime(**spec)) == expected


def test_openvino_asked_for_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_openvino_installed", lambda: False)
    with pytest.raises(RuntimeError, match=r"pip install 'chatguard\[openvino\]'"):
        runtime.resolve(with_runtime(engine="openvino"))


def test_importing_the_openvino_runner_starts_no_telemetry(tmp_path: Path) -> None:
    """OpenVINO's telemetry writes ~/intel/ and phones Google Analytics on import unless the
    user opted out: the runner's import stops it (a child process with HOME in tmp_path)."""
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed (pip install 'chatguard[openvino]')")
    code = (
        "import sys, models.openvino_runner as r; r.ov.Core(); "
        "t = sys.modules['openvino.tools.ovc.telemetry_utils']; print(t.tm.__name__)"
    )
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("CI", None)  # the library's own CI switch would hide what this test looks for
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "openvino.tools.ovc.telemetry_stub"
    assert not (tmp_path / "intel").exists()  # (onnxruntime writes ~/.cache/Microsoft: not ours)


def test_onnxruntime_runner_is_exact() -> None:
    r = runtime.open_runner(with_runtime(engine="onnxruntime"))
    assert isinstance(r, ModelRunner) and r.reference is None and r.batch_mode == "loop"
    assert r.name == "onnxruntime fp32"


@pytest.fixture(scope="module")
def ov() -> Any:
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed (pip install 'chatguard[openvino]')")
    return importlib.import_module("models.openvino_runner")


def test_auto_picks_openvino_bf16_where_the_cpu_has_it(ov: Any) -> None:
    r = runtime.open_runner()
    if not ov.cpu_has_bf16():
        assert r.name == "onnxruntime fp32"
        return
    assert r.name == "openvino bf16" and r.batch_mode == "tensor"
    assert isinstance(r.reference, ModelRunner) and r.recheck_margin == 0.05


def test_openvino_runner_batches_and_fp32_matches_onnxruntime(ov: Any) -> None:
    m = default_manifest()
    tensors = np.stack([preprocess(photo(n), m)[0] for n in ("astronaut", "coffee", "rocket")])
    fp32 = ov.OpenVinoRunner(precision="fp32")
    ort = ModelRunner()
    want = ort.run_raw(tensors)
    batched = fp32.run_raw(tensors)  # the dynamic-batch model
    assert batched.shape == want.shape == (3, 22, 2100)
    singles = np.concatenate([fp32.run_raw(t[None]) for t in tensors])  # the static one
    assert np.abs(batched - singles).max() < 1e-4
    # fp32 asked for explicitly (OpenVINO's default on a bf16 CPU is bf16: ~1e-2 off)
    assert np.abs(batched[:, 4:] - want[:, 4:]).max() < 1e-4
    with pytest.raises(ValueError, match=r"expected a \(B, 3, 320, 320\) batch"):
        fp32.run_raw(np.zeros((1, 3, 256, 256), np.float32))


def test_batcher_rechecks_near_a_threshold_only(ov: Any) -> None:
    if not ov.cpu_has_bf16():
        pytest.skip("this CPU has no bf16")
    m = default_manifest()
    tensor, lb = preprocess(photo("astronaut"), m)
    fast = ov.OpenVinoRunner(precision="bf16", reference=ModelRunner())
    fp32_dets = fast.reference.infer_one(tensor, lb)
    bf16_dets = fast.infer_one(tensor, lb)
    face = next(d.score for d in bf16_dets if d.label == "FACE_FEMALE")
    assert bf16_dets != fp32_dets  # bf16 is not fp32: the re-check has something to do

    async def classify(thresholds: dict[str, float] | None) -> tuple[list[Any], int]:
        async with AsyncBatcher(fast, max_batch=4) as batcher:
            dets = await batcher.infer(tensor, lb, thresholds=thresholds)
        return dets, batcher.stats.rechecked  # counted once the run is over

    assert asyncio.run(classify({"FACE_FEMALE": face + 0.01})) == (fp32_dets, 1)
    assert asyncio.run(classify({"FACE_FEMALE": face - 0.2})) == (bf16_dets, 0)  # clearly over
    assert asyncio.run(classify({"FACE_MALE": 0.9})) == (bf16_dets, 0)  # clearly under
    assert asyncio.run(classify(None)) == (bf16_dets, 0)  # no decision rides on it
