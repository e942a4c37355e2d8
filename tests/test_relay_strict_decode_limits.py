"""The strict route's decode limits: picture sizes read from real encoders' keyframes, and the
per-stream decode budget on a fake clock."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from relay.strict.decode_limits import DecodeBudget, picture_size
from relay.strict.depacketize import START_CODE, Codec

FAST = {"libvpx": {"deadline": "realtime", "cpu-used": "16"}, "libx264": {"preset": "ultrafast"}}


def encoded(encoder: str, width: int, height: int, **options: str) -> list[bytes]:
    """Two frames (a keyframe, then a delta frame) from FFmpeg's encoder, as the relay's
    depacketizer hands them to the decoder (H.264: Annex B)."""
    ctx = av.CodecContext.create(encoder, "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.options = {**FAST[encoder], **options}
    packets = []
    for i in range(2):  # flat pictures: quick to encode even large
        rgb = np.full((height, width, 3), 40 * i, np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    return packets


@pytest.mark.parametrize(
    ("encoder", "codec", "options"),
    [
        ("libvpx", "vp8", {}),
        ("libx264", "h264", {"profile": "baseline"}),
        ("libx264", "h264", {"profile": "high"}),
        ("libx264", "h264", {"profile": "high", "x264-params": "cqm=jvt"}),  # scaling lists
    ],
)
@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (2560, 1440)])
def test_a_keyframe_announces_its_size_before_it_is_decoded(
    encoder: str, codec: Codec, options: dict[str, str], width: int, height: int
) -> None:
    key, delta = encoded(encoder, width, height, **options)[:2]
    announced = picture_size(codec, key)
    assert announced is not None
    # H.264 codes whole macroblocks; cropping (ignored) takes 720 back from 736
    assert announced[0] == width and height <= announced[1] < height + 16
    assert picture_size(codec, delta) is None  # a delta frame has no header that says


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_a_garbled_or_cut_header_says_nothing(codec: Codec) -> None:
    assert picture_size(codec, b"") is None
    assert picture_size(codec, b"\x00" * 5) is None
    key = encoded("libvpx" if codec == "vp8" else "libx264", 320, 240)[0]
    if codec == "h264":
        sps = next(n for n in key.split(START_CODE) if n and n[0] & 0x1F == 7)
        assert picture_size(codec, START_CODE + sps[:4]) is None  # ends inside the SPS
        assert picture_size(codec, START_CODE + sps[:1] + b"\x00" * 12) is None  # no code ends
    else:
        assert picture_size(codec, key[:3] + b"\x00\x00\x00" + key[6:]) is None  # no start code


def test_the_budget_lets_a_stream_spend_its_rate_and_saves_up_to_its_burst() -> None:
    budget = DecodeBudget(rate=0.25, burst=0.5, now=0.0)
    t = 0.0
    for _ in range(30):  # 30 fps at 5 ms a frame: 0.15 s/s, within 0.25
        assert budget.allows(t)
        budget.spend(0.005)
        t += 1 / 30
    budget.spend(2.0)  # one 2 s decode (an 8K keyframe on a slow machine) overdraws it
    assert not budget.allows(t)
    assert not budget.allows(t + 5.0)  # -1.5 + 5 s x 0.25 is still short of zero
    assert budget.allows(t + 6.1)
    assert budget.allows(t + 100.0)
    budget.spend(0.5)  # saved no more than the burst: one more 0.5 s empties it
    assert not budget.allows(t + 100.0)
