"""When a frame the moderation gate released goes out, sans-I/O.

Why: a verdict often covers several frames at once (the held frame and those queued behind it,
up to ``GateConfig.max_hold_s`` of video). Sent in one burst they reach the receiver's downlink
as a queue: on a link near its capacity that is real queueing delay and loss, and its delay-based
estimator rightly calls it congestion. Paced, frames go out no faster than ``speedup`` times the
rate they came in: a backlog drains in a fraction of its span, and the downlink never sees more
than ``speedup`` times the sender's own bitrate.
"""

from __future__ import annotations

from typing import Final

SPEEDUP: Final = 2.0
"""A backlog of frames goes out at twice the pace it came in (half a second of held video takes
a quarter second more for its last frame)."""


class ReleasePacer:
    """Send times for one stream's released frames, in release order."""

    __slots__ = ("_last_arrival", "_last_due", "speedup")

    def __init__(self, speedup: float = SPEEDUP) -> None:
        self.speedup = speedup
        self._last_arrival: float | None = None
        self._last_due = 0.0

    def due(self, arrival: float, now: float) -> float:
        """When to send a frame that arrived at ``arrival`` and was released at ``now``: at
        once, unless the frame before it went out (or is due) less than its own arrival gap
        divided by ``speedup`` earlier."""
        due = now
        if self._last_arrival is not None and arrival > self._last_arrival:
            due = max(now, self._last_due + (arrival - self._last_arrival) / self.speedup)
        self._last_arrival, self._last_due = arrival, due
        return due
