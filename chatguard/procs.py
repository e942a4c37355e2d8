"""`serve --procs N`: N signaling processes on one machine, one port, one shared pool.

The parent only starts the N children and stops them together; each child is a whole `serve`
(a node of the pool in Redis, with its share of the relay workers) that binds the public port
with SO_REUSEPORT, so the kernel spreads new connections over the children. A child's own relay
workers dial a second, private loopback port of that child: through the shared port they could
land on any child, and each child must see the workers it supervises.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import msgspec

from chatguard.supervisor import signal_when_orphaned
from signaling.config import Config


def share(config: Config, procs: int, index: int) -> Config:
    """Child `index`'s part: its slice of the relay workers (and of their per-worker ports,
    ICE over TCP and a shared UDP port), an admin listener on the port after the previous
    child's, and a node name of its own when the operator named the node."""
    total = config.relay.local_workers()
    base, extra = divmod(total, procs)
    first_slot = index * base + min(index, extra)
    relay = config.relay
    relay = msgspec.structs.replace(
        relay,
        workers=base + (1 if index < extra else 0),
        ice_tcp_port=relay.ice_tcp_port + first_slot if relay.ice_tcp_port else 0,
        udp_port=relay.udp_port + first_slot if relay.udp_port else 0,
    )
    cluster = config.cluster
    if cluster.node_id:
        cluster = msgspec.structs.replace(cluster, node_id=f"{cluster.node_id}-{index}")
    admin = config.admin
    if admin.port:
        admin = msgspec.structs.replace(admin, port=admin.port + index)
    return msgspec.structs.replace(config, relay=relay, cluster=cluster, admin=admin)


def listening_sockets(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """The shared public socket (SO_REUSEPORT) and this child's private one for its workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    public = socket.socket(family, socket.SOCK_STREAM)
    public.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    public.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    public.bind((host, port))
    private = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    private.bind(("127.0.0.1", 0))
    return public, private


def run_procs(argv: Sequence[str], procs: int) -> int:
    """Start the children (`argv` is this command's, each gets its index) and wait: when one
    ends, or this process is told to stop, all are stopped; returns the first non-zero code."""
    # -P: as for relay workers (chatguard.supervisor), a checkout's sources must not shadow the
    # installed package; SIGTERM when this parent dies: a child drains and stops, as on Ctrl-C
    command = [sys.executable, "-P", "-m", "chatguard.cli", *argv, "--proc-index"]
    orphaned = signal_when_orphaned(signal.SIGTERM)
    children = [subprocess.Popen([*command, str(i)], preexec_fn=orphaned) for i in range(procs)]

    told_to_stop: list[int] = []

    def stop(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        if frame is not None:
            told_to_stop.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
        if not told_to_stop:  # the operator can tell which child failed first, and how
            ended = next(i for i, child in enumerate(children) if child.poll() is not None)
            code = children[ended].returncode
            print(
                f"chatguard: signaling process {ended} of {procs} exited with code {code};"
                " stopping the others",
                file=sys.stderr,
            )
    finally:
        stop()
        codes = [child.wait() for child in children]
    return next((code for code in codes if code not in (0, -signal.SIGTERM)), 0)
