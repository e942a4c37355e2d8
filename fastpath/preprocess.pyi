"""Type stub for the compiled ``fastpath.preprocess`` (YUV420 -> letterboxed model tensor)."""

import numpy as np
import numpy.typing as npt

class Letterboxer:
    """Lookup tables for one (frame size, tensor size, placement); reuse one per stream."""

    @property
    def src_width(self) -> int: ...
    @property
    def src_height(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def center(self) -> bool: ...
    @property
    def offset_x(self) -> int:
        """Left padding in frame pixels (0 unless ``center``)."""
    @property
    def offset_y(self) -> int:
        """Top padding in frame pixels (0 unless ``center``)."""
    def __init__(
        self, src_width: int, src_height: int, size: int, center: bool = False
    ) -> None: ...
    @property
    def scale(self) -> float: ...
    @property
    def vectorized(self) -> bool: ...
    def to_frame(self, x: float, y: float) -> tuple[float, float]: ...
    def run(
        self,
        y: npt.NDArray[np.uint8],
        u: npt.NDArray[np.uint8],
        v: npt.NDArray[np.uint8],
        out: npt.NDArray[np.float32],
    ) -> None: ...

def letterboxer(
    src_width: int, src_height: int, size: int, center: bool = False
) -> Letterboxer: ...
def letterbox_yuv420(
    y: npt.NDArray[np.uint8],
    u: npt.NDArray[np.uint8],
    v: npt.NDArray[np.uint8],
    out: npt.NDArray[np.float32],
    center: bool = False,
) -> float: ...
