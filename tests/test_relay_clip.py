"""The benchmark's pre-encoded media decode back to what was asked, and the relay parses them.

Every check goes through an independent reader (PyAV's decoders, aiortc's depayloaders, the
relay's own keyframe parser), so a clip of the wrong size, order, codec or keyframe pattern
fails here rather than in a benchmark that silently measures the wrong thing.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import vp8_depayload

from bench.relay_clip import (
    AUDIO_PACKET_S,
    AUDIO_RTP_CLOCK,
    AUDIO_TICKS_PER_PACKET,
    FPS,
    Clip,
    Codec,
    encode_audio_clip,
    encode_clip,
    luma,
    picture,
    read_barcode,
    vp8_picture_id,
)
from relay.codecs import is_keyframe_start

SECONDS = 0.5
KEYFRAME_S = 0.2
"""Keyframes at frames 0, 6 and 12 of 15: both kinds of frame, in a clip that encodes fast."""
Case = tuple[Codec, int, int, int]
"""Codec, width, height, target bitrate."""
CASES: list[Case] = [
    ("vp8", 640, 480, 1_000_000),
    ("vp8", 1280, 720, 1_500_000),
    ("h264", 640, 480, 1_000_000),
    ("h264", 1280, 720, 2_500_000),
]
_DEPAYLOAD = {"vp8": vp8_depayload, "h264": h264_depayload}


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[1]}x{c[2]}")
def case(request: pytest.FixtureRequest) -> tuple[Clip, Case]:
    """A short clip of each codec and size, encoded once for all tests, with its target."""
    codec, width, height, bitrate = request.param
    clip = encode_clip(SECONDS, bitrate, KEYFRAME_S, codec=codec, width=width, height=height)
    return clip, request.param


def test_clip_records_what_was_asked(case: tuple[Clip, Case]) -> None:
    clip, (codec, width, height, _) = case
    assert (clip.codec, clip.width, clip.height) == (codec, width, height)
    assert len(clip.frames) == len(clip.payloads) == round(SECONDS * FPS)
    assert clip.keyframe_interval == round(KEYFRAME_S * FPS)


def test_payloads_decode_to_the_frames_in_order(case: tuple[Clip, Case]) -> None:
    """Depayloaded RTP gives back ``frames``, which decode at the clip's size, barcode = index."""
    clip, _ = case
    decoder = av.CodecContext.create(clip.codec, "r")
    decoded: list[av.VideoFrame] = []
    for i, payloads in enumerate(clip.payloads):
        data = b"".join(_DEPAYLOAD[clip.codec](p) for p in payloads)
        assert data == clip.frames[i]
        decoded += decoder.decode(av.Packet(data))
    decoded += decoder.decode(None)
    assert [(f.width, f.height) for f in decoded] == [(clip.width, clip.height)] * len(clip.frames)
    assert [read_barcode(luma(f)) for f in decoded] == list(range(len(clip.frames)))


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_vp8_picture_id_is_the_clip_index(size: tuple[int, int]) -> None:
    """(H.264 payloads have no picture id: VP8 only.)"""
    clip = encode_clip(0.2, codec="vp8", width=size[0], height=size[1], keyframe_s=0.1)
    ids = [[vp8_picture_id(p, 0) for p in payloads] for payloads in clip.payloads]
    assert ids == [[i] * len(payloads) for i, payloads in enumerate(clip.payloads)]


def test_relay_sees_keyframes_exactly_where_forced(case: tuple[Clip, Case]) -> None:
    """First packet of each forced keyframe starts a keyframe; no delta frame packet does."""
    clip, _ = case
    for i, payloads in enumerate(clip.payloads):
        if i % clip.keyframe_interval == 0:
            assert is_keyframe_start(clip.codec, payloads[0]), f"frame {i}"
        else:
            assert not any(is_keyframe_start(clip.codec, p) for p in payloads), f"frame {i}"


def test_bitrate_is_near_the_target(case: tuple[Clip, Case]) -> None:
    """Loose bounds: three keyframes in half a second push a rate-controlled encoder over."""
    clip, (*_, target) = case
    assert 0.8 * target < clip.bitrate < 2.2 * target
    assert clip.packets_per_second >= FPS


@pytest.mark.parametrize(
    ("codec", "low", "high"), [("vp8", 300_000, 1_500_000), ("h264", 600_000, 3_000_000)]
)
def test_bitrate_follows_the_target(codec: Codec, low: int, high: int) -> None:
    """The sane-factor bound above alone would pass a clip encoded at aiortc's default rate."""
    rates = [encode_clip(SECONDS, b, SECONDS, codec=codec).bitrate for b in (low, high)]
    assert rates[1] > 2 * rates[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"codec": "vp8", "bitrate": 2_500_000}, "bitrate"),
        ({"codec": "h264", "bitrate": 400_000}, "bitrate"),
        ({"width": 641}, "even"),
        ({"width": 200}, "barcode"),
        ({"draw": lambda i: picture(i, 320, 240)}, "drawn"),
        ({"seconds": 10.0}, "out of range"),
    ],
)
def test_requests_it_cannot_honour_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_clip(**{"seconds": 0.1, **kwargs})  # type: ignore[arg-type]


def test_a_callers_draw_is_what_gets_encoded() -> None:
    """As the strict benchmark does: its own pictures, the clip's size declared alongside."""
    clip = encode_clip(0.1, draw=lambda i: picture(i + 100, 320, 240), width=320, height=240)
    decoder = av.CodecContext.create("vp8", "r")
    decoded = [f for data in clip.frames for f in decoder.decode(av.Packet(data))]
    assert [(f.width, f.height, read_barcode(luma(f))) for f in decoded] == [
        (320, 240, 100 + i) for i in range(len(clip.frames))
    ]


@pytest.mark.parametrize("frequency", [440.0, 1000.0])
def test_audio_is_a_tone_in_20ms_opus_payloads(frequency: float) -> None:
    assert AUDIO_TICKS_PER_PACKET == 960 and AUDIO_RTP_CLOCK == 48_000
    clip = encode_audio_clip(0.5, frequency)
    assert len(clip.payloads) == round(0.5 / AUDIO_PACKET_S)
    decoder = av.CodecContext.create("libopus", "r")
    samples: list[np.ndarray] = []
    for payload in clip.payloads:
        (frame,) = decoder.decode(av.Packet(payload))
        assert (frame.sample_rate, frame.samples) == (AUDIO_RTP_CLOCK, AUDIO_TICKS_PER_PACKET)
        samples.append(frame.to_ndarray()[0, ::2])  # packed s16 stereo: the left channel
    signal = np.concatenate(samples[2:]).astype(np.float64)  # past the codec's start-up
    assert np.abs(signal).max() > 1000  # not silence
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    peak = np.fft.rfftfreq(len(signal), 1 / AUDIO_RTP_CLOCK)[spectrum.argmax()]
    assert abs(peak - frequency) < 10
