"""Free ports on loopback for servers that tests start."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_range(size: int) -> tuple[int, int]:
    """First and last of `size` consecutive UDP ports free on 127.0.0.1 right now."""
    while True:
        first = random.randrange(20000, 60000)
        try:
            for port in range(first, first + size):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first, first + size - 1
