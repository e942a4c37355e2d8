"""Which relay workers exist, how loaded they are, and where the next relayed call goes.

Pure bookkeeping, no sockets: the hub tells it about workers' hellos, load reports and
disconnects, and about legs placed and closed; it answers ``place()``. Legs are counted the
moment they are placed, not when the worker next reports, so a burst of new calls spreads
over the workers instead of all landing on whichever looked idle a second ago.

With a shared pool (``signaling.cluster``) it also holds the workers connected to other nodes,
as their nodes last published them (``update_elsewhere``), so that placement picks the
least-loaded worker of the whole service without asking Redis: such a worker's legs are those
its node counted at its last report plus those placed from here since. Each is known here as
``elsewhere_id(worker, node)``: worker ids are unique per node only (every ``serve`` names its
own workers ``local-0.0``, ``local-1.0``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from msgspec.structs import asdict

from relay.control import Histogram, Load, RelayTotals


class WorkerRecord(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A worker as its node tells the other nodes of a shared pool: enough to place calls."""

    worker: str
    node: str
    max_legs: int
    legs: int
    """Legs on it, whichever node placed them."""
    cpu_percent: float
    draining: bool
    moderation_ready: bool | None


def elsewhere_id(worker: str, node: str) -> str:
    """The id a worker of another node has here."""
    return f"{worker}@{node}"


@dataclass(slots=True)
class WorkerInfo:
    worker_id: str
    max_legs: int
    pid: int
    """The worker's process id on its own machine: lets a benchmark on that machine read its
    CPU and memory from /proc too."""
    legs: set[str] = field(default_factory=set)
    """Legs signaling has placed on this worker and not yet closed."""
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    draining: bool = False
    moderation: dict[str, object] | None = None
    """The worker's last strict-route report (gate latency, classifications), for /stats."""
    moderation_ready: bool | None = None
    """Whether it can moderate (model loaded and tested); None: not known (yet)."""
    moderation_error: str = ""
    totals: RelayTotals | None = None
    """The worker's counters since it started, as last reported (``/metrics``)."""
    sender_estimates: Histogram | None = None
    """The relay's own estimates of its senders' uplinks, as last reported (``/metrics``)."""
    node: str = ""
    """The signaling node the worker is connected to, when it is another one; "": this one."""
    id_there: str = ""
    """A worker of another node: its id there (`worker_id` is ``elsewhere_id`` of it)."""
    legs_counted_there: int = 0
    """A worker on another node: its legs when that node last published it (`legs` then holds
    only those placed from here since)."""
    seen_until: float = 0.0
    """A worker on another node: forgotten at this time (monotonic) unless published again."""

    @property
    def legs_in_use(self) -> int:
        return len(self.legs) + self.legs_counted_there

    @property
    def load(self) -> float:
        """Fraction of capacity in use; CPU counts too, since legs differ in cost."""
        return max(self.legs_in_use / self.max_legs, self.cpu_percent / 100.0)


class RelayDirectory:
    """Live relay workers and the legs placed on each."""

    def __init__(self) -> None:
        self._workers: dict[str, WorkerInfo] = {}

    def add_worker(self, worker_id: str, max_legs: int, pid: int) -> None:
        self._workers[worker_id] = WorkerInfo(worker_id, max(2, max_legs), pid)

    def remove_worker(self, worker_id: str) -> set[str]:
        """Forget a worker that went away; returns the legs it took with it."""
        info = self._workers.pop(worker_id, None)
        return set() if info is None else info.legs

    def report_load(self, worker_id: str, load: Load) -> None:
        info = self._workers.get(worker_id)
        if info is not None:
            info.cpu_percent, info.rss_bytes, info.draining = (
                load.cpu_percent,
                load.rss_bytes,
                load.draining,
            )
            info.moderation = None if load.moderation is None else asdict(load.moderation)
            info.moderation_ready = load.moderation_ready
            info.moderation_error = load.moderation_error
            info.totals = load.totals
            info.sender_estimates = load.sender_estimates

    def update_elsewhere(self, record: WorkerRecord, until: float) -> None:
        """A worker of another node, as that node published it, valid until `until`
        (monotonic)."""
        key = elsewhere_id(record.worker, record.node)
        info = self._workers.get(key)
        if info is None:
            info = WorkerInfo(key, 2, 0, node=record.node, id_there=record.worker)
            self._workers[key] = info
        info.max_legs, info.legs_counted_there = max(2, record.max_legs), record.legs
        info.cpu_percent, info.draining = record.cpu_percent, record.draining
        info.moderation_ready, info.seen_until = record.moderation_ready, until
        info.legs.clear()  # counted there by now, or at its next record

    def record_of(self, worker_id: str, node: str) -> WorkerRecord | None:
        """What this node publishes about one of its workers."""
        info = self._workers.get(worker_id)
        if info is None or info.node:
            return None
        return WorkerRecord(
            worker=worker_id,
            node=node,
            max_legs=info.max_legs,
            legs=len(info.legs),
            cpu_percent=info.cpu_percent,
            draining=info.draining,
            moderation_ready=info.moderation_ready,
        )

    def lapsed_elsewhere(self, now: float) -> list[str]:
        """Workers of other nodes not published again in time: their node (or they) died."""
        return [w.worker_id for w in self._workers.values() if w.node and w.seen_until <= now]

    def elsewhere(self, worker_id: str) -> tuple[str, str] | None:
        """(its node, its id there) for a worker of another node; None: ours, or unknown."""
        info = self._workers.get(worker_id)
        return None if info is None or not info.node else (info.node, info.id_there)

    def place(self, legs_needed: int = 2, moderated: bool = False) -> str | None:
        """The least-loaded live worker with room for `legs_needed` more legs (and, for
        `moderated` ones, able to moderate), if any."""
        candidates = [
            info
            for info in self._workers.values()
            if self.has_room(info.worker_id, legs_needed, moderated)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda info: (info.load, info.worker_id)).worker_id

    def has_room(self, worker_id: str, legs_needed: int, moderated: bool = False) -> bool:
        info = self._workers.get(worker_id)
        return (
            info is not None
            and not info.draining
            and info.legs_in_use + legs_needed <= info.max_legs
            and (info.moderation_ready is True or not moderated)
        )

    def workers(self) -> list[WorkerInfo]:
        """Those connected to this node."""
        return [info for info in self._workers.values() if not info.node]

    def everywhere(self) -> list[WorkerInfo]:
        """Those of every node known here: what calls can be placed on."""
        return list(self._workers.values())

    def add_leg(self, worker_id: str, leg_id: str) -> None:
        """Also for a leg another node placed on a worker of ours (``signaling.cluster``)."""
        info = self._workers.get(worker_id)
        if info is not None:
            info.legs.add(leg_id)

    def remove_leg(self, worker_id: str, leg_id: str) -> None:
        info = self._workers.get(worker_id)
        if info is not None:
            info.legs.discard(leg_id)

    def has_worker(self, worker_id: str) -> bool:
        return worker_id in self._workers

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "worker": info.worker_id,
                "pid": info.pid,
                "legs": len(info.legs),
                "max_legs": info.max_legs,
                "cpu_percent": round(info.cpu_percent, 1),
                "rss_mib": round(info.rss_bytes / 2**20, 1),
                "draining": info.draining,
                "moderation_ready": info.moderation_ready,
                **({"moderation_error": info.moderation_error} if info.moderation_error else {}),
                **({"moderation": info.moderation} if info.moderation is not None else {}),
                **(
                    {"defences": info.totals.defences}
                    if info.totals and info.totals.defences
                    else {}
                ),
            }
            for info in self.workers()
        ]

    def snapshot_elsewhere(self) -> list[dict[str, object]]:
        """Workers of other nodes, as last published: for ``/stats``."""
        return [
            {
                "worker": info.id_there,
                "node": info.node,
                "legs": info.legs_in_use,
                "max_legs": info.max_legs,
                "cpu_percent": round(info.cpu_percent, 1),
                "draining": info.draining,
                "moderation_ready": info.moderation_ready,
            }
            for info in self._workers.values()
            if info.node
        ]
