"""Letterbox geometry: how a WxH frame sits inside the square network input.

Kept separate from preprocessing because two producers build input tensors
(the numpy/cv2 reference here and the Cython YUV fast path) and one consumer
(decode) maps boxes back; all three must agree on this one small record.

The frame is padded to a ``side`` x ``side`` square (side = max(w, h)) and that
square is resized to ``input_size``. ``offset_x``/``offset_y`` are the padding
before the frame inside the square, in frame pixels: 0 for NudeNet's
"top-left" placement (pad bottom/right), about half the slack for "center".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Letterbox", "Placement"]

Placement = Literal["top-left", "center"]


@dataclass(frozen=True, slots=True)
class Letterbox:
    frame_width: int
    frame_height: int
    input_size: int
    side: int
    offset_x: int = 0
    offset_y: int = 0

    @classmethod
    def for_frame(
        cls, width: int, height: int, input_size: int, placement: Placement = "top-left"
    ) -> Letterbox:
        if width <= 0 or height <= 0 or input_size <= 0:
            raise ValueError(f"bad letterbox geometry {width}x{height} -> {input_size}")
        side = max(width, height)
        if placement == "top-left":
            return cls(width, height, input_size, side, 0, 0)
        if placement == "center":
            return cls(width, height, input_size, side, (side - width) // 2, (side - height) // 2)
        raise ValueError(f"unknown letterbox placement {placement!r}")

    @classmethod
    def identity(cls, input_size: int) -> Letterbox:
        """Boxes stay in network-input pixels (for callers that have no frame)."""
        return cls(input_size, input_size, input_size, input_size, 0, 0)

    @property
    def scale(self) -> float:
        """Frame pixels per network-input pixel (max(w, h) / S)."""
        return self.side / self.input_size
