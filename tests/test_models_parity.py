"""The whole pipeline on real photographs, against the nudenet package itself.

Our path: reference preprocessing -> our InferenceSession -> our vectorised
decode. Theirs: ``nudenet.NudeDetector().detect(array)``.

Colour order, which surprised us: ``NudeDetector.detect`` on a cv2-style BGR
array calls ``cvtColor(COLOR_RGBA2BGR)`` (on 3 channels this just swaps R and
B) and then ``blobFromImage(swapRB=True)`` swaps them back -- so the network
gets **BGR**. Handed an RGB array it gets RGB, which is what an Ultralytics
model is trained on (and astronaut's face scores 0.81 in RGB vs 0.72 in BGR).
Our default manifest feeds RGB; both orders are checked for exact parity.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest
from nudenet import NudeDetector
from nudenet.nudenet import _read_image

from models.inference import ModelRunner
from models.manifest import Manifest, default_manifest
from models.preprocess_reference import preprocess, preprocess_rgb
from tests.support.model_photos import PHOTOS, assert_same_detections, photo

# astronaut's face: 0.811 fed RGB, 0.720 fed BGR (NudeNet 3.4.2, onnxruntime 1.32).
FACE_FEMALE_MIN_SCORE = 0.7


@pytest.fixture(scope="module")
def nudenet() -> Any:
    return NudeDetector()


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    return ModelRunner()


def bgr_manifest() -> Manifest:
    m = default_manifest()
    return msgspec.structs.replace(
        m, preprocess=msgspec.structs.replace(m.preprocess, colour_order="bgr")
    )


@pytest.fixture(scope="module")
def bgr_runner() -> ModelRunner:
    return ModelRunner(bgr_manifest())


def ours(runner: ModelRunner, rgb: np.ndarray) -> list[Any]:
    tensor, lb = preprocess(rgb, runner.manifest)
    return runner.infer(tensor[None], [lb])[0]


def crops() -> list[tuple[str, np.ndarray]]:
    """The photos plus portrait/odd-sized crops so padding goes both ways."""
    out = [(n, photo(n)) for n in PHOTOS]
    out.append(("astronaut-portrait", photo("astronaut")[:, 120:330]))
    out.append(("coffee-odd", photo("coffee")[3:398, 7:590]))
    return out


@pytest.mark.parametrize(("name", "rgb"), crops(), ids=[n for n, _ in crops()])
def test_rgb_pipeline_matches_nudenet(
    name: str, rgb: np.ndarray, runner: ModelRunner, nudenet: Any
) -> None:
    assert_same_detections(ours(runner, rgb), nudenet.detect(np.ascontiguousarray(rgb)))


@pytest.mark.parametrize(("name", "rgb"), crops(), ids=[n for n, _ in crops()])
def test_bgr_manifest_matches_nudenet_on_bgr_arrays(
    name: str, rgb: np.ndarray, bgr_runner: ModelRunner, nudenet: Any
) -> None:
    """NudeDetector.detect(cv2.imread-style BGR array) == our pipeline with colour_order=bgr."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert_same_detections(ours(bgr_runner, rgb), nudenet.detect(bgr))


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_reference_preprocessing_is_bit_exact(name: str, order: str) -> None:
    rgb = photo(name)
    tensor, lb = preprocess_rgb(rgb, 320, colour_order=order)
    fed = rgb if order == "rgb" else np.ascontiguousarray(rgb[..., ::-1])
    blob = _read_image(fed, 320)[0]
    assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
    assert np.array_equal(tensor[None], blob)
    assert (lb.side, lb.scale) == (max(rgb.shape[:2]), max(rgb.shape[:2]) / 320)


@pytest.mark.parametrize("which", ["rgb", "bgr"])
def test_astronaut_is_a_female_face(
    which: str, runner: ModelRunner, bgr_runner: ModelRunner
) -> None:
    dets = ours(runner if which == "rgb" else bgr_runner, photo("astronaut"))
    faces = [d for d in dets if d.label == "FACE_FEMALE"]
    assert len(faces) == 1 and faces[0].score > FACE_FEMALE_MIN_SCORE
    x, y, w, h = faces[0].box  # her face, in 512x512 frame pixels
    assert 160 < x < 190 and 70 < y < 95 and 90 < w < 115 and 85 < h < 110


def test_expected_findings_on_the_photo_set(runner: ModelRunner) -> None:
    """What the default model makes of the photo set (RGB): a record of its behaviour,
    including its false positives on non-people (policy thresholds handle those)."""
    found = {n: [(d.label, round(d.score, 2)) for d in ours(runner, photo(n))] for n in PHOTOS}
    assert found["astronaut"] == [("FACE_FEMALE", 0.81)]
    assert found["camera"] == [("FACE_MALE", 0.58)]
    assert found["horse"] == [("FEET_COVERED", 0.64)]  # a silhouette's hooves
    assert [lbl for lbl, _ in found["moon"]] == ["BELLY_EXPOSED", "BELLY_EXPOSED"]
    assert found["chelsea"] == [] and found["rocket"] == []
    assert [lbl for lbl, _ in found["coffee"]] == ["BUTTOCKS_EXPOSED"]  # 0.30, RGB only
    assert [lbl for lbl, _ in found["colorwheel"]] == ["BUTTOCKS_EXPOSED"]  # 0.83 (!)


def test_center_letterbox_finds_the_same_face(runner: ModelRunner) -> None:
    centred = msgspec.structs.replace(
        runner.manifest,
        preprocess=msgspec.structs.replace(runner.manifest.preprocess, letterbox="center"),
    )
    portrait = photo("astronaut")[:, 120:330]
    tensor, lb = preprocess(portrait, centred)
    assert lb.offset_x > 0 and lb.offset_y == 0
    face_c = next(d for d in runner.infer(tensor[None], [lb])[0] if d.label == "FACE_FEMALE")
    face_t = next(d for d in ours(runner, portrait) if d.label == "FACE_FEMALE")
    assert all(abs(a - b) < 6 for a, b in zip(face_c.box, face_t.box, strict=True))


def test_batched_run_equals_single_runs(runner: ModelRunner) -> None:
    imgs = [photo(n) for n in ("astronaut", "camera", "horse", "moon")]
    prepped = [preprocess(i, runner.manifest) for i in imgs]
    batch = np.stack([t for t, _ in prepped])
    together = runner.infer(batch, [lb for _, lb in prepped])
    alone = [runner.infer(t[None], [lb])[0] for t, lb in prepped]
    assert [[d.label for d in r] for r in together] == [[d.label for d in r] for r in alone]
    for r1, r2 in zip(together, alone, strict=True):
        for a, b in zip(r1, r2, strict=True):
            assert abs(a.score - b.score) < 1e-4
            assert all(abs(p - q) < 0.5 for p, q in zip(a.box, b.box, strict=True))


def test_model_io_shapes(runner: ModelRunner) -> None:
    assert runner.input_shape == ["batch", 3, "height", "width"]
    assert not runner.fixed_batch
    assert runner.run_raw(np.zeros((2, 3, 320, 320), np.float32)).shape == (2, 22, 2100)
    with pytest.raises(ValueError, match="320"):
        runner.run_raw(np.zeros((1, 3, 256, 256), np.float32))
