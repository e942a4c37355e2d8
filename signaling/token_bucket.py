"""A token bucket: `burst` actions at once, refilled at `per_s`, with the clock passed in.

One implementation for every rate limit of the signaling service (chat, the abuse budgets of
``signaling.budgets``), so that they all refill, cap and answer "when may I retry" the same way.
Checking and taking are separate steps because a message may need a token from two buckets
at once (its connection's and its address's) and must take neither if one is empty.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    per_s: float
    burst: float
    tokens: float
    at: float
    """When `tokens` was last brought up to date (monotonic clock)."""

    @classmethod
    def full(cls, per_s: float, burst: float, now: float) -> TokenBucket:
        """A bucket that starts with its whole burst: a newcomer is never held back."""
        return cls(per_s, burst, burst, now)

    def refill(self, now: float) -> None:
        """Bring `tokens` up to `now`; a clock that went back adds nothing."""
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
            self.at = now

    def has_token(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        """Take one token; False (and nothing taken) when the bucket is empty."""
        if not self.has_token(now):
            return False
        self.tokens -= 1.0
        return True

    def wait_s(self, now: float) -> float:
        """How long until a token is there (0 when one is)."""
        self.refill(now)
        return max(0.0, (1.0 - self.tokens) / self.per_s)

    def is_full(self, now: float) -> bool:
        """Refilled to its burst: forgetting this bucket and starting a new one is the same."""
        self.refill(now)
        return self.tokens >= self.burst
