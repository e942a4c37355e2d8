"""A chat client made of real aiortc parts, speaking the signaling protocol like the web page.

Each client sends video whose frames carry the client's own grey level and a frame counter
(a row of black/white blocks), and an audio tone of its own frequency, so the far end can tell
exactly whose media it received and that the frames are the ones sent.
"""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from tests.support.tracks import PictureTrack
from tests.support.wsclient import Client

WIDTH, HEIGHT = 320, 240
BLOCK = 16
BITS = 12
SAMPLE_RATE = 48_000


def stamp_frame(level: int, counter: int) -> np.ndarray:
    """A grey picture with `counter` written as BITS black/white blocks along the top."""
    image = np.full((HEIGHT, WIDTH, 3), level, dtype=np.uint8)
    for bit in range(BITS):
        value = 255 if (counter >> bit) & 1 else 0
        image[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = value
    return image


def read_frame(image: np.ndarray) -> tuple[int, int]:
    """(grey level, counter) of a received picture; survives VP8's losses at these sizes."""
    level = int(np.median(image[BLOCK * 2 :, :, 1]))
    counter = 0
    for bit in range(BITS):
        block = image[2 : BLOCK - 2, bit * BLOCK + 2 : (bit + 1) * BLOCK - 2, 1]
        if block.mean() > 127:
            counter |= 1 << bit
    return level, counter


class StampedVideo(PictureTrack):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.sent = 0

    def picture(self) -> np.ndarray:
        self.sent += 1
        return stamp_frame(self.level, self.sent - 1)


class Tone(AudioStreamTrack):
    """A sine tone at `frequency` Hz, 20 ms per frame."""

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.frequency = frequency
        self._samples = 0

    async def recv(self) -> av.AudioFrame:
        frame: av.AudioFrame = await super().recv()  # silence with the right timing
        count = frame.samples
        t = (np.arange(count) + self._samples) / SAMPLE_RATE
        self._samples += count
        wave = (np.sin(2 * np.pi * self.frequency * t) * 12_000).astype(np.int16)
        tone = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        tone.sample_rate, tone.pts = SAMPLE_RATE, frame.pts
        tone.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return tone


def dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(samples))


class ChatPeer:
    """Joins, pairs, connects media on whatever route signaling says, records what arrives."""

    def __init__(
        self,
        signaling: Client,
        level: int,
        tone_hz: float,
        video: Callable[[], MediaStreamTrack] | None = None,
        recognise: Callable[[np.ndarray], Any] = read_frame,
    ) -> None:
        self.signaling = signaling
        self.level = level
        self.tone_hz = tone_hz
        self.make_video = video or (lambda: StampedVideo(level))
        self.recognise = recognise
        self.pc: RTCPeerConnection | None = None
        self.parked: RTCPeerConnection | None = None
        self.pair: str | None = None
        self.route: str | None = None
        self.frames: list[Any] = []
        """What `recognise` made of each decoded frame (grey level and counter by default)."""
        self.audio: list[np.ndarray] = []
        self.events: list[dict[str, Any]] = []
        self._readers: list[asyncio.Task[None]] = []
        self.read_errors: list[Exception] = []
        """What failed while reading the partner's media (a recogniser's bug, a frame it could
        not read): :meth:`wait_for_frames` reports it rather than timing out on silence."""
        self._loop: asyncio.Task[None] | None = None

    @classmethod
    async def join(
        cls,
        url: str,
        level: int,
        tone_hz: float,
        video: Callable[[], MediaStreamTrack] | None = None,
        recognise: Callable[[np.ndarray], Any] = read_frame,
    ) -> ChatPeer:
        peer = cls(await Client.connect(url), level, tone_hz, video, recognise)
        await peer.signaling.send(type="join")
        peer._loop = asyncio.create_task(peer._run())
        return peer

    async def _run(self) -> None:
        while True:
            message = await self.signaling.recv(timeout=3600)
            self.events.append(message)
            kind = message["type"]
            if kind == "paired" and message.get("reuse") and self.parked is not None:
                self.frames, self.audio = [], []
                self.pc, self.parked = self.parked, None
                self.pair, self.route = message["pair"], message["route"]
            elif kind == "paired" or kind == "reroute":
                await self._start_call(
                    message["pair"],
                    message["route"],
                    message["role"] if kind == "paired" else "offerer",
                )
            elif kind == "offer" and message["pair"] == self.pair and self.pc is not None:
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.signaling.send(
                    type="answer", pair=self.pair, sdp=self.pc.localDescription.sdp
                )
            elif kind == "answer" and message["pair"] == self.pair and self.pc is not None:
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            elif kind == "partner_left":
                await self._park_or_close()
            elif kind == "call_ended":
                await self._close_call()

    async def next(self) -> None:
        """The Next button: like the web client, keep a relay connection for the next call."""
        await self._park_or_close()
        await self.signaling.send(type="next")

    async def _park_or_close(self) -> None:
        if self.route in ("relay", "strict") and self.pc is not None:
            self.parked, self.pc = self.pc, None
        else:
            await self._close_call()

    async def _start_call(self, pair: str, route: str, role: str) -> None:
        self.frames, self.audio = [], []  # what arrives is per call: counters restart
        await self._close_call()
        if self.parked is not None:
            await self.parked.close()
            self.parked = None
        self.pair, self.route = pair, route
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        pc.addTrack(self.make_video())
        pc.addTrack(Tone(self.tone_hz))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._readers.append(asyncio.create_task(self._read(track)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc is self.pc and pc.connectionState == "connected":
                await self.signaling.send(
                    type="call_state", pair=pair, state="connected", route=route
                )

        if role == "offerer":
            await pc.setLocalDescription(await pc.createOffer())
            await self.signaling.send(type="offer", pair=pair, sdp=pc.localDescription.sdp)

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.frames.append(self.recognise(frame.to_ndarray(format="rgb24")))
                else:
                    channels = len(frame.layout.channels)
                    self.audio.append(frame.to_ndarray().reshape(-1, channels)[:, 0])
        except MediaStreamError:  # the call closed
            return
        except Exception as exc:
            self.read_errors.append(exc)

    async def _close_call(self) -> None:
        for reader in self._readers:
            reader.cancel()
        self._readers = []
        if self.pc is not None:
            await self.pc.close()
        self.pc = None

    async def wait_for_frames(self, count: int, timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.frames) < count:
            if self.read_errors:
                error = self.read_errors[0]
                raise AssertionError(f"reading the partner's media failed: {error!r}") from error
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.frames)} frames arrived, wanted {count}")
            await asyncio.sleep(0.1)

    def heard_frequency(self) -> float:
        samples = np.concatenate(self.audio[-50:]) if self.audio else np.zeros(1)
        return dominant_frequency(samples[: SAMPLE_RATE // 2])

    async def close(self) -> None:
        await self._close_call()
        if self.parked is not None:
            await self.parked.close()
        if self._loop is not None:
            self._loop.cancel()
        await self.signaling.close()


async def see_each_other(a: ChatPeer, b: ChatPeer, frames: int, route: str) -> None:
    """Both peers decode `frames` frames over `route`, and every one shows the other's picture
    (its grey level, within what compression moves it)."""
    await a.wait_for_frames(frames)
    await b.wait_for_frames(frames)
    assert a.route == b.route == route
    for peer, other in ((a, b), (b, a)):
        assert all(abs(level - other.level) <= 6 for level, _ in peer.frames)
