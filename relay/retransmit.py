"""Answering NACKs from the packets the relay already sent.

Why on the relay: a loss on the relay->receiver leg is repaired fastest (one short RTT) from
a copy the relay kept, and the sender never hears of it. The buffer holds *outgoing* packets
(already rewritten, before SRTP protection) indexed by outgoing seq, so a NACK, which names
outgoing seqs, is answered by a direct slot lookup.

Memory is fixed up front: ``slots`` x ``max_packet`` bytes in one bytearray plus two small
arrays; storing a packet is one slice copy, with no per-packet objects or dict growth.
At 1 Mbit/s video (~115 pkt/s) 512 slots keep ~4.4 s, well beyond any useful NACK RTT.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

from relay import rtp


class RetransmitBuffer:
    """Ring buffer of recently sent outgoing RTP packets, keyed by outgoing seq."""

    __slots__ = ("_data", "_lens", "_seqs", "_times", "_views", "max_packet", "slots")

    def __init__(self, slots: int = 512, max_packet: int = 1500) -> None:
        if slots <= 0 or slots & (slots - 1) or slots > 65536:
            raise ValueError("slots must be a power of two <= 65536 so seq maps to one slot")
        self.slots = slots
        self.max_packet = max_packet
        self._data = bytearray(slots * max_packet)
        self._lens = array("H", bytes(2 * slots))
        self._seqs = array("i", [-1]) * slots
        self._times = array("d", bytes(8 * slots))
        view = memoryview(self._data)
        self._views = [view[i * max_packet : (i + 1) * max_packet] for i in range(slots)]

    def store(self, packet: rtp.Buffer, now: float = 0.0) -> bool:
        """Keep a copy of an outgoing packet sent at ``now``; False (not stored) if it is too
        large."""
        n = len(packet)
        if n > self.max_packet or n < rtp.RTP_HEADER_LEN:
            return False
        seq = (packet[2] << 8) | packet[3]
        i = seq & (self.slots - 1)
        self._views[i][:n] = packet
        self._lens[i] = n
        self._seqs[i] = seq
        self._times[i] = now
        return True

    def get(self, seq: int) -> memoryview | None:
        """The stored packet with this outgoing seq, or None if never stored or overwritten.

        The view aliases the ring: send it (or copy it) before the next :meth:`store`.
        """
        seq &= 0xFFFF
        i = seq & (self.slots - 1)
        if self._seqs[i] != seq:
            return None
        return self._views[i][: self._lens[i]]

    def answer(self, seqs: Iterable[int]) -> Iterator[tuple[memoryview, float]]:
        """Packets to resend for a NACK's sequence numbers, each with the time it was stored
        (sent); missing ones are skipped.

        Missing ones are simply not answered: the receiver will ask again or request a
        keyframe, and forwarding them upstream would need the rewriter's reverse mapping.
        """
        for s in seqs:
            p = self.get(s)
            if p is not None:
                yield p, self._times[s & (self.slots - 1)]

    def clear(self) -> None:
        """Forget all packets (the outgoing stream was reset)."""
        for i in range(self.slots):
            self._seqs[i] = -1
