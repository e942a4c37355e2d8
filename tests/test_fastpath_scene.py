"""Luma-signature scene-change measure: Cython against numpy, and the gate's expectations."""

from __future__ import annotations

import numpy as np
import pytest

from fastpath import reference
from fastpath.scene import (
    MAX_GRID_WIDTH,
    MAX_PEAK_CELLS,
    luma_detail,
    luma_signature,
    peak_change,
    signature_distance,
)
from tests.support.fastpath_frames import planes, synthetic_rgb, yuv_frame


def _signature(y: np.ndarray, grid: tuple[int, int] = (18, 32)) -> np.ndarray:
    out = np.empty(grid, np.float32)
    luma_signature(y, out)
    return out


@pytest.mark.parametrize("w,h", [(640, 480), (1280, 720), (321, 241), (33, 17), (3, 2), (1, 1)])
@pytest.mark.parametrize("grid", [(18, 32), (16, 16), (1, 1), (4, 7)])
def test_matches_reference(w: int, h: int, grid: tuple[int, int]) -> None:
    y, _, _ = planes(yuv_frame(synthetic_rgb(w, h, noise=40)))
    fast = _signature(y, grid)
    ref = np.empty(grid, np.float32)
    reference.luma_signature(y, ref)
    assert np.abs(fast - ref).max() <= 1e-4
    other = _signature(255 - np.ascontiguousarray(y), grid)
    assert signature_distance(fast, other) == pytest.approx(
        reference.signature_distance(fast, other), rel=1e-9, abs=1e-9
    )


def test_box_average_of_constant_and_split_frames() -> None:
    y = np.full((480, 640), 77, np.uint8)
    assert np.all(_signature(y) == 77)
    y[:, 320:] = 200
    sig = _signature(y, (2, 2))
    assert sig.tolist() == [[77, 200], [77, 200]]


def test_identical_frames_distance_zero() -> None:
    y, _, _ = planes(yuv_frame(synthetic_rgb(640, 480, noise=10)))
    assert signature_distance(_signature(y), _signature(y.copy())) == 0.0


def test_different_scenes_are_far() -> None:
    a, _, _ = planes(yuv_frame(synthetic_rgb(640, 480, seed=1)))
    b, _, _ = planes(yuv_frame(synthetic_rgb(640, 480, seed=2)))
    assert signature_distance(_signature(a), _signature(b)) > 20


def test_sensor_noise_is_near() -> None:
    rng = np.random.default_rng(5)
    a, _, _ = planes(yuv_frame(synthetic_rgb(640, 480, seed=1)))
    noisy = np.clip(a.astype(np.int16) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    assert signature_distance(_signature(a), _signature(noisy)) < 1.0


def test_bad_input_raises() -> None:
    y = np.zeros((48, 64), np.uint8)
    out = np.zeros((4, 4), np.float32)
    with pytest.raises(TypeError):
        luma_signature(y.astype(np.float32), out)
    with pytest.raises(TypeError):
        luma_signature(y, out.astype(np.float64))
    with pytest.raises(TypeError):
        luma_signature(y[None], out)
    with pytest.raises(TypeError):
        luma_signature([[1]], out)
    with pytest.raises(ValueError):
        luma_signature(y, np.zeros((4, 8), np.float32)[:, ::2])
    with pytest.raises(ValueError):
        luma_signature(y[:0], out)
    with pytest.raises(ValueError):
        luma_signature(y, np.zeros((1, MAX_GRID_WIDTH + 1), np.float32))
    with pytest.raises(ValueError):
        signature_distance(out, np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError):
        signature_distance(out, out.astype(np.float64))


@pytest.mark.parametrize("cells", [1, 3, 16, 256])
@pytest.mark.parametrize("grid", [(18, 32), (2, 2), (1, 1)])
def test_peak_change_matches_reference(cells: int, grid: tuple[int, int]) -> None:
    rng = np.random.default_rng(cells)
    a = (rng.random(grid) * 255).astype(np.float32)
    b = (rng.random(grid) * 255).astype(np.float32)
    b.flat[0] = a.flat[0]  # ties and zeros
    assert peak_change(a, b, cells) == pytest.approx(
        reference.peak_change(a, b, cells), rel=1e-12, abs=1e-12
    )


def test_a_change_in_one_corner_moves_the_peak_not_the_mean() -> None:
    a, _, _ = planes(yuv_frame(synthetic_rgb(640, 480, seed=1)))
    b = a.copy()
    b[:100, :120] = 255 - b[:100, :120]  # 4 % of the picture
    sa, sb = _signature(a), _signature(b)
    assert signature_distance(sa, sb) < 8 <= 40 <= peak_change(sa, sb, 16)
    rng = np.random.default_rng(5)
    noisy = np.clip(a.astype(np.int16) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    assert peak_change(sa, _signature(noisy), 16) < 2.0


def test_peak_change_rejects_bad_cell_counts() -> None:
    z = np.zeros((4, 4), np.float32)
    for cells in (0, MAX_PEAK_CELLS + 1):
        with pytest.raises(ValueError):
            peak_change(z, z, cells)
    with pytest.raises(ValueError):
        peak_change(z, np.zeros((4, 5), np.float32), 1)


@pytest.mark.parametrize("w,h", [(640, 480), (321, 241), (3, 2), (1, 5), (2, 1)])
def test_detail_matches_reference(w: int, h: int) -> None:
    y, _, _ = planes(yuv_frame(synthetic_rgb(w, h, noise=40)))
    assert luma_detail(y) == pytest.approx(reference.luma_detail(y), rel=1e-12, abs=1e-12)
    strided = y[:, ::2]  # not contiguous: the slow loop
    assert luma_detail(strided) == pytest.approx(reference.luma_detail(strided), rel=1e-12)


def test_a_blurred_picture_shows_less_detail() -> None:
    """What the gate relies on: an encoder's coarse first frames of a scene measure less."""
    import cv2

    y, _, _ = planes(yuv_frame(synthetic_rgb(640, 480, noise=10)))
    blurred = cv2.GaussianBlur(np.ascontiguousarray(y), (9, 9), 0)
    assert luma_detail(blurred) < 0.7 * luma_detail(y)
    assert luma_detail(np.full((48, 64), 9, np.uint8)) == 0.0


def test_detail_refuses_bad_input() -> None:
    with pytest.raises(TypeError):
        luma_detail(np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError):
        luma_detail(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        luma_detail(np.zeros((0, 4), np.uint8))
