"""Starts the local relay worker processes and restarts any that die.

Each worker is a separate process (``chatguard relay``) so that a crash takes down only its
own calls: signaling sees the control connection close, moves those calls to the surviving
workers, and this supervisor starts a replacement.

Workers run in their own session, so the terminal's Ctrl-C reaches only ``serve``, which then
stops them itself: a worker that exits because ``serve`` is stopping is not a crash, and a
worker must not die (and be restarted) while ``serve`` is still shutting down. Being out of
``serve``'s process group, a worker is also told when ``serve`` dies without stopping it
(killed): Linux sends it SIGINT then, so no worker outlives its supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from signaling.config import SECRET_ENV, RelayConfig

log = logging.getLogger("chatguard.relay")

RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0)
STABLE_RUN_S = 30.0
"""A worker up this long before it died had worked: its replacement starts at the first
delay again, so one crash a day is not met with the longest back-off."""
STOP_GRACE_S = 5.0
TOKEN_ENV = SECRET_ENV["relay.token"]
"""The shared secret travels in the environment, not on the command line where `ps` shows it."""
CA_ENV = "CHATGUARD_RELAY_CA"
"""A certificate file workers trust for signaling's TLS (``chatguard relay --ca-file``)."""


_PR_SET_PDEATHSIG = 1


_WORKER_ENTRY = (
    "import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}); "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from chatguard.cli import main; sys.exit(main(sys.argv[1:]))"
)
"""The worker's first statement blocks SIGINT (held pending, not lost) until `chatguard relay`
has imported what it needs and unblocks it, so a worker stopped while still starting exits
quietly instead of printing a KeyboardInterrupt traceback from the middle of an import. (A mask
set before exec does not do: uvloop's spawn resets the child's signal mask.) The second makes
SIGINT raise KeyboardInterrupt even when `serve` was started with it ignored, as a shell
without job control starts a command run with `&`: an ignored signal stays ignored across
exec, and Python then leaves it so. Such a worker ignored both the stop and the parent-death
SIGINT; one outlived its killed supervisor for hours."""


def signal_when_orphaned(signum: int) -> Callable[[], None]:
    """A `preexec_fn`: in the child, before exec, ask Linux for `signum` when the parent dies
    (PR_SET_PDEATHSIG), so that a parent killed outright (SIGKILL, OOM) leaves no process."""

    def arrange() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)

    return arrange


def gathering_options(relay: RelayConfig) -> list[str]:
    """The `chatguard relay` options that give a local worker `relay`'s addresses and ports
    (every local worker shares them: one machine, one NAT, one firewall)."""
    options = ["--udp-ports", relay.udp_ports] if relay.udp_ports else []
    for entry in relay.gather_from:
        options += ["--gather-from", entry]
    for address in relay.announced_addresses:
        options += ["--announce", address]
    if relay.announce_interface_addresses:
        options.append("--announce-interface-addresses")
    return options


class RelaySupervisor:
    """Keeps `count` local workers running, each dialling `signaling_url`."""

    def __init__(
        self,
        count: int,
        signaling_url: str,
        token: str,
        max_legs: int,
        log_level: str = "info",
        ice_tcp_port: int = 0,
        worker_options: Sequence[str] = (),
        udp_port: int = 0,
        ca_file: str = "",
        log_format: str = "text",
        stable_run_s: float = STABLE_RUN_S,
    ) -> None:
        """``ice_tcp_port``: worker ``slot`` listens for ICE over TCP on this port + slot
        (a restarted worker takes its slot's port again); 0: none do. ``udp_port``: the same
        for the UDP port shared by a worker's legs; 0: a port per leg. ``worker_options``:
        more `chatguard relay` options for every worker (:func:`gathering_options`).
        ``ca_file``: the service's own certificate when it serves TLS, which the workers then
        trust. ``stable_run_s``: up this long, a worker's next restart waits the shortest
        delay again."""
        self.ca_file = ca_file
        self.log_format = log_format
        self.stable_run_s = stable_run_s
        self.count = count
        self.udp_port = udp_port
        self.worker_options = list(worker_options)
        self.ice_tcp_port = ice_tcp_port
        self.log_level = log_level
        self.signaling_url = signaling_url
        self.token = token
        self.max_legs = max_legs
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.crashes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep_running(slot)) for slot in range(self.count)]

    async def _spawn(self, slot: int, generation: int) -> asyncio.subprocess.Process:
        # -P: `-c` (like `-m`) would put the current directory first on the path, and `serve`
        # started from a checkout would then load its uncompiled source tree (fastpath/ without
        # the built extensions) instead of the installed package.
        command = [
            sys.executable, "-P", "-c", _WORKER_ENTRY, "relay",
            "--signaling", self.signaling_url,
            "--worker-id", f"local-{slot}.{generation}",
            "--max-legs", str(self.max_legs),
            "--log-level", self.log_level,
            "--log-format", self.log_format,
            "--ice-tcp-port", str(self.ice_tcp_port + slot if self.ice_tcp_port else 0),
            "--udp-port", str(self.udp_port + slot if self.udp_port else 0),
            "--parent-pid", str(os.getpid()),
            *self.worker_options,
        ]  # fmt: skip
        env = {**os.environ, TOKEN_ENV: self.token}
        if self.ca_file:
            env[CA_ENV] = self.ca_file
        return await asyncio.create_subprocess_exec(
            *command,
            env=env,
            start_new_session=True,
            preexec_fn=signal_when_orphaned(signal.SIGINT),
        )

    async def _keep_running(self, slot: int) -> None:
        generation = 0
        quick_exits = 0  # in a row, each before `stable_run_s`
        loop = asyncio.get_running_loop()
        while not self._stopping:
            process = await self._spawn(slot, generation)
            self.processes[slot] = process
            started = loop.time()
            code = await process.wait()
            if self._stopping:
                return
            quick_exits = 0 if loop.time() - started >= self.stable_run_s else quick_exits
            delay = restart_delay(quick_exits)
            quick_exits += 1
            if code == 0:  # drained after a SIGTERM sent by hand: done, not broken
                log.info("relay worker %d (pid %d) exited; restarting it", slot, process.pid)
            else:
                log.warning(
                    "relay worker %d (pid %d) crashed (exit code %s); restarting in %.1f s",
                    slot, process.pid, code, delay,
                )  # fmt: skip
                self.crashes += 1
            generation += 1
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Stop at once (SIGINT): the service is going down, so there is nothing to drain for.
        (SIGTERM would make a worker drain its calls first.)"""
        self._stopping = True
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def restart_delay(quick_exits: int) -> float:
    """Back-off before a restart, after ``quick_exits`` short-lived runs in a row."""
    return RESTART_DELAYS_S[min(quick_exits, len(RESTART_DELAYS_S) - 1)]
