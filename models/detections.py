"""Decode raw network output into detections.

Why not just call NudeNet: its ``_postprocess`` loops in Python over all 2100
candidate rows of the 320x320 output (one ``np.amax`` + ``np.argmax`` per row)
and needs OpenCV for NMS. Here the candidate filter, the box arithmetic and
clipping are vectorised over the ``[4 + C, N]`` output, and NMS is a small
numpy loop over the few surviving boxes -- no OpenCV at runtime.

The semantics are NudeNet 3.4's exactly (tests compare against
``NudeDetector.detect`` on real photographs):

* candidate rows: max class score >= ``score_threshold`` (0.2), label = argmax;
* box: (cx - w/2, cy - h/2, w, h) * side / S, done in float32 in the same
  operation order so the values are bit-identical, then clipped as NudeNet
  does (x, y into [0, W] / [0, H]; w, h cut at the frame edge -- w, h are not
  clamped at 0 and x is not shifted, which is NudeNet's behaviour);
* NMS is ``cv2.dnn.NMSBoxes(boxes, scores, 0.25, 0.45)`` semantics, which is
  **class-agnostic** (a FACE box can suppress an overlapping BELLY box):
  keep scores strictly > 0.25, stable sort by score descending, suppress a box
  when its IoU with an already kept box is strictly > 0.45. IoU is
  ``inter / (Aa + Ab - inter)`` in double with no "+1 pixel" convention (the
  Python binding picks the ``Rect2d`` overload for float boxes), computed as
  ``1.f - float(1 - iou)`` like OpenCV's ``rectOverlap``; two boxes of total
  area <= DBL_EPSILON count as overlap 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.letterbox import Letterbox

__all__ = ["Detection", "classifier_detections", "decode_classifier", "decode_yolov8", "nms_xywh"]

_DBL_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, slots=True)
class Detection:
    """One detection. ``box`` is (x, y, w, h) in original frame pixels (floats;
    NudeNet reports ``int()`` of the same values)."""

    label: str
    score: float
    box: tuple[float, float, float, float]


def nms_xywh(
    boxes: NDArray[np.floating],
    scores: NDArray[np.float32],
    score_threshold: float,
    iou_threshold: float,
) -> NDArray[np.intp]:
    """Greedy class-agnostic NMS with cv2.dnn.NMSBoxes semantics; returns kept indices
    in descending-score order. ``boxes`` is (N, 4) x, y, w, h."""
    scores = np.asarray(scores, dtype=np.float32)
    cand = np.flatnonzero(scores > np.float32(score_threshold))
    if cand.size == 0:
        return cand
    order = cand[np.argsort(-scores[cand], kind="stable")]
    b = np.asarray(boxes, dtype=np.float64)[order]
    x1, y1, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    x2, y2 = x1 + w, y1 + h
    area = w * h
    thr = np.float32(iou_threshold)
    alive = np.ones(order.size, dtype=bool)
    keep: list[int] = []
    for i in range(order.size):
        if not alive[i]:
            continue
        keep.append(int(order[i]))
        rest = np.flatnonzero(alive[i + 1 :]) + i + 1
        if rest.size == 0:
            break
        iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
        total = area[i] + area[rest]
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(total <= _DBL_EPS, 0.0, 1.0 - inter / (total - inter))
        overlap = np.float32(1.0) - dist.astype(np.float32)
        alive[rest[overlap > thr]] = False
    return np.asarray(keep, dtype=np.intp)


def decode_yolov8(
    output: NDArray[np.float32],
    letterbox: Letterbox,
    labels: Sequence[str],
    *,
    score_threshold: float = 0.2,
    nms_score_threshold: float = 0.25,
    nms_iou_threshold: float = 0.45,
) -> list[Detection]:
    """Decode one image's YOLOv8 output, shape ``(4 + C, N)`` (or ``(1, 4 + C, N)``)."""
    out = np.asarray(output)
    if out.ndim == 3:
        if out.shape[0] != 1:
            raise ValueError(f"decode_yolov8 takes one image, got output {out.shape}")
        out = out[0]
    if out.ndim != 2 or out.shape[0] != 4 + len(labels):
        raise ValueError(f"expected output (4 + {len(labels)}, N), got {out.shape}")
    out = out.astype(np.float32, copy=False)
    cls = out[4:]
    best = cls.max(axis=0)
    rows = np.flatnonzero(best >= np.float32(score_threshold))
    if rows.size == 0:
        return []
    scores = best[rows]
    class_ids = cls[:, rows].argmax(axis=0)
    cx, cy, w, h = out[0, rows], out[1, rows], out[2, rows], out[3, rows]

    # Same float32 operation order as NudeNet: (c - w/2) * side / S.
    fw, fh = letterbox.frame_width, letterbox.frame_height
    side, size = letterbox.side, letterbox.input_size
    x = (cx - w / np.float32(2)) * np.float32(side) / np.float32(size)
    y = (cy - h / np.float32(2)) * np.float32(side) / np.float32(size)
    w = w * np.float32(side) / np.float32(size)
    h = h * np.float32(side) / np.float32(size)
    if letterbox.offset_x:
        x = x - np.float32(letterbox.offset_x)
    if letterbox.offset_y:
        y = y - np.float32(letterbox.offset_y)
    x = np.clip(x, np.float32(0), np.float32(fw))
    y = np.clip(y, np.float32(0), np.float32(fh))
    w = np.minimum(w, np.float32(fw) - x)
    h = np.minimum(h, np.float32(fh) - y)
    boxes = np.stack([x, y, w, h], axis=1)

    keep = nms_xywh(boxes, scores, nms_score_threshold, nms_iou_threshold)
    return [
        Detection(
            label=labels[int(class_ids[k])],
            score=float(scores[k]),
            box=(float(boxes[k, 0]), float(boxes[k, 1]), float(boxes[k, 2]), float(boxes[k, 3])),
        )
        for k in keep
    ]


def decode_classifier(
    output: NDArray[np.float32],
    labels: Sequence[str],
    *,
    activation: str = "none",
) -> dict[str, float]:
    """Per-label scores from one image's classifier output, shape ``(C,)`` or ``(1, C)``."""
    v = np.asarray(output, dtype=np.float64).reshape(-1)
    if v.size != len(labels):
        raise ValueError(f"expected {len(labels)} scores, got output of {v.size}")
    if activation == "softmax":
        e = np.exp(v - v.max())
        v = e / e.sum()
    elif activation == "sigmoid":
        v = 1.0 / (1.0 + np.exp(-v))
    elif activation != "none":
        raise ValueError(f"unknown activation {activation!r}")
    return {label: float(s) for label, s in zip(labels, v, strict=True)}


def classifier_detections(
    scores: dict[str, float], letterbox: Letterbox, score_threshold: float
) -> list[Detection]:
    """Classifier scores as whole-frame Detections, so both decode kinds share one result type."""
    box = (0.0, 0.0, float(letterbox.frame_width), float(letterbox.frame_height))
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    return [Detection(label, s, box) for label, s in ranked if s >= score_threshold]
