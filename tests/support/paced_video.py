"""Synthetic video arrivals for the relay's uplink estimate: a sender behind a bottleneck."""

from __future__ import annotations

from collections.abc import Iterator

from relay.rtp import ABS_SEND_TIME_UNITS


def paced_video(
    send_bps: int, link_bps: int, seconds: float, packet: int = 1200, fps: int = 30
) -> Iterator[tuple[int, int, int]]:
    """``(arrival ms, abs-send-time, payload bytes)`` of a sender at ``send_bps`` whose packets
    queue behind a ``link_bps`` bottleneck (a frame's packets leave together)."""
    per_frame = max(1, send_bps // fps // 8 // packet)
    free_at = 0.0
    for frame in range(int(seconds * fps)):
        sent = frame / fps
        for _ in range(per_frame):
            free_at = max(free_at, sent) + packet * 8 / link_bps
            yield int(free_at * 1000), round(sent * ABS_SEND_TIME_UNITS) & 0xFFFFFF, packet
