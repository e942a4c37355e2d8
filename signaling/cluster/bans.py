"""Bans shared by the nodes of a pool: a ban made on one node refuses the device at every
node's door, and outlives a restart of any of them (Redis keeps it until it ends).

The door check stays local and synchronous (each node's ``StrikeBook``); this book only
remembers the bans made here, for the node to hand to Redis and to the others, and takes
theirs. A ban travels with its network, so each node also counts it towards banning that
network. Strikes themselves are still counted per node (see the README's "Scale-out").
"""

from __future__ import annotations

from signaling.strikes import Person, StrikeBook


class SharedStrikeBook(StrikeBook):
    """A ``StrikeBook`` that also lists the bans made here (monotonic clock, as its own)."""

    def __init__(
        self, strikes_to_ban: int, window_s: float, ban_s: float, devices_to_ban_network: int
    ) -> None:
        super().__init__(strikes_to_ban, window_s, ban_s, devices_to_ban_network)
        self._made_here: list[Person] = []

    def ban(self, who: Person, until: float) -> None:
        """Strikes that cross the limit end here too."""
        super().ban(who, until)
        if who.device:
            self._made_here.append(who)

    def apply(self, who: Person, until: float) -> None:
        """A ban another node made (or one kept in Redis from before this node started)."""
        super().ban(who, until)

    def drain_made_here(self) -> list[Person]:
        out, self._made_here = self._made_here, []
        return out
