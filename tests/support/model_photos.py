"""Shared helpers for the tests/test_models_*.py files: real photographs and comparisons."""

from __future__ import annotations

from typing import Any

import numpy as np
import skimage.data
from numpy.typing import NDArray

from models.detections import Detection

# Photographs bundled with scikit-image (no download needed) and what NudeNet 320n
# finds in them with the network fed RGB (see test_models_parity for BGR).
PHOTOS = ["astronaut", "camera", "horse", "moon", "coffee", "chelsea", "rocket", "colorwheel"]


def photo(name: str) -> NDArray[np.uint8]:
    """An HxWx3 uint8 RGB image from skimage.data (grey/bool images expanded)."""
    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def assert_same_detections(ours: list[Detection], theirs: list[dict[str, Any]]) -> None:
    """Labels exact and in the same order, scores within 1e-5, boxes within 1 pixel.

    NudeNet reports int() of the very float32 values we compute, so the boxes
    in fact truncate to the same integers; the 1-pixel tolerance is the contract.
    """
    assert [d.label for d in ours] == [t["class"] for t in theirs]
    for d, t in zip(ours, theirs, strict=True):
        assert abs(d.score - t["score"]) <= 1e-5, (d, t)
        assert all(abs(a - b) <= 1.0 for a, b in zip(d.box, t["box"], strict=True)), (d, t)
        assert [int(v) for v in d.box] == t["box"], (d, t)
