"""The Cython YUV420 -> tensor path against its numpy reference, OpenCV, NudeNet and PyAV."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation
from nudenet.nudenet import _read_image

from fastpath import reference
from fastpath.preprocess import Letterboxer, letterbox_yuv420
from tests.support.fastpath_frames import (
    i420_to_rgb_cv2,
    opencv_route,
    planes,
    synthetic_rgb,
    yuv_frame,
)

EXACT = 1 / 255 + 1e-6  # Cython vs numpy reference: same math, float rounding only
SIZES = [
    (640, 480),
    (1280, 720),
    (320, 240),
    (480, 640),
    (848, 480),
    (1920, 1080),
    (321, 241),
    (33, 17),
    (17, 33),
    (1, 1),
    (2, 1),
    (1, 2),
    (3, 3),
    (641, 480),
    (640, 479),
    (100, 640),
    (640, 100),
    (960, 540),
    (2560, 1440),
    (478, 640),
    (718, 1280),
    (1078, 1920),
    (1080, 1920),
]


def _both(y, u, v, size=320, center=False, batch=False):
    shape = (1, 3, size, size) if batch else (3, size, size)
    fast = np.full(shape, np.nan, np.float32)  # garbage in: padding must be written too
    ref = np.zeros(shape, np.float32)
    s1 = letterbox_yuv420(y, u, v, fast, center=center)
    s2 = reference.letterbox_yuv420(y, u, v, ref, center=center)
    assert s1 == pytest.approx(s2)
    return fast, ref


@pytest.mark.parametrize("w,h", SIZES)
@pytest.mark.parametrize("center", [False, True])
def test_matches_reference_on_pyav_frames(w: int, h: int, center: bool) -> None:
    y, u, v = planes(yuv_frame(synthetic_rgb(w, h, noise=20)))
    fast, ref = _both(y, u, v, center=center)
    assert np.abs(fast - ref).max() <= EXACT


@pytest.mark.parametrize("size", [1, 7, 160, 416, 640])
@pytest.mark.parametrize("w,h", [(640, 480), (1280, 720), (333, 200)])
def test_matches_reference_other_tensor_sizes(size: int, w: int, h: int) -> None:
    y, u, v = planes(yuv_frame(synthetic_rgb(w, h, noise=10)))
    fast, ref = _both(y, u, v, size=size, batch=True)
    assert np.abs(fast - ref).max() <= EXACT


@pytest.mark.parametrize("w,h", [(640, 480), (101, 77), (1280, 720)])
def test_matches_reference_on_random_planes(w: int, h: int) -> None:
    """Arbitrary YUV (much of it out of the RGB gamut) exercises clamping."""
    rng = np.random.default_rng(3)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    y = rng.integers(0, 256, (h, w + 13), dtype=np.uint8)[:, :w]
    u = rng.integers(0, 256, (ch, cw + 5), dtype=np.uint8)[:, :cw]
    v = rng.integers(0, 256, (ch, cw), dtype=np.uint8)
    for center in (False, True):
        fast, ref = _both(y, u, v, center=center)
        assert np.abs(fast - ref).max() <= EXACT
        assert fast.min() >= 0.0 and fast.max() <= 1.0


def test_pyav_planes_are_really_strided() -> None:
    y, u, _ = planes(yuv_frame(synthetic_rgb(33, 17)))
    assert y.strides[0] > y.shape[1] and u.strides[0] > u.shape[1]
    assert not y.flags.c_contiguous


@pytest.mark.parametrize("w,h", [(640, 480), (1280, 720), (320, 240), (480, 640), (848, 480)])
@pytest.mark.parametrize("noise", [0, 20])
def test_close_to_opencv_route_and_nudenet(w: int, h: int, noise: int) -> None:
    """Same tensor as cvtColor(I420->RGB) + pad + resize + /255, and as NudeNet's _read_image.

    Tolerance: OpenCV rounds to uint8 twice and uses 11-bit resize weights (<= ~2/255 on smooth
    frames). On noisy frames some chroma taps are out of gamut and OpenCV clamps per source
    pixel while we clamp per output pixel, so a few pixels differ more; the mean stays tiny.
    NudeNet's blob keeps the channel order of the array it is given (its RGBA2BGR cvtColor and
    swapRB cancel out, see notAI-tech/NudeNet#203), so we give it RGB to get an RGB blob.
    """
    y, u, v = planes(yuv_frame(synthetic_rgb(w, h, noise=noise)))
    out = np.empty((3, 320, 320), np.float32)
    letterbox_yuv420(y, u, v, out)
    rgb = i420_to_rgb_cv2(y, u, v)
    max_tol = (2.5 if noise == 0 else 10) / 255
    for other in (opencv_route(rgb, 320), _read_image(rgb, 320)[0][0]):
        diff = np.abs(out - other)
        assert diff.mean() <= 0.5 / 255
        assert diff.max() <= max_tol


@pytest.mark.parametrize("w,h", [(640, 480), (478, 640), (718, 1280), (848, 480)])
def test_centred_placement_close_to_opencv(w: int, h: int) -> None:
    y, u, v = planes(yuv_frame(synthetic_rgb(w, h)))
    out = np.empty((3, 320, 320), np.float32)
    letterbox_yuv420(y, u, v, out, center=True)
    diff = np.abs(out - opencv_route(i420_to_rgb_cv2(y, u, v), 320, center=True))
    assert diff.mean() <= 0.5 / 255
    assert diff.max() <= 2.5 / 255


@pytest.mark.parametrize("side", [320, 64, 250])
def test_colour_matches_pyav_rgb24(side: int) -> None:
    """At scale 1 the tensor is just the colour conversion: compare with PyAV's rgb24.

    PyAV's default swscale yuv420p->rgb24 path samples chroma nearest like us but truncates
    (biased ~1 low, max 3/255 off our exact BT.601 limited-range maths).
    """
    frame = yuv_frame(synthetic_rgb(side, side, noise=30, seed=side))
    out = np.empty((3, side, side), np.float32)
    letterbox_yuv420(*planes(frame), out)
    diff = np.abs(out.transpose(1, 2, 0) * 255 - frame.to_ndarray(format="rgb24"))
    assert diff.max() <= 3.0 + 1e-3
    assert diff.mean() <= 1.5


def test_colour_matches_pyav_accurate_rounding() -> None:
    """With ACCURATE_RND swscale agrees with our coefficients to 1/255 (flat colours, so its
    different chroma interpolation in that mode plays no part)."""
    rng = np.random.default_rng(7)
    flags = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    out = np.empty((3, 16, 16), np.float32)
    for _ in range(50):
        frame = av.VideoFrame(16, 16, "yuv420p")
        for plane, value in zip(frame.planes, rng.integers(16, 241, 3), strict=True):
            plane.update(np.full(plane.buffer_size, value, np.uint8).tobytes())
        letterbox_yuv420(*planes(frame), out)
        pyav = frame.reformat(format="rgb24", interpolation=flags).to_ndarray()
        assert np.abs(out.transpose(1, 2, 0) * 255 - pyav).max() <= 1.0 + 1e-3


def test_letterbox_geometry_and_scale() -> None:
    y, u, v = planes(yuv_frame(synthetic_rgb(640, 480) | 64))  # no black inside the frame
    out = np.empty((3, 320, 320), np.float32)
    assert letterbox_yuv420(y, u, v, out) == pytest.approx(0.5)
    assert out[:, 240:, :].max() == 0.0 and out[:, :240, :].min() > 0.0
    lb = Letterboxer(640, 480, 320, center=True)
    lb.run(y, u, v, out)
    assert (lb.offset_x, lb.offset_y) == (0, 80)
    assert out[:, :40].max() == 0.0 and out[:, 280:].max() == 0.0
    assert out[:, 40:280].min() > 0.0
    assert lb.to_frame(0.0, 40.0) == pytest.approx((0.0, 0.0))
    assert lb.to_frame(320.0, 280.0) == pytest.approx((640.0, 480.0))
    portrait = Letterboxer(480, 640, 320)
    assert portrait.to_frame(160.0, 320.0) == pytest.approx((320.0, 640.0))


def test_common_webcam_sizes_use_the_vectorised_path() -> None:
    for w, h in [(640, 480), (1280, 720), (480, 640), (640, 360), (1920, 1080)]:
        assert Letterboxer(w, h, 320).vectorized
    assert Letterboxer(640, 480, 320, center=True).vectorized


def test_shared_letterboxer_across_threads() -> None:
    frames = [planes(yuv_frame(synthetic_rgb(640, 480, noise=5, seed=s))) for s in range(4)]
    lb = Letterboxer(640, 480, 320)
    expected = []
    for y, u, v in frames:
        out = np.empty((3, 320, 320), np.float32)
        lb.run(y, u, v, out)
        expected.append(out)

    def work(i: int) -> np.ndarray:
        out = np.empty((3, 320, 320), np.float32)
        for _ in range(20):
            lb.run(*frames[i % 4], out)
        return out

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    for i, got in enumerate(results):
        assert np.array_equal(got, expected[i % 4])


def _planes_640() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros((480, 640), np.uint8),
        np.zeros((240, 320), np.uint8),
        np.zeros((240, 320), np.uint8),
    )


@pytest.mark.parametrize(
    "mutate, exc",
    [
        (lambda p, o: ((p[0].astype(np.float32), p[1], p[2]), o), TypeError),
        (lambda p, o: ((p[0].astype(np.uint16), p[1], p[2]), o), TypeError),
        (lambda p, o: (([[0]], p[1], p[2]), o), TypeError),
        (lambda p, o: ((p[0], p[1][:-1], p[2]), o), ValueError),
        (lambda p, o: ((p[0], p[1], p[2][:, :-1]), o), ValueError),
        (lambda p, o: ((p[0], p[1], p[2][None]), o), ValueError),
        (lambda p, o: (p, o.astype(np.float64)), TypeError),
        (lambda p, o: (p, np.zeros((3, 320, 321), np.float32)), ValueError),
        (lambda p, o: (p, np.zeros((2, 3, 320, 320), np.float32)), ValueError),
        (lambda p, o: (p, np.zeros((320, 320, 3), np.float32)), ValueError),
        (lambda p, o: (p, np.zeros((3, 320, 640), np.float32)[:, :, ::2]), ValueError),
        (lambda p, o: (p, "out"), TypeError),
    ],
)
def test_bad_input_raises(mutate, exc) -> None:  # type: ignore[no-untyped-def]
    out = np.zeros((3, 320, 320), np.float32)
    (y, u, v), o = mutate(_planes_640(), out)
    with pytest.raises(exc):
        Letterboxer(640, 480, 320).run(y, u, v, o)


def test_bad_input_raises_module_function() -> None:
    y, u, v = _planes_640()
    with pytest.raises(ValueError):
        letterbox_yuv420(y, u[:, :100], v, np.zeros((3, 320, 320), np.float32))
    with pytest.raises(ValueError):
        letterbox_yuv420(y, u, v, np.zeros((3, 320, 320), np.float32).T)
    readonly = np.zeros((3, 320, 320), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError):
        letterbox_yuv420(y, u, v, readonly)
    with pytest.raises(ValueError):
        Letterboxer(0, 480, 320)
    with pytest.raises(ValueError):
        Letterboxer(640, 480, 0)


def test_read_only_planes_are_accepted() -> None:
    y, u, v = (np.array(p) for p in planes(yuv_frame(synthetic_rgb(64, 48, noise=10))))
    for p in (y, u, v):
        p.flags.writeable = False
    fast, ref = _both(y, u, v)
    assert np.abs(fast - ref).max() <= EXACT


def test_column_strided_planes_are_accepted() -> None:
    """A plane with a column stride (not just row padding) is copied, not misread."""
    y, u, v = planes(yuv_frame(synthetic_rgb(64, 48, noise=10)))
    wide = np.zeros((48, 128), np.uint8)
    wide[:, ::2] = y
    fast, ref = _both(wide[:, ::2], u, v)
    assert np.abs(fast - ref).max() <= EXACT
