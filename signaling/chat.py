"""Text chat between the two members of a pair: what may be sent, without I/O.

Chat rides the signaling WebSocket, so it works on every route (the relay never sees it). The
hub routes a message only to the sender's current partner; this module decides whether the
sender may send it now (length, rate). Nothing here keeps message text: chat is relayed, never
stored or logged.

The limit is a token bucket per client: `burst` messages at once, refilled at `per_s`, so a
person typing normally is never held back while a script flooding its partner is.
"""

from __future__ import annotations

from signaling import protocol as p
from signaling.token_bucket import TokenBucket


class ChatGate:
    """The length limit, and token buckets keyed by client id; the clock is passed in."""

    def __init__(self, max_chars: int, burst: int, per_s: float) -> None:
        self._max_chars = max_chars
        self._burst = burst
        self._per_s = per_s
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, user: str, text: str, now: float) -> None:
        """Let `user`'s message through, or raise the ProtocolError that tells them why not."""
        if len(text) > self._max_chars:
            raise p.ProtocolError("too_long", f"a chat message may be {self._max_chars} characters")
        if not self.allow(user, now):
            wait_s = self.retry_after_s(user, now)
            raise p.ProtocolError(
                "rate_limited",
                f"you are sending messages too fast; wait {wait_s:.1f} s",
                kind="chat",
                retry_after_s=round(wait_s, 3),
            )

    def allow(self, user: str, now: float) -> bool:
        """Take one token for `user`'s message; False means refuse it (the bucket is empty)."""
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = TokenBucket.full(self._per_s, self._burst, now)
        return bucket.take(now)

    def retry_after_s(self, user: str, now: float) -> float:
        """How long until `user` may send again (0 when a token is available)."""
        bucket = self._buckets.get(user)
        return 0.0 if bucket is None else bucket.wait_s(now)

    def forget(self, user: str) -> None:
        """A client left: its bucket goes with it, so the table stays as small as the crowd."""
        self._buckets.pop(user, None)
