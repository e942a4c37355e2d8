"""Throttling failed relay hellos per address: sans-I/O, clock passed in.

Why: ``/relay`` is guarded by one shared token. Unthrottled, anyone who reaches the port could
try tokens as fast as the connection allows; after `limit` failures within `window_s` an
address is refused for `block_s`, which makes guessing hopeless while a worker that was
briefly misconfigured recovers on its own. A success forgets the address's failures.
Memory is bounded: at most `max_addresses` are tracked, the stalest forgotten first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MAX_ADDRESSES = 10_000


@dataclass(slots=True)
class _Record:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class HelloThrottle:
    def __init__(
        self, limit: int, window_s: float, block_s: float, max_addresses: int = MAX_ADDRESSES
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._block_s = block_s
        self._max = max_addresses
        self._records: dict[str, _Record] = {}
        """Insertion order is last-touched order (a touched record is moved to the end)."""

    def blocked(self, address: str, now: float) -> bool:
        """Is `address` refused at the door right now?"""
        record = self._records.get(address)
        return record is not None and now < record.blocked_until

    def failed(self, address: str, now: float) -> bool:
        """Record a failed hello; True when this failure starts a block (log it then, once)."""
        record = self._records.pop(address, None) or _Record()
        self._records[address] = record
        failures = record.failures
        failures.append(now)
        while failures and failures[0] <= now - self._window_s:
            failures.popleft()
        started = len(failures) >= self._limit and now >= record.blocked_until
        if started:
            record.blocked_until = now + self._block_s
            failures.clear()
        self._forget_stalest()
        return started

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)

    def _forget_stalest(self) -> None:
        while len(self._records) > self._max:
            del self._records[next(iter(self._records))]
