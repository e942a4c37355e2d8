"""Strikes and bans shared by the nodes of a pool: strikes on two nodes add up, a ban made on
one node refuses the device at every node's door, and both outlive a restart of any node.

The door check and the strike count stay local and synchronous (each node's book), so that a
moderation report is answered at once: this book counts a strike on top of the device's count
as Redis last said it, and lists the strikes and bans made here for the node to hand to Redis.
In Redis a device's strikes are one counter, incremented atomically, whose TTL is the strike
window from its first strike (a fixed window, where one node alone slides it: Redis expires
the whole count at once, and no node has to keep the times); every increment is published, so
each node knows every device's count. The node whose increment crossed the limit bans, even if
its own count had not (two nodes striking one device at the same moment). A ban travels with
its network, so each node also counts it towards banning that network.
"""

from __future__ import annotations

from signaling.strikes import Person, StrikeBook, StrikeResult, strikes_reason


class SharedStrikeBook(StrikeBook):
    """A ``StrikeBook`` whose counts are the pool's (monotonic clock, as its own)."""

    def __init__(
        self, strikes_to_ban: int, window_s: float, ban_s: float, devices_to_ban_network: int
    ) -> None:
        super().__init__(strikes_to_ban, window_s, ban_s, devices_to_ban_network)
        self._made_here: list[tuple[Person, str]] = []
        """Bans made here, with what the person was told."""
        self._struck_here: list[Person] = []
        self._counts: dict[str, tuple[int, float]] = {}
        """Device -> (strikes, until when that count stands), as Redis last said or this
        node has struck since."""

    def strike(self, who: Person, now: float) -> StrikeResult:
        if not who.device:
            return StrikeResult(0, None)
        count, until = self._counts.get(who.device, (0, 0.0))
        if until <= now:
            count, until = 0, now + self._window_s
        self._counts[who.device] = (count + 1, until)
        self._struck_here.append(who)
        if count + 1 < self._limit:
            return StrikeResult(count + 1, None)
        banned_until = now + self._ban_s
        self.ban(who, banned_until, strikes_reason(count + 1))
        return StrikeResult(count + 1, banned_until)

    def counted(self, device: str, count: int, left_s: float, now: float) -> None:
        """Redis's count of `device`'s strikes, standing `left_s` more (its key's TTL)."""
        known, _ = self._counts.get(device, (0, 0.0))
        banned = self.banned_until(Person(device, ""), now) is not None  # its strikes ended
        if count >= known and left_s > 0 and not banned:
            self._counts[device] = (count, now + left_s)

    def crossed_limit(self, who: Person, count: int, now: float) -> bool:
        """This node's increment brought `who`'s count to `count` in Redis: a ban if that
        reaches the limit and none stands yet. True: banned now."""
        if count < self._limit or self.banned_until(Person(who.device, ""), now) is not None:
            return False
        self.ban(who, now + self._ban_s, strikes_reason(count))
        return True

    def ban(self, who: Person, until: float, reason: str) -> None:
        """Strikes that cross the limit end here too."""
        super().ban(who, until, reason)
        if who.device:
            self._counts.pop(who.device, None)
            self._made_here.append((who, reason))

    def apply(self, who: Person, until: float) -> None:
        """A ban another node made (or one kept in Redis from before this node started)."""
        super().ban(who, until, "")
        self._counts.pop(who.device, None)

    def drain_made_here(self) -> list[tuple[Person, str]]:
        out, self._made_here = self._made_here, []
        return out

    def drain_struck_here(self) -> list[Person]:
        out, self._struck_here = self._struck_here, []
        return out
