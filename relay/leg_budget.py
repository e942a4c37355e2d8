"""What one leg may make the relay do per second: the limits and the per-leg meter.

Why: a client controls how much it sends and what its RTCP asks for. Without a cap, one
leg's flood is forwarded in full to its partner, and one NACK naming thousands of sequence
numbers (duplicates included) makes the relay resend thousands of packets. Windows of one
second, counted with a few integer operations, keep the per-packet cost near nothing; the
generous defaults sit far above what a browser sends (about 100-300 packets and 0.3-3 Mbit/s
per second for 640x480 to 720p video with audio).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class LegBudget:
    """Limits per leg; packets over them are dropped and counted, never queued."""

    max_packets_per_s: int = 2_000
    """Incoming RTP packets per second (all the leg's streams together)."""
    max_bits_per_s: int = 8_000_000
    """Incoming RTP bits per second (payload and headers)."""
    max_nack_seqs: int = 256
    """Distinct sequence numbers answered from one NACK (duplicates are answered once)."""
    max_retransmits_per_s: int = 500
    """Packets resent to one receiver per second, all its NACKs together."""


DEFAULT_BUDGET: Final = LegBudget()


class Meter:
    """Counts of one leg in the current one-second window (mutable, owned by the hub)."""

    __slots__ = ("nack_window_end", "octets", "packets", "retransmits", "rtp_window_end")

    def __init__(self) -> None:
        self.rtp_window_end = float("-inf")
        self.packets = 0
        self.octets = 0
        self.nack_window_end = float("-inf")
        self.retransmits = 0

    def retransmit_allowance(self, budget: LegBudget, now: float) -> int:
        """Packets that may still be resent to this leg in the current window."""
        if now >= self.nack_window_end:
            self.nack_window_end = now + 1.0
            self.retransmits = 0
        return budget.max_retransmits_per_s - self.retransmits


def nack_request(seqs: tuple[int, ...], budget: LegBudget) -> tuple[list[int], int]:
    """The distinct seqs of one NACK to act on (first-named first, at most
    ``max_nack_seqs``), and how many named ones are left out (duplicates and excess)."""
    distinct = list(dict.fromkeys(seqs))[: budget.max_nack_seqs]
    return distinct, len(seqs) - len(distinct)
