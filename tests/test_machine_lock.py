"""The machine lock that lets the test workers share the machine: shared holders together, an
exclusive holder alone, and an exclusive waiter ahead of shared tests that come after it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.support.machine_lock import MachineLock


def test_an_exclusive_test_waits_for_shared_ones_and_later_shared_ones_wait_for_it(
    tmp_path: Path,
) -> None:
    locks = [MachineLock(tmp_path) for _ in range(3)]  # three open files: three workers
    order: list[str] = []
    release_first = threading.Event()
    release_exclusive = threading.Event()

    def hold(index: int, exclusive: bool, name: str, until: threading.Event | None) -> None:
        with locks[index].held(exclusive):
            order.append(name)
            if until is not None:
                assert until.wait(10)

    first = threading.Thread(target=hold, args=(0, False, "shared 1", release_first))
    first.start()
    while order != ["shared 1"]:
        time.sleep(0.01)
    exclusive = threading.Thread(target=hold, args=(1, True, "exclusive", release_exclusive))
    exclusive.start()
    time.sleep(0.2)  # the exclusive test now waits in the queue for the machine
    late = threading.Thread(target=hold, args=(2, False, "shared 2", None))
    late.start()
    time.sleep(0.2)
    assert order == ["shared 1"]  # neither the exclusive test nor the late shared one got in
    release_first.set()
    first.join(10)
    time.sleep(0.2)
    assert order == ["shared 1", "exclusive"]  # alone: the late shared test still waits
    release_exclusive.set()
    for thread in (exclusive, late):
        thread.join(10)
    assert order == ["shared 1", "exclusive", "shared 2"]
    for lock in locks:
        lock.close()


def test_shared_holders_run_together(tmp_path: Path) -> None:
    first, second = MachineLock(tmp_path), MachineLock(tmp_path)
    with first.held(exclusive=False):
        entered = threading.Event()

        def enter() -> None:
            with second.held(exclusive=False):
                entered.set()

        thread = threading.Thread(target=enter)
        thread.start()
        assert entered.wait(5)
        thread.join(5)
    first.close()
    second.close()
