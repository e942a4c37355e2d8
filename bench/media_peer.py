"""One simulated client's media: pre-encoded RTP out, frames counted in, nothing decoded.

Why this shape: the load generator must cost far less CPU than what it measures, so a client
never encodes or decodes. aiortc does ICE, DTLS and SRTP; :class:`relay.aiortc_adapter.AiortcLeg`
hands its media path over, and the client writes the clip's RTP itself (video at 30 fps and,
optionally, Opus audio every 20 ms) and reads what arrives as plain RTP.

Latency comes from the media itself: every video packet carries the standard
``abs-send-time`` header extension (the time its frame was sent, 6.18 fixed-point seconds,
wrapping every 64 s). A relay forwards that extension unchanged, so the receiver subtracts it
from the arrival time of the frame's last packet, whoever sent it and in whichever
load-generator process (both read the same CLOCK_MONOTONIC). A frame counts as delivered when
it arrived whole (no gap in sequence numbers up to its marker).

A keyframe request (PLI or FIR) from the far end is answered the way a browser does, with a
keyframe: the sender jumps to the clip's nearest keyframe.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcconfiguration import RTCConfiguration, RTCIceServer
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from bench.ice_tcp_client import ActiveIceTcp, nominated_transport
from bench.relay_clip import (
    AUDIO_PACKET_S,
    AUDIO_TICKS_PER_PACKET,
    FPS,
    TICKS_PER_FRAME,
    AudioClip,
    Clip,
    vp8_picture_id,
)
from relay import rtp
from relay.aiortc_adapter import AiortcLeg, ParkedTrack

ABS_SEND_TIME_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
ABS_SEND_TIME_WRAP_S: Final = 64.0
_ABS_SEND_TIME_UNITS: Final = 1 << 18
"""abs-send-time ticks per second (6.18 fixed point)."""
_HEADER: Final = struct.Struct("!BBHII")
_HEADER_WITH_SEND_TIME: Final = struct.Struct("!BBHIIHHB3s")
"""RTP header + one-byte-profile extension block (0xBEDE, 1 word) with one 3-byte element."""
RTCP_PSFB: Final = 206
PLI_FMT: Final = 1
FIR_FMT: Final = 4


def abs_send_time(t: float) -> bytes:
    """The 3-byte abs-send-time value of monotonic time ``t`` (seconds)."""
    ticks = round(t * _ABS_SEND_TIME_UNITS) & 0xFFFFFF
    return ticks.to_bytes(3, "big")


def latency_from_abs_send_time(value: int, arrival: float) -> float:
    """Seconds from the send time carried in ``value`` (24-bit abs-send-time) to ``arrival``.

    Both are the same clock modulo 64 s; a latency is always far below that, so the
    difference taken modulo 64 s is the latency even across a wrap.
    """
    sent = value / _ABS_SEND_TIME_UNITS
    return (arrival - sent) % ABS_SEND_TIME_WRAP_S


def extension_value(data: bytes, ext_id: int) -> bytes | None:
    """The value of header extension ``ext_id`` in an RTP packet, if present (None also for
    a malformed extension block: that frame just has no latency sample).

    Called once per received frame (its last packet), not per packet.
    """
    if not data[0] & 0x10:
        return None
    try:
        elements = rtp.extensions(data)
    except ValueError:
        return None
    return next((value for xid, value in elements if xid == ext_id), None)


def nearest_keyframe(index: int, interval: int, frames: int) -> int:
    """The clip's keyframe closest to ``index`` (ties go forward), wrapping at the clip's end."""
    return (index + interval // 2) // interval * interval % frames


def requests_keyframe(rtcp_data: bytes) -> bool:
    """True if a compound RTCP packet holds a PLI or a FIR."""
    pos = 0
    while pos + 4 <= len(rtcp_data):
        fmt, pt = rtcp_data[pos] & 0x1F, rtcp_data[pos + 1]
        if pt == RTCP_PSFB and fmt in (PLI_FMT, FIR_FMT):
            return True
        pos += 4 * (int.from_bytes(rtcp_data[pos + 2 : pos + 4], "big") + 1)
    return False


@dataclass
class FrameTracker:
    """Completed frames of one received RTP stream, from sequence numbers alone.

    A frame counts as delivered when every packet from the previous frame's marker to its
    own marker arrived (no gap in the sequence numbers). The first frame seen is not counted:
    its start may have been missed.
    """

    frames: int = 0
    incomplete: int = 0
    _expected: int | None = None
    _intact: bool = False
    _started: bool = False

    def on_packet(self, seq: int, marker: bool) -> bool:
        """Account one packet; True if it completed a frame."""
        if self._expected is not None and seq != self._expected:
            self._intact = False
        self._expected = (seq + 1) & 0xFFFF
        if not marker:
            return False
        complete = self._started and self._intact
        self._started = self._intact = True
        if complete:
            self.frames += 1
        else:
            self.incomplete += 1
        return complete


@dataclass
class StreamWindow:
    """What one client received and sent since the last report."""

    frames: int = 0
    packets: int = 0
    audio_packets: int = 0
    sent: int = 0
    audio_sent: int = 0
    latencies: list[float] = field(default_factory=list)
    unsafe_frames: int = 0
    """Frames whose clip index the caller marked unsafe (strict route: leaks)."""
    replayed_frames: int = 0

    TOTALS: ClassVar[tuple[str, ...]] = (
        "packets",
        "sent",
        "audio_packets",
        "audio_sent",
        "unsafe_frames",
        "replayed_frames",
    )
    """The counts a report sums over a group of streams (``frames`` stays per stream)."""

    def merge(self, more: StreamWindow) -> None:
        """Add ``more``'s counts (a user's window spans the calls it had)."""
        self.frames += more.frames
        for name in self.TOTALS:
            setattr(self, name, getattr(self, name) + getattr(more, name))
        self.latencies.extend(more.latencies)


@dataclass
class _Sender:
    pt: int
    ssrc: int
    seq: int
    ts0: int


def h264_only() -> list[RTCRtpCodecCapability]:
    """aiortc's H.264 codec capabilities (both packetization modes), for codec preferences."""
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]


class ReplayPeer:
    """One client connection: replays the clip, counts what the far end's media delivers."""

    def __init__(
        self,
        clip: Clip,
        audio: AudioClip | None,
        ice_servers: list[RTCIceServer] | None = None,
        unsafe: frozenset[int] = frozenset(),
        ice_tcp: bool = False,
    ) -> None:
        """``ice_tcp``: reach the relay over ICE-TCP only, as a browser whose UDP is blocked
        (an offerer only: :class:`bench.ice_tcp_client.ActiveIceTcp`)."""
        self.clip = clip
        self.audio = audio
        self.unsafe = unsafe
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers or []))
        self.ice_tcp = ActiveIceTcp() if ice_tcp else None
        video = self.pc.addTransceiver(ParkedTrack("video"), direction="sendrecv")
        if clip.codec == "h264":
            video.setCodecPreferences(h264_only())
        if audio is not None:
            self.pc.addTransceiver(ParkedTrack("audio"), direction="sendrecv")
        self.leg: AiortcLeg | None = None
        self.window = StreamWindow()
        self.tracker = FrameTracker()
        self.send_lag: list[float] = []
        self.first_frame_at: float | None = None
        self.in_call = False
        """Packets are counted as sent only in a call: a parked connection's go nowhere."""
        self.live_since = 0.0
        """Frames sent before this (the call's start) are a relay's cached keyframe replayed
        to a new partner: they arrive at once but were sent long ago, so their age is not a
        latency (counted apart, as ``replayed_frames``)."""
        self._send_time_id = 0
        self._keyframe_wanted = False
        self._timers: list[asyncio.TimerHandle] = []

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = str(self.pc.localDescription.sdp)
        return sdp if self.ice_tcp is None else self.ice_tcp.offer(sdp)

    async def accept(self, answer_sdp: str) -> None:
        if self.ice_tcp is not None:
            answer_sdp = await self.ice_tcp.answer(self.pc, answer_sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        self._hook()

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        AiortcLeg.prepare_transceivers(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._hook()
        return str(self.pc.localDescription.sdp)

    def _hook(self) -> None:
        self.leg = AiortcLeg(self.pc, self._on_rtp, self._on_rtcp)
        video = self.leg.media["video"]
        self._send_time_id = next(
            (e.id for e in video.header_extensions if e.uri == ABS_SEND_TIME_URI), 0
        )

    def connected(self) -> bool:
        """True once DTLS is up (the leg installs its fast receive path then)."""
        return self.leg is not None and self.leg.fast_path_active

    def transport(self) -> str | None:
        """ "udp" or "tcp": what the nominated ICE pair runs on; None before nomination."""
        return nominated_transport(self.pc) if self.leg is not None else None

    def receive_errors(self) -> int:
        """Packets that failed SRTP unprotect here (a relay bug or a broken session)."""
        return self.leg.srtp_errors if self.leg is not None else 0

    def _on_rtp(self, leg: AiortcLeg, data: bytes, now: float) -> None:
        if leg.kind_by_pt.get(data[1] & 0x7F) == "audio":
            self.window.audio_packets += 1
            return
        self.window.packets += 1
        if not self.tracker.on_packet(rtp.sequence_number(data), data[1] & 0x80 != 0):
            return
        self.window.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = now
        if self._send_time_id:
            value = extension_value(data, self._send_time_id)
            if value is not None:
                latency = latency_from_abs_send_time(int.from_bytes(value, "big"), now)
                if now - latency >= self.live_since:
                    self.window.latencies.append(latency)
                else:
                    self.window.replayed_frames += 1
        if self.unsafe and self.clip.codec == "vp8":
            offset = rtp.check_rtp(data)
            if isinstance(offset, int):
                index = vp8_picture_id(data, offset)
                if index is not None and index in self.unsafe:
                    self.window.unsafe_frames += 1

    def _on_rtcp(self, leg: AiortcLeg, data: bytes, now: float) -> None:
        if requests_keyframe(data):
            self._keyframe_wanted = True

    def start(self, rng: random.Random) -> None:
        """Send from a random phase and clip position, as independent clients would.

        Why the random position: keyframes (the clip's biggest bursts) of clients that joined
        together would otherwise hit the relay in the same frame interval, every time.
        """
        assert self.leg is not None
        self._start_video(rng)
        if self.audio is not None and "audio" in self.leg.media:
            self._start_audio(rng)

    def _sender(self, kind: str, mime: str, rng: random.Random) -> _Sender:
        assert self.leg is not None
        media = self.leg.media[kind]
        pt = next(c.payloadType for c in media.codecs if c.mimeType.lower() == mime)
        assert pt is not None
        return _Sender(pt, media.out_ssrc, rng.randrange(1 << 16), rng.randrange(1 << 32))

    def _start_video(self, rng: random.Random) -> None:
        loop = asyncio.get_running_loop()
        state = self._sender("video", f"video/{self.clip.codec}", rng)
        first = time.monotonic() + rng.random() / FPS
        frames = len(self.clip.payloads)
        position = rng.randrange(frames)

        def tick(frame: int) -> None:
            nonlocal position
            now = time.monotonic()
            self.send_lag.append(now - (first + frame / FPS))
            index = position % frames
            if self._keyframe_wanted:
                self._keyframe_wanted = False
                jump = nearest_keyframe(index, self.clip.keyframe_interval, frames)
                position += (jump - index) % frames
                index = jump
            self._send_frame(index, (state.ts0 + frame * TICKS_PER_FRAME) & 0xFFFFFFFF, state, now)
            position += 1
            delay = first + (frame + 1) / FPS - time.monotonic()
            self._timers[0] = loop.call_at(loop.time() + max(0.0, delay), tick, frame + 1)

        self._timers.append(loop.call_at(loop.time() + (first - time.monotonic()), tick, 0))

    def _send_frame(self, index: int, ts: int, state: _Sender, now: float) -> None:
        assert self.leg is not None
        payloads = self.clip.payloads[index]
        send = self.leg.send
        last = len(payloads) - 1
        if self.in_call:
            self.window.sent += len(payloads)
        if self._send_time_id:
            stamp = abs_send_time(now)
            ext_byte = self._send_time_id << 4 | 2
            for i, payload in enumerate(payloads):
                header = _HEADER_WITH_SEND_TIME.pack(
                    0x90,
                    state.pt | (0x80 if i == last else 0),
                    state.seq & 0xFFFF,
                    ts,
                    state.ssrc,
                    0xBEDE,
                    1,
                    ext_byte,
                    stamp,
                )
                send(header + payload)
                state.seq += 1
            return
        for i, payload in enumerate(payloads):
            marker_pt = state.pt | (0x80 if i == last else 0)
            send(_HEADER.pack(0x80, marker_pt, state.seq & 0xFFFF, ts, state.ssrc) + payload)
            state.seq += 1

    def _start_audio(self, rng: random.Random) -> None:
        assert self.audio is not None
        loop = asyncio.get_running_loop()
        state = self._sender("audio", "audio/opus", rng)
        payloads = self.audio.payloads
        first = time.monotonic() + rng.random() * AUDIO_PACKET_S
        offset = rng.randrange(len(payloads))

        def tick(n: int) -> None:
            assert self.leg is not None
            payload = payloads[(offset + n) % len(payloads)]
            ts = (state.ts0 + n * AUDIO_TICKS_PER_PACKET) & 0xFFFFFFFF
            self.leg.send(
                _HEADER.pack(0x80, state.pt, state.seq & 0xFFFF, ts, state.ssrc) + payload
            )
            state.seq += 1
            self.window.audio_sent += self.in_call
            delay = first + (n + 1) * AUDIO_PACKET_S - time.monotonic()
            self._timers[1] = loop.call_at(loop.time() + max(0.0, delay), tick, n + 1)

        self._timers.append(loop.call_at(loop.time() + (first - time.monotonic()), tick, 0))

    def drain(self) -> StreamWindow:
        """What arrived and was sent since the last call; starts a new window."""
        window, self.window = self.window, StreamWindow()
        return window

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await self.pc.close()


def group_report(streams: list[tuple[StreamWindow, float, list[float]]]) -> dict[str, Any]:
    """Per receiving stream frames and expected-media seconds, and the group's totals."""
    totals = {name: sum(getattr(w, name) for w, _, _ in streams) for name in StreamWindow.TOTALS}
    return {
        "frames": [w.frames for w, _, _ in streams],
        "media_s": [s for _, s, _ in streams],
        "latency_s": [x for w, _, _ in streams for x in w.latencies],
        **totals,
    }
