"""What every simulated client of a relay-route load sends: the clip, encoded once, and its
audio; for the strict route also which frames must never arrive and the service's policy."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bench.relay_clip import FPS, AudioClip, Clip, encode_audio_clip, encode_clip
from bench.relay_options import DEFAULT_BITRATE, SIZES
from bench.results import ClipInfo


@dataclass
class Media:
    """What every simulated client sends."""

    clip: Clip
    audio: AudioClip | None
    unsafe: frozenset[int] = frozenset()
    """Clip indexes a receiver must never get (strict route)."""
    service_config: str = ""
    """TOML for the service started here, e.g. a policy that makes those frames unsafe."""

    def describe(self) -> ClipInfo:
        clip = self.clip
        return ClipInfo(
            codec=clip.codec,
            width=clip.width,
            height=clip.height,
            fps=FPS,
            frames=len(clip.payloads),
            bitrate_bps=clip.bitrate,
            packets_per_second=clip.packets_per_second,
            keyframe_interval_frames=clip.keyframe_interval,
            audio=self.audio is not None,
        )


def make_media(args: argparse.Namespace) -> Media:
    """Encode the clip (and the audio) every simulated user replays: once, before any timing."""
    width, height = SIZES[args.size]
    bitrate = args.bitrate or DEFAULT_BITRATE[args.codec, args.size]
    clip = encode_clip(args.clip_seconds, bitrate, codec=args.codec, width=width, height=height)
    return Media(clip, None if args.no_audio else encode_audio_clip())
