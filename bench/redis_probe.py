"""The Redis a signaling benchmark runs against: a throw-away ``redis-server`` it starts here
(``--redis local``), or a URL; and what Redis itself says it did (``INFO``).

Why Redis's own counters: the figures a cluster is sized by (commands and round trips per
pairing, memory per waiting user) are Redis's work, whichever node or client library caused
it; counting on the nodes' side would miss what the pool's script does inside Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.service import ServiceError, end_process, free_port

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RedisCounters:
    """Totals since Redis started; the difference of two readings is the work between them."""

    commands: int
    """Every command executed, those inside the pool's script and pipelines included
    (``INFO commandstats``, summed)."""
    reads: int
    """Read events on client connections (``INFO stats`` ``total_reads_processed``): about one
    per round trip, since a pipeline's commands arrive in one read."""
    cpu_s: float
    """CPU seconds Redis used, user and system (``INFO cpu``): what sizes a Redis."""
    by_command: dict[str, int]

    def minus(self, earlier: RedisCounters) -> RedisCounters:
        names = set(self.by_command) | set(earlier.by_command)
        return RedisCounters(
            self.commands - earlier.commands,
            self.reads - earlier.reads,
            self.cpu_s - earlier.cpu_s,
            {
                name: self.by_command.get(name, 0) - earlier.by_command.get(name, 0)
                for name in sorted(names)
            },
        )


def read_counters(url: str) -> RedisCounters:
    """Redis's counters now; ServiceError naming the URL if it cannot be read."""
    import redis  # the chatguard[redis] extra, checked with the options

    try:
        with redis.Redis.from_url(url, socket_timeout=5) as client:
            stats = client.info("commandstats")
            reads = int(client.info("stats")["total_reads_processed"])
            cpu = client.info("cpu")
    except redis.RedisError as exc:
        raise ServiceError(f"Redis at {url}: {exc}") from None
    by_command = {
        name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()
    }
    cpu_s = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return RedisCounters(sum(by_command.values()), reads, cpu_s, by_command)


def bytes_under(url: str, prefix: str) -> int:
    """Bytes Redis holds for the keys starting with ``prefix`` (``MEMORY USAGE`` of each,
    key and overhead included): one service's share of a Redis that may hold more, and
    unmoved by other keys expiring meanwhile."""
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=30) as client:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key, samples=0)
            return sum(int(size or 0) for size in pipe.execute())
    except redis.RedisError as exc:
        raise ServiceError(f"Redis at {url}: {exc}") from None


class LocalRedis:
    """A ``redis-server`` on a loopback port (a free one unless given: the port of one stopped
    before stands for a restart, empty since nothing is persisted), working in ``workdir`` or
    a folder of its own, for one run; :meth:`stop` ends it and removes a folder it made."""

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError(
                "--redis local needs redis-server (Debian: apt install redis-server)"
            )
        self.port = port or free_port()
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="chatguard-bench-redis-")
            workdir = Path(self._dir.name)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(workdir), "--loglevel", "warning"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        end_process(self.process, 10)
        if self._dir is not None:
            self._dir.cleanup()
