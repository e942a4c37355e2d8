"""Text chat between the two members of a pair: what may be sent, without I/O.

Chat rides the signaling WebSocket, so it works on every route (the relay never sees it). The
hub routes a message only to the sender's current partner; this module decides whether the
sender may send it now (length, rate). Nothing here keeps message text: chat is relayed, never
stored or logged.

The limit is a token bucket per client: `burst` messages at once, refilled at `per_s`, so a
person typing normally is never held back while a script flooding its partner is.
"""

from __future__ import annotations

from dataclasses import dataclass

from signaling import protocol as p


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    """When `tokens` was last brought up to date (monotonic clock)."""


class ChatGate:
    """The length limit, and token buckets keyed by client id; the clock is passed in."""

    def __init__(self, max_chars: int, burst: int, per_s: float) -> None:
        self._max_chars = max_chars
        self._burst = burst
        self._per_s = per_s
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, user: str, text: str, now: float) -> None:
        """Let `user`'s message through, or raise the ProtocolError that tells them why not."""
        if len(text) > self._max_chars:
            raise p.ProtocolError("too_long", f"a chat message may be {self._max_chars} characters")
        if not self.allow(user, now):
            wait_s = self.retry_after_s(user)
            raise p.ProtocolError(
                "rate_limited", f"you are sending messages too fast; wait {wait_s:.1f} s"
            )

    def allow(self, user: str, now: float) -> bool:
        """Take one token for `user`'s message; False means refuse it (the bucket is empty)."""
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = _Bucket(float(self._burst), now)
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.at) * self._per_s)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def retry_after_s(self, user: str) -> float:
        """How long until `user` may send again (0 when a token is available)."""
        bucket = self._buckets.get(user)
        if bucket is None or bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) / self._per_s

    def forget(self, user: str) -> None:
        """A client left: its bucket goes with it, so the table stays as small as the crowd."""
        self._buckets.pop(user, None)
