"""Recent operator events and open reports, kept for the admin listener (``/events``,
``/reports`` and its page): one interface, two stores.

Why a store of their own: the log and the webhook keep every event, but an operator reading one
node's admin listener must see what every node of the service decided (a report filed through
one node, a ban made on another). Without ``[cluster] redis_url`` the records stay in this
process's memory (:class:`MemoryRecords`); with it, in Redis (``signaling.cluster.records``),
where every node reads the same. Either way each kind is bounded twice: at most `limit`
records, none older than its retention (``[events] recent_limit``, ``retention_s``; reports
for ``[reports] window_s``, the span in which they count towards a ban).

Records are JSON-ready dicts (an ``OperatorEvent``, an ``OpenReport``): metadata only. Adding
never waits (the service adds from its synchronous flush); reading may, and a store that
cannot answer raises :class:`RecordsUnavailable`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from signaling.config import Config

Kind = Literal["events", "reports"]
KINDS: tuple[Kind, ...] = ("events", "reports")
Record = dict[str, object]


class RecordsUnavailable(Exception):
    """The shared store cannot be read now; the message says why."""


@dataclass(frozen=True, slots=True)
class Retention:
    limit: int
    """The most records of the kind kept (the oldest go first)."""
    seconds: float
    """Records older than this are neither listed nor kept."""


def retention(config: Config) -> dict[Kind, Retention]:
    events = config.events
    return {
        "events": Retention(events.recent_limit, events.retention_s),
        "reports": Retention(events.recent_limit, config.reports.window_s),
    }


class RecentRecords(Protocol):
    """What the service and its admin listener need of a store (started and stopped with
    the service, as its other background services)."""

    def add(self, kind: Kind, record: Record, now_unix: float) -> None:
        """Keep `record`, made at `now_unix`; never waits."""

    async def listed(self, kind: Kind, now_unix: float) -> list[Record]:
        """The records of `kind` still kept at `now_unix`, oldest first."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class MemoryRecords:
    """This process's records, for a service that runs alone."""

    def __init__(self, retention: dict[Kind, Retention]) -> None:
        self._retention = retention
        self._kept: dict[Kind, deque[tuple[float, Record]]] = {
            kind: deque(maxlen=retention[kind].limit) for kind in KINDS
        }

    def add(self, kind: Kind, record: Record, now_unix: float) -> None:
        self._kept[kind].append((now_unix, record))
        self._forget_old(kind, now_unix)

    async def listed(self, kind: Kind, now_unix: float) -> list[Record]:
        self._forget_old(kind, now_unix)
        return [record for _, record in self._kept[kind]]

    def _forget_old(self, kind: Kind, now_unix: float) -> None:
        kept, oldest = self._kept[kind], now_unix - self._retention[kind].seconds
        while kept and kept[0][0] < oldest:
            kept.popleft()

    async def start(self) -> None:
        """Nothing to open."""

    async def stop(self) -> None:
        """Nothing to close."""
