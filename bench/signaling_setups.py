"""The ways `chatguard bench signaling` starts the service it measures, named for ``--compare``:
``memory`` (one process, its pool in memory), ``redis`` (one process, the pool in Redis) and
``redis-procsN`` (``serve --procs N``: N processes on one port sharing the pool in Redis).

Why named setups: the cluster's question is a ratio (two processes on Redis against one in
memory), and a ratio is only worth quoting when both sides ran in the same run, on the same
machine, minutes apart.
"""

from __future__ import annotations

import argparse
import re
import uuid
from dataclasses import dataclass

_NAME = re.compile(r"(memory|redis)(?:-procs([1-9]\d*))?")


@dataclass(frozen=True)
class Setup:
    procs: int = 1
    redis: bool = False

    @property
    def name(self) -> str:
        if not self.redis:
            return "memory"
        return "redis" if self.procs == 1 else f"redis-procs{self.procs}"

    def serve_args(self, redis_url: str | None) -> list[str]:
        """``chatguard serve``'s options for this setup (signaling alone, no admin listener:
        ``--procs`` children would each need a port of their own, and nothing here reads it)."""
        args = ["--relay-workers", "0", "--admin-port", "0", "--procs", str(self.procs)]
        if self.redis:
            assert redis_url is not None, "a Redis setup without a Redis"
            args += ["--redis", redis_url]
        return args


def parse_setup(text: str) -> Setup:
    """``memory``, ``redis`` or ``redis-procsN``; ArgumentTypeError naming the choices."""
    match = _NAME.fullmatch(text.strip())
    procs = int(match.group(2) or 1) if match else 0
    if match is None or (match.group(1) == "memory" and procs > 1):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a setup is memory, redis or redis-procsN (N processes sharing one "
            "pool in Redis), e.g. memory,redis,redis-procs2"
        )
    return Setup(procs, match.group(1) == "redis")


def comma_setups(text: str) -> list[Setup]:
    """The type of ``--compare``: comma-separated setups, each once."""
    setups = [parse_setup(part) for part in text.split(",") if part.strip()]
    if not setups or len({s.name for s in setups}) < len(setups):
        raise argparse.ArgumentTypeError(f"{text!r}: name each setup once, e.g. memory,redis")
    return setups


def new_key_prefix() -> str:
    """A Redis key prefix for one service: a given Redis keeps whatever else it holds, each
    service starts with an empty pool, and its keys can be counted apart."""
    return f"cg-bench-{uuid.uuid4().hex[:12]}:"


def service_config(
    server_compression: bool, key_prefix: str, interest_fallback_s: float | None = None
) -> str:
    """The TOML the benchmark's service starts with: its key prefix, the options under test,
    and no drain: stopped, it exits at once, before the benchmark stops its Redis (a
    ``--procs`` child still draining when its Redis went away was seen to hang for good)."""
    lines = ["[server]", f"websocket_compression = {str(server_compression).lower()}"]
    lines += ["drain_timeout_s = 0"]
    lines += ["[cluster]", f'key_prefix = "{key_prefix}"']
    if interest_fallback_s is not None:
        lines += ["[matchmaking]", f"interest_fallback_s = {interest_fallback_s:g}"]
    return "\n".join(lines) + "\n"
