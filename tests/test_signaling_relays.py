"""The relay directory's view of other nodes' workers (a shared pool): placement over every
node's workers, counts as published plus what was placed since, lapses."""

from __future__ import annotations

from relay import control as rc
from signaling.relays import RelayDirectory, WorkerRecord


def record(
    worker: str,
    node: str = "other",
    legs: int = 0,
    cpu_percent: float = 0.0,
    draining: bool = False,
) -> WorkerRecord:
    return WorkerRecord(
        worker=worker,
        node=node,
        max_legs=4,
        legs=legs,
        cpu_percent=cpu_percent,
        draining=draining,
        moderation_ready=None,
    )


def test_placement_picks_the_least_loaded_worker_of_any_node() -> None:
    relays = RelayDirectory()
    relays.add_worker("here", 4, 1)
    relays.report_load("here", rc.Load(legs=0, cpu_percent=50, rss_bytes=0))
    relays.update_elsewhere(record("there", cpu_percent=10.0), until=10)
    assert relays.place() == "there@other"
    assert [info.worker_id for info in relays.workers()] == ["here"]  # /stats, /metrics
    relays.update_elsewhere(record("there", draining=True), until=10)
    assert relays.place() == "here"


def test_legs_placed_since_the_last_record_count_until_the_next() -> None:
    relays = RelayDirectory()
    relays.update_elsewhere(record("there", legs=2), until=10)
    relays.add_leg("there@other", "l1")
    relays.add_leg("there@other", "l2")
    assert not relays.has_room("there@other", 1)  # 2 published + 2 placed of 4
    relays.update_elsewhere(record("there", legs=3), until=11)  # its node has counted them
    assert relays.has_room("there@other", 1) and not relays.has_room("there@other", 2)


def test_a_worker_not_published_again_lapses_and_nodes_may_share_worker_ids() -> None:
    """Every node names its own workers local-0.0, local-1.0...: known apart by their node."""
    relays = RelayDirectory()
    relays.add_worker("local-0.0", 4, 1)
    relays.update_elsewhere(record("local-0.0", node="b"), until=10)
    relays.update_elsewhere(record("local-0.0", node="c"), until=12)
    assert relays.elsewhere("local-0.0") is None  # ours
    assert relays.elsewhere("local-0.0@b") == ("b", "local-0.0")
    assert len(relays.everywhere()) == 3
    assert relays.lapsed_elsewhere(9.9) == []
    assert relays.lapsed_elsewhere(10) == ["local-0.0@b"]
