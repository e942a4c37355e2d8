"""Free ports on loopback for servers that tests start."""

from __future__ import annotations

import random
import socket

from bench.service import free_port

__all__ = ["free_port", "free_tcp_range", "free_udp_range"]


def free_udp_range(size: int) -> tuple[int, int]:
    """First and last of `size` consecutive UDP ports free on 127.0.0.1 right now."""
    return _free_range(size, socket.SOCK_DGRAM)


def free_tcp_range(size: int) -> tuple[int, int]:
    """First and last of `size` consecutive TCP ports free on 127.0.0.1 right now, below
    Linux's ephemeral range (32768 and up): a port a server derives from another (the next
    one) is then not taken meanwhile by some process's outgoing connection."""
    return _free_range(size, socket.SOCK_STREAM)


def _free_range(size: int, kind: socket.SocketKind) -> tuple[int, int]:
    while True:
        first = random.randrange(20000, 32768 - size)
        try:
            for port in range(first, first + size):
                with socket.socket(socket.AF_INET, kind) as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first, first + size - 1
