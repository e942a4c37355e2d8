"""Video tracks for aiortc test peers: one skeleton, each test supplies the picture."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc import VideoStreamTrack


class PictureTrack(VideoStreamTrack):
    """Sends whatever `picture()` returns, at aiortc's pace (30 fps, 90 kHz clock)."""

    def picture(self) -> np.ndarray:
        raise NotImplementedError

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.picture(), format="rgb24")
        frame.pts = pts
        frame.time_base = time_base if time_base else fractions.Fraction(1, 90000)
        return frame


class SolidTrack(PictureTrack):
    """Frames of one grey level, so the far end can tell whose video it decoded."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def picture(self) -> np.ndarray:
        return np.full((240, 320, 3), self.level, dtype=np.uint8)
