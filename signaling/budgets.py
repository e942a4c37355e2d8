"""Abuse budgets of the public port: how many connections and messages a client may send,
per connection and per address, without I/O (the clock is passed in).

Why both: a connection's own buckets stop one socket flooding; its address's buckets, shared
by all its connections and kept while they come and go, stop a script that opens many
sockets or reconnects to start afresh. A message takes a token from both or from neither,
so a flooder's refused messages never eat its neighbours' share of the address. An IPv6
address counts by its /64, as for bans (``signaling.strikes.network_of``): one subscriber
holds it whole and can pick any address in it.

A refused message is not processed; the I/O layer tells the client (``rate_limited``, with
the kind and when to retry). Refusals have a budget of their own (``refused_to_disconnect``,
one forgiven per second): a client that goes on sending after it was told to wait is
disconnected, so a flood costs the service a few dozen error replies, not one per message.

Every client message type has a kind (``KIND_OF_TYPE``), so a new message type cannot slip
past the budgets: a test holds the table against the protocol.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from signaling import protocol as p
from signaling.config import Budget, LimitsConfig
from signaling.strikes import network_of
from signaling.token_bucket import TokenBucket

KIND_OF_TYPE = {
    "join": "join",
    "next": "join",
    "leave": "join",
    "offer": "sdp",
    "answer": "sdp",
    "candidate": "candidate",
    "call_state": "call_state",
    "report": "report",
    "chat": "chat",
    "ping": "ping",
}
"""Client message type (``signaling.protocol``) to the budget it draws on."""
INVALID = "invalid"
"""The kind of a message that could not be decoded (malformed, invalid, too large, binary)."""
KINDS = (*dict.fromkeys(KIND_OF_TYPE.values()), INVALID)


def kind_of(message: p.ClientMessage | p.ProtocolError) -> str:
    """The budget a client's message draws on; one that could not be read is ``invalid``."""
    if isinstance(message, p.ProtocolError):
        return INVALID
    return KIND_OF_TYPE[str(message.__struct_config__.tag)]


FORGIVEN_PER_S = 1.0
"""Refusals forgiven per second: a client that slips over a budget now and then is never
disconnected for it."""
SWEEP_EVERY_S = 10.0
"""How often addresses with no connection and full buckets are forgotten (they are then the
same as new), so the table stays as large as the crowd of the last minute or so."""

TOO_MANY_OPEN = "too_many_open"
TOO_FAST = "too_fast"
CLOSE_REASONS = {
    TOO_MANY_OPEN: "too many connections from this address; close one first",
    TOO_FAST: "too many new connections from this address; retry in a few seconds",
}
"""A refused connection's close reason (``protocol.CLOSE_TOO_MANY_CONNECTIONS``), by reason."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A message over budget: not processed; the client is told, or disconnected."""

    kind: str
    retry_after_s: float
    scope: str
    """"connection" or "address": whose budget ran out."""
    disconnect: bool
    """The client has used up its refusals too."""

    @property
    def message(self) -> str:
        return (
            f"too many {self.kind} messages from this {self.scope}; "
            f"wait {self.retry_after_s:.1f} s before sending another"
        )


@dataclass(slots=True)
class _Address:
    connects: TokenBucket
    connections: int = 0
    messages: dict[str, TokenBucket] = field(default_factory=dict)

    def idle(self, now: float) -> bool:
        """No connection open and every bucket full: forgetting it changes nothing."""
        buckets = (self.connects, *self.messages.values())
        return self.connections == 0 and all(bucket.is_full(now) for bucket in buckets)


class Budgets:
    """A service's per-address table and its counters, for the operator's metrics."""

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self._budgets = limits.budgets()
        self._addresses: dict[str, _Address] = {}
        self._swept_at: float | None = None
        self.messages_refused: Counter[str] = Counter()
        """By kind."""
        self.disconnected: Counter[str] = Counter()
        """Clients disconnected for flooding, by the kind of the message that tipped them."""
        self.connections_refused: Counter[str] = Counter()
        """By reason: ``too_many_open``, ``too_fast``."""
        self.header_timeouts = 0
        """HTTP connections closed because their request headers came too slowly."""

    def admit(self, address: str, now: float) -> str | None:
        """Count a new connection from `address`, or say why it is refused (and count that).
        An admitted connection must be :meth:`release`d when it ends."""
        self._sweep(now)
        if not self.limits.per_address:
            return None
        entry = self._address(address, now)
        reason = None
        if entry.connections >= self.limits.connections_per_address:
            reason = TOO_MANY_OPEN
        elif not entry.connects.take(now):
            reason = TOO_FAST
        if reason is not None:
            self.connections_refused[reason] += 1
            return reason
        entry.connections += 1
        return None

    def release(self, address: str) -> None:
        entry = self._addresses.get(network_of(address))
        if entry is not None:
            entry.connections -= 1

    def connection(self, address: str, now: float) -> ConnectionBudget:
        """The budgets of one admitted connection from `address`."""
        shared = self._address(address, now).messages if self.limits.per_address else None
        return ConnectionBudget(self, shared, now)

    def count_header_timeout(self) -> None:
        """Called by the HTTP server's head deadline (``chatguard.header_deadline``)."""
        self.header_timeouts += 1

    def address_count(self) -> int:
        return len(self._addresses)

    def bucket(self, kind: str, now: float, shared: bool) -> TokenBucket:
        budget: Budget = self._budgets[kind]
        if shared:
            return TokenBucket.full(budget.address_per_s, budget.address_burst, now)
        return TokenBucket.full(budget.per_s, budget.burst, now)

    def _address(self, address: str, now: float) -> _Address:
        network = network_of(address)
        entry = self._addresses.get(network)
        if entry is None:
            connects = TokenBucket.full(self.limits.connects_per_s, self.limits.connect_burst, now)
            entry = self._addresses[network] = _Address(connects)
        return entry

    def _sweep(self, now: float) -> None:
        if self._swept_at is not None and now - self._swept_at < SWEEP_EVERY_S:
            return
        self._swept_at = now
        for address in [a for a, entry in self._addresses.items() if entry.idle(now)]:
            del self._addresses[address]


class ConnectionBudget:
    """One connection's buckets, beside its address's (None without per-address budgets)."""

    def __init__(self, budgets: Budgets, shared: dict[str, TokenBucket] | None, now: float) -> None:
        self._budgets = budgets
        self._own: dict[str, TokenBucket] = {}
        self._shared = shared
        limit = budgets.limits.refused_to_disconnect
        self._refusals = TokenBucket.full(FORGIVEN_PER_S, limit, now)

    def take(self, kind: str, now: float) -> Refused | None:
        """Take a token for a message of `kind` from this connection and its address, or
        say why not (and count it)."""
        own = self._bucket(self._own, kind, now, shared=False)
        shared = None if self._shared is None else self._bucket(self._shared, kind, now, True)
        own_ok = own.has_token(now)
        if own_ok and (shared is None or shared.has_token(now)):
            own.take(now)
            if shared is not None:
                shared.take(now)
            return None
        empty, scope = (own, "connection") if not own_ok else (shared, "address")
        assert empty is not None
        self._budgets.messages_refused[kind] += 1
        disconnect = not self._refusals.take(now)
        if disconnect:
            self._budgets.disconnected[kind] += 1
        return Refused(kind, round(empty.wait_s(now), 3), scope, disconnect)

    def _bucket(
        self, table: dict[str, TokenBucket], kind: str, now: float, shared: bool
    ) -> TokenBucket:
        bucket = table.get(kind)
        if bucket is None:
            bucket = table[kind] = self._budgets.bucket(kind, now, shared)
        return bucket
