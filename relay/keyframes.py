"""Keyframe request throttling and the last-keyframe cache, both sans-I/O.

Why a throttle: every receiver of a stream (and every "Next" click) may send PLI/FIR, and
aiortc's sender drops them on its pass-through path, so the relay forwards them upstream
itself. A keyframe costs 5-10x a delta frame; forwarding every request would let one lossy
receiver (or a malicious client) inflate the sender's bitrate. One request per interval per
source stream is enough: the keyframe answers everyone who asked.

Why a cache: after "Next" the new partner's video can only start at a keyframe. Waiting for
the sender to answer a PLI costs an RTT plus an encode; replaying the packets of the last
keyframe shows a picture at once. The cached keyframe is followed by the live stream only
from its next keyframe on (deltas in between reference frames the receiver never got), so
the caller replays the cache as its own rewriter epoch, sends a PLI upstream, and drops
deltas for that receiver until the fresh keyframe arrives.
"""

from __future__ import annotations

from typing import Final

from relay import rtp

KEYFRAME_REQUEST_INTERVAL_S: Final = 0.5
"""At most one keyframe request upstream per stream in this long. Why 0.5 s: a keyframe costs
the sender 5-10 delta frames of its bitrate, and the strict gate asks after every drop; at 0.3 s
a stream could be made of 11 % keyframes at 30 fps, at 0.5 s at most 7 %. A keyframe that was
requested and lost is asked for again within the same bound."""


class KeyframeRequestThrottle:
    """At most one upstream keyframe request per ``interval`` seconds for one source stream."""

    __slots__ = ("_last", "forwarded", "interval", "suppressed")

    def __init__(self, interval: float = KEYFRAME_REQUEST_INTERVAL_S) -> None:
        self.interval = interval
        self._last: float | None = None
        self.forwarded = 0
        self.suppressed = 0

    def should_forward(self, now: float) -> bool:
        """Record a request at ``now``; True if it should go upstream."""
        if self._last is not None and now - self._last < self.interval:
            self.suppressed += 1
            return False
        self._last = now
        self.forwarded += 1
        return True

    def on_keyframe(self, now: float) -> None:
        """A keyframe arrived: requests after it are for new losses, so restart the window.

        Optional; without it, the throttle is a plain rate limit.
        """
        self._last = None


class KeyframeCache:
    """The packets of the most recent complete keyframe of one incoming video stream.

    Feed every validated incoming packet (before rewriting) to :meth:`on_packet` with the
    result of the codec's keyframe check. Only packets of a frame that started with a
    keyframe are copied, so delta frames cost two comparisons. Bounded by ``max_bytes``:
    a keyframe larger than that is not cached (the caller falls back to PLI only).
    """

    __slots__ = (
        "_complete",
        "_marker_seq",
        "_pending",
        "_pending_bytes",
        "_pending_first",
        "_pending_ts",
        "completed_at",
        "max_bytes",
        "timestamp",
    )

    def __init__(self, max_bytes: int = 256 * 1024) -> None:
        self.max_bytes = max_bytes
        self._complete: list[bytes] = []
        self.timestamp: int | None = None
        """RTP timestamp of the cached keyframe (None when empty)."""
        self.completed_at: float | None = None
        """``now`` when the cached keyframe's last packet arrived (for a maximum age)."""
        self._pending: dict[int, bytes] | None = None
        self._pending_ts = 0
        self._pending_first = 0
        self._pending_bytes = 0
        self._marker_seq: int | None = None

    def on_packet(self, packet: rtp.Buffer, keyframe_start: bool, now: float = 0.0) -> None:
        """Observe one incoming packet of the stream (``now``: arrival time)."""
        ts = rtp.timestamp(packet)
        if keyframe_start:
            if self._pending is None or ts != self._pending_ts:
                self._pending = {}
                self._pending_ts = ts
                self._pending_first = rtp.sequence_number(packet)
                self._pending_bytes = 0
                self._marker_seq = None
            self._pending_first = _older(self._pending_first, rtp.sequence_number(packet))
        elif self._pending is None:
            return
        elif ts != self._pending_ts:
            # The keyframe never completed before the next frame began: give it up.
            self._pending = None
            return
        seq = rtp.sequence_number(packet)
        self._pending_bytes += len(packet)
        if self._pending_bytes > self.max_bytes:
            self._pending = None
            return
        self._pending[seq] = bytes(packet)
        if rtp.marker(packet):
            self._marker_seq = seq
        self._try_complete(now)

    def _try_complete(self, now: float) -> None:
        pending = self._pending
        if pending is None or self._marker_seq is None:
            return
        count = ((self._marker_seq - self._pending_first) & 0xFFFF) + 1
        if len(pending) != count:
            return
        first = self._pending_first
        self._complete = [pending[(first + i) & 0xFFFF] for i in range(count)]
        self.timestamp = self._pending_ts
        self.completed_at = now
        self._pending = None

    def packets(self, now: float | None = None, max_age: float | None = None) -> list[bytes]:
        """The cached keyframe's packets in sequence order (empty if none yet).

        With ``now`` and ``max_age``, a keyframe older than ``max_age`` seconds is not
        returned: senders (browsers included) send keyframes mostly on request, so an old
        cache entry may show a picture from minutes ago.
        """
        if (
            now is not None
            and max_age is not None
            and (self.completed_at is None or now - self.completed_at > max_age)
        ):
            return []
        return list(self._complete)

    @property
    def nbytes(self) -> int:
        """Bytes held by the complete cached keyframe."""
        return sum(len(p) for p in self._complete)

    def clear(self) -> None:
        """Forget everything (the source stream ended or restarted)."""
        self._complete = []
        self.timestamp = None
        self.completed_at = None
        self._pending = None


def _older(a: int, b: int) -> int:
    """The earlier of two 16-bit sequence numbers."""
    return b if ((b - a + 0x8000) & 0xFFFF) - 0x8000 < 0 else a
