"""Decoding: our vectorised YOLOv8 decode and numpy NMS against NudeNet's loop and cv2."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from nudenet.nudenet import _postprocess
from numpy.typing import NDArray

from models.detections import (
    classifier_detections,
    decode_classifier,
    decode_yolov8,
    nms_xywh,
)
from models.letterbox import Letterbox
from models.manifest import default_manifest
from tests.support.model_photos import assert_same_detections

LABELS = default_manifest().labels


def cv2_nms(boxes: NDArray[np.float32], scores: NDArray[np.float32]) -> list[int]:
    return [
        int(i)
        for i in np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.25, 0.45)).reshape(
            -1
        )
    ]


@pytest.mark.parametrize("seed", range(40))
def test_nms_matches_cv2(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 60))
    boxes = np.empty((k, 4), np.float32)
    boxes[:, :2] = rng.uniform(0, 60, (k, 2))
    boxes[:, 2:] = rng.uniform(0, 40, (k, 2))
    if seed % 3 == 0:  # integer boxes hit IoU ties and touching edges
        boxes = np.round(boxes)
    if seed % 2:  # repeated scores exercise the stable sort
        scores = rng.choice(np.array([0.25, 0.3, 0.5, 0.5, 0.9], np.float32), k)
    else:
        scores = rng.uniform(0.2, 1.0, k).astype(np.float32)
    assert nms_xywh(boxes, scores, 0.25, 0.45).tolist() == cv2_nms(boxes, scores)


def test_nms_edge_cases_match_cv2() -> None:
    cases: list[tuple[list[list[float]], list[float]]] = [
        ([[5, 5, 0, 0], [100, 100, 0, 0]], [0.9, 0.8]),  # zero areas: cv2 says overlap 1
        ([[0, 0, 1, 1], [1, 0, 1, 1]], [0.9, 0.8]),  # touching: no +1 pixel convention
        ([[0, 0, 10, 10], [3.9, 0, 10, 10]], [0.9, 0.8]),  # float IoU 0.4388, int would be 0.54
        ([[0, 0, 1, 1]], [0.25]),  # score threshold is strict
        ([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 5, 5]], [0.5, 0.5, 0.5]),
    ]
    for b, s in cases:
        boxes, scores = np.array(b, np.float32), np.array(s, np.float32)
        assert nms_xywh(boxes, scores, 0.25, 0.45).tolist() == cv2_nms(boxes, scores), b


def synthetic_output(rng: np.random.Generator, n: int = 2100, hot: int = 40) -> NDArray[np.float32]:
    """A plausible [1, 22, N] output: mostly background, some strong overlapping boxes,
    some reaching past the frame edges so clipping matters."""
    out = np.zeros((1, 4 + len(LABELS), n), np.float32)
    out[0, 0] = rng.uniform(-20, 340, n)
    out[0, 1] = rng.uniform(-20, 340, n)
    out[0, 2] = rng.uniform(2, 200, n)
    out[0, 3] = rng.uniform(2, 200, n)
    out[0, 4:] = rng.uniform(0, 0.15, (len(LABELS), n))
    idx = rng.choice(n, hot, replace=False)
    centres = rng.uniform(0, 320, (4, 2))
    for j, i in enumerate(idx):
        cx, cy = centres[j % 4] + rng.normal(0, 8, 2)
        out[0, :4, i] = (cx, cy, rng.uniform(30, 120), rng.uniform(30, 120))
        out[0, 4 + rng.integers(len(LABELS)), i] = rng.uniform(0.18, 0.95)
    return out


@pytest.mark.parametrize("frame", [(640, 480), (480, 640), (320, 320), (1280, 720), (97, 333)])
@pytest.mark.parametrize("seed", range(6))
def test_decode_matches_nudenet_postprocess(frame: tuple[int, int], seed: int) -> None:
    w, h = frame
    out = synthetic_output(np.random.default_rng(seed))
    side = max(w, h)
    theirs: list[dict[str, Any]] = _postprocess(
        [out], side - w, side - h, side / w, side / h, w, h, 320, 320
    )
    ours = decode_yolov8(out, Letterbox.for_frame(w, h, 320), LABELS)
    assert len(theirs) > 0
    assert_same_detections(ours, theirs)


def test_decode_of_background_is_empty() -> None:
    out = np.zeros((1, 22, 2100), np.float32)
    assert decode_yolov8(out, Letterbox.for_frame(640, 480, 320), LABELS) == []


def test_decode_rejects_wrong_shapes() -> None:
    lb = Letterbox.identity(320)
    with pytest.raises(ValueError, match="4 \\+ 18"):
        decode_yolov8(np.zeros((1, 21, 2100), np.float32), lb, LABELS)
    with pytest.raises(ValueError, match="one image"):
        decode_yolov8(np.zeros((2, 22, 2100), np.float32), lb, LABELS)


def test_center_letterbox_maps_back_through_the_offset() -> None:
    """A box at the same place in the network input lands 'offset' further left for
    top-left placement than for center placement."""
    out = np.zeros((1, 22, 1), np.float32)
    out[0, :4, 0] = (160, 160, 40, 20)
    out[0, 5, 0] = 0.9
    tl = decode_yolov8(out, Letterbox.for_frame(640, 480, 320, "top-left"), LABELS)
    ce = decode_yolov8(out, Letterbox.for_frame(640, 480, 320, "center"), LABELS)
    assert tl[0].box == pytest.approx((280.0, 300.0, 80.0, 40.0))
    assert ce[0].box == pytest.approx((280.0, 220.0, 80.0, 40.0))  # 80 px of pad above


def test_letterbox_geometry() -> None:
    lb = Letterbox.for_frame(640, 360, 320, "center")
    assert (lb.side, lb.offset_x, lb.offset_y, lb.scale) == (640, 0, 140, 2.0)
    assert Letterbox.for_frame(360, 640, 320).offset_x == 0
    with pytest.raises(ValueError):
        Letterbox.for_frame(0, 10, 320)


def test_classifier_decode() -> None:
    labels = ["safe", "nsfw", "other"]
    logits = np.array([[2.0, 0.5, -1.0]], np.float32)
    soft = decode_classifier(logits, labels, activation="softmax")
    assert sum(soft.values()) == pytest.approx(1.0)
    assert max(soft, key=lambda k: soft[k]) == "safe"
    sig = decode_classifier(logits, labels, activation="sigmoid")
    assert sig["nsfw"] == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert decode_classifier(logits, labels)["other"] == -1.0
    with pytest.raises(ValueError):
        decode_classifier(logits, labels[:2])
    dets = classifier_detections(soft, Letterbox.for_frame(64, 48, 32), 0.1)
    assert [d.label for d in dets] == ["safe", "nsfw"]
    assert dets[0].box == (0.0, 0.0, 64.0, 48.0)
