"""Strikes and bans: sans-I/O, clock passed in.

A strike (strict route moderation) is counted against every identity a person shows (device
id, network address), so reconnecting does not wipe the slate; a ban refuses all of them. Bans
decided elsewhere (reports, see ``signaling.reports``) are kept here too, so the door checks one
book. Only metadata is kept.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StrikeResult:
    strikes: int
    """Strikes within the window for the most-struck identity, this one included."""
    banned_until: float | None
    """Set when this strike crossed the limit (monotonic clock)."""


class StrikeBook:
    def __init__(self, strikes_to_ban: int, window_s: float, ban_s: float) -> None:
        self._limit = strikes_to_ban
        self._window_s = window_s
        self._ban_s = ban_s
        self._strikes: dict[str, deque[float]] = {}
        self._bans: dict[str, float] = {}

    def strike(self, identities: tuple[str, ...], now: float) -> StrikeResult:
        worst = 0
        for identity in identities:
            times = self._strikes.setdefault(identity, deque())
            times.append(now)
            while times and times[0] <= now - self._window_s:
                times.popleft()
            worst = max(worst, len(times))
        if worst < self._limit:
            return StrikeResult(worst, None)
        until = now + self._ban_s
        for identity in identities:
            self._bans[identity] = until
            self._strikes.pop(identity, None)
        return StrikeResult(worst, until)

    def ban(self, identities: tuple[str, ...], until: float) -> None:
        """Refuse `identities` until `until` (monotonic clock); a longer ban stands."""
        for identity in identities:
            self._bans[identity] = max(until, self._bans.get(identity, 0.0))

    def banned_until(self, identities: tuple[str, ...], now: float) -> float | None:
        until = max((self._bans.get(identity, 0.0) for identity in identities), default=0.0)
        if until > now:
            return until
        for identity in identities:  # expired bans are forgotten as they are met
            if self._bans.get(identity, now + 1) <= now:
                del self._bans[identity]
        return None
