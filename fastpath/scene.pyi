"""Type stub for the compiled ``fastpath.scene`` (luma thumbnail scene-change measure)."""

import numpy as np
import numpy.typing as npt

MAX_GRID_WIDTH: int
MAX_PEAK_CELLS: int

def luma_signature(y: npt.NDArray[np.uint8], out: npt.NDArray[np.float32]) -> None: ...
def signature_distance(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float: ...
def peak_change(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], cells: int) -> float: ...
