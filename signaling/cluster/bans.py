"""Bans shared by the nodes of a pool: a ban made on one node refuses the device at every
node's door, and outlives a restart of any of them (Redis keeps it until it ends).

The door check stays local and synchronous (each node's ``StrikeBook``); this book only
remembers the bans made here, for the node to hand to Redis and to the others, and takes theirs.
Strikes themselves are still counted per node (see the README's "Scale-out").
"""

from __future__ import annotations

from signaling.strikes import StrikeBook, StrikeResult


class SharedStrikeBook(StrikeBook):
    """A ``StrikeBook`` that also lists the bans made here (monotonic clock, as its own)."""

    def __init__(self, strikes_to_ban: int, window_s: float, ban_s: float) -> None:
        super().__init__(strikes_to_ban, window_s, ban_s)
        self._made_here: list[tuple[str, float]] = []

    def strike(self, identities: tuple[str, ...], now: float) -> StrikeResult:
        result = super().strike(identities, now)
        if result.banned_until is not None:
            self._made_here += [(identity, result.banned_until) for identity in identities]
        return result

    def ban(self, identities: tuple[str, ...], until: float) -> None:
        super().ban(identities, until)
        self._made_here += [(identity, until) for identity in identities]

    def apply(self, identity: str, until: float) -> None:
        """A ban another node made (or one kept in Redis from before this node started)."""
        super().ban((identity,), until)

    def drain_made_here(self) -> list[tuple[str, float]]:
        out, self._made_here = self._made_here, []
        return out
