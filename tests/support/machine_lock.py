"""Who may use the machine while a test runs, when pytest-xdist runs the suite in several
workers.

Most tests wait on sockets, subprocesses and timers, and two workers nearly halve the suite's
time on a 2-core machine. A test that asserts what it measures (the share of frames a real
browser's call delivers, the sender's frame rate, a benchmark's smoke run counting what its
second of load released) would measure its neighbour as well. So every
test holds one lock file while it runs (set-up and teardown included): shared by default,
exclusively when marked ``exclusive``. A second file is a queue in front of the first: an
exclusive test waiting there keeps later tests behind it, so a worker starting one short test
after another cannot starve it.

Marking every browser test exclusive made the suite only 12 % faster than one process (954 s
against 1,084 s): the workers spent their time waiting for each other. They pass beside one
other test; only the measurements need the machine alone.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXCLUSIVE_MARKER = "exclusive"


class MachineLock:
    """The two lock files one test run's workers share, in `directory`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._queue = os.open(directory / "queue.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._machine = os.open(directory / "machine.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def held(self, exclusive: bool) -> Iterator[None]:
        """The machine, alone or beside other shared holders, until the block ends."""
        fcntl.flock(self._queue, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._machine, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._queue, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self._machine, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._queue)
        os.close(self._machine)
