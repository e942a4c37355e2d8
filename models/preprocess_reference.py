"""Reference preprocessing: RGB uint8 frame -> network input tensor, as NudeNet does it.

This is the *reference*, used by tests and benchmarks: production builds the
tensor straight from YUV planes in the Cython fast path (``fastpath/``) and is
tested against this function. It reproduces NudeNet's ``_read_image`` bit for
bit (checked against ``cv2.dnn.blobFromImage``): pad with black to a square,
``cv2.resize`` INTER_LINEAR *in uint8* (blobFromImage resizes before converting
to float, so resizing floats would differ by up to ~0.003), then multiply by the
float32 scale and transpose HWC -> CHW.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from models.letterbox import Letterbox, Placement
from models.manifest import Manifest

__all__ = ["preprocess", "preprocess_rgb"]


def preprocess_rgb(
    image: NDArray[np.uint8],
    input_size: int,
    *,
    colour_order: str = "rgb",
    scale: float = 1.0 / 255.0,
    placement: Placement = "top-left",
) -> tuple[NDArray[np.float32], Letterbox]:
    """Return a C-contiguous float32 (3, S, S) tensor and the letterbox that maps boxes back."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    lb = Letterbox.for_frame(w, h, input_size, placement)
    left, top = lb.offset_x, lb.offset_y
    padded = cv2.copyMakeBorder(
        np.ascontiguousarray(image),
        top,
        lb.side - h - top,
        left,
        lb.side - w - left,
        cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )
    resized = cv2.resize(padded, (input_size, input_size), interpolation=cv2.INTER_LINEAR)
    if colour_order == "bgr":
        resized = resized[:, :, ::-1]
    elif colour_order != "rgb":
        raise ValueError(f"unknown colour order {colour_order!r}")
    chw = np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32)
    chw *= np.float32(scale)
    return chw, lb


def preprocess(
    image: NDArray[np.uint8], manifest: Manifest
) -> tuple[NDArray[np.float32], Letterbox]:
    """:func:`preprocess_rgb` with the manifest's size, colour order, scale and placement."""
    p = manifest.preprocess
    return preprocess_rgb(
        image,
        manifest.input_size,
        colour_order=p.colour_order,
        scale=p.scale,
        placement=p.letterbox,
    )
