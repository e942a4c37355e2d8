"""The relay supervisor with real worker processes (dialling a port where nothing listens)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from chatguard.supervisor import RESTART_DELAYS_S, RelaySupervisor, restart_delay
from tests.support.ports import free_port


async def wait_for_process(supervisor: RelaySupervisor, not_pid: int = 0) -> int:
    for _ in range(200):
        process = supervisor.processes.get(0)
        if process is not None and process.pid != not_pid and process.returncode is None:
            return process.pid
        await asyncio.sleep(0.05)
    raise AssertionError("no worker process started")


@pytest.mark.timeout(60)
async def test_a_crash_is_restarted_and_stopping_is_no_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"ws://127.0.0.1:{free_port()}/relay"
    supervisor = RelaySupervisor(1, url, "token", 10, "warning")
    caplog.set_level(logging.INFO, logger="chatguard.relay")
    await supervisor.start()
    try:
        pid = await wait_for_process(supervisor)
        # its own session: the terminal's Ctrl-C reaches serve only, which stops it in order
        assert os.getsid(pid) == pid
        os.kill(pid, signal.SIGKILL)
        await wait_for_process(supervisor, not_pid=pid)
        assert supervisor.crashes == 1
        assert "crashed (exit code -9)" in caplog.text
    finally:
        caplog.clear()
        await supervisor.stop()
    assert supervisor.crashes == 1
    assert "crashed" not in caplog.text and "restarting" not in caplog.text
    assert all(process.returncode is not None for process in supervisor.processes.values())


SUPERVISING_CHILD = """
import asyncio, sys
from chatguard.supervisor import RESTART_DELAYS_S, RelaySupervisor, restart_delay

async def main():
    supervisor = RelaySupervisor(1, sys.argv[1], "token", 10, "warning")
    await supervisor.start()
    while 0 not in supervisor.processes:
        await asyncio.sleep(0.05)
    print(supervisor.processes[0].pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.timeout(60)
def test_no_worker_outlives_a_killed_supervisor() -> None:
    url = f"ws://127.0.0.1:{free_port()}/relay"
    with subprocess.Popen(
        [sys.executable, "-c", SUPERVISING_CHILD, url], stdout=subprocess.PIPE, text=True
    ) as parent:  # leaving the block closes the pipe
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        parent.kill()
    deadline = time.monotonic() + 20
    while _alive(worker):
        assert time.monotonic() < deadline, f"worker {worker} outlived its supervisor"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's exit is collected by init, maybe not at once)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.timeout(60)
async def test_the_back_off_starts_over_after_a_stable_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every run counts as stable here (``stable_run_s=0``): two crashes in a row both wait
    the shortest delay, where without the reset the second would wait the next one."""
    url = f"ws://127.0.0.1:{free_port()}/relay"
    supervisor = RelaySupervisor(1, url, "token", 10, "warning", stable_run_s=0.0)
    caplog.set_level(logging.INFO, logger="chatguard.relay")
    await supervisor.start()
    try:
        pid = await wait_for_process(supervisor)
        for _ in range(2):
            os.kill(pid, signal.SIGKILL)
            pid = await wait_for_process(supervisor, not_pid=pid)
    finally:
        await supervisor.stop()
    delays = [r.getMessage().rsplit("restarting in ", 1)[1] for r in caplog.records
              if "restarting in" in r.getMessage()]  # fmt: skip
    assert delays == [f"{RESTART_DELAYS_S[0]:.1f} s"] * 2


def test_quick_exits_in_a_row_back_off_further() -> None:
    assert [restart_delay(n) for n in range(6)] == [*RESTART_DELAYS_S, RESTART_DELAYS_S[-1]]


@pytest.mark.timeout(10)
async def test_a_worker_notices_by_itself_that_its_parent_is_gone() -> None:
    """Beside the parent-death signal: a worker stops once its parent is not the process that
    started it (`chatguard relay --parent-pid`, which serve passes)."""
    from relay.worker import until_orphaned

    await asyncio.wait_for(until_orphaned(os.getppid() + 1, interval_s=0.01), 1.0)  # not ours: gone
    watching = asyncio.create_task(until_orphaned(os.getppid(), interval_s=0.01))
    await asyncio.sleep(0.1)
    assert not watching.done()
    watching.cancel()


@pytest.mark.timeout(60)
async def test_workers_stop_on_sigint_even_when_serve_was_started_with_it_ignored() -> None:
    """A shell without job control starts `serve &` with SIGINT ignored, and an ignored signal
    stays ignored across exec: the workers must handle it anyway, or stopping waits out the
    grace time and kills them (and a killed supervisor's SIGINT reaches nobody)."""
    url = f"ws://127.0.0.1:{free_port()}/relay"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        supervisor = RelaySupervisor(1, url, "token", 10, "warning")
        await supervisor.start()
        pid = await wait_for_process(supervisor)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 20
        while not _handles_sigint(pid):  # Python has installed its handler: started
            assert time.monotonic() < deadline, "the worker never handled SIGINT"
            await asyncio.sleep(0.05)
    finally:
        await supervisor.stop()
    assert supervisor.processes[0].returncode == 0  # stopped by SIGINT, not killed


def _handles_sigint(pid: int) -> bool:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status)
    return bool(int(fields["SigCgt"], 16) & 1 << (signal.SIGINT - 1))
