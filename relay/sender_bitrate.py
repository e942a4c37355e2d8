"""What the relay tells a sender it may send (REMB), from its receiver's REMB, sans-I/O.

Why not the receiver's REMB as is: a receiver's estimate never grows far past what it receives
(Chromium's AIMD caps it near 1.5x its incoming rate). On the strict route the moderation gate
withholds frames (an unsafe scene, a frame that waited too long for its verdict, everything
until the next keyframe after a drop), so the receiver gets a fraction of what the sender sends
and its REMB, forwarded as is, squeezes the sender: lower resolution, lower frame rate, a
picture the model scores worse, more frames withheld. Measured with real Chromium at a 300
kbit/s cap (bench/strict_browser_probe.py): 480x360, qualityLimitationReason "bandwidth",
available bitrate 200 kbit/s, against 640x480 and no limitation on the relay route.

What the receiver's REMB says is what its downlink carries of what it gets. What the relay
withheld never touched that downlink, so the sender is told the receiver's REMB *plus* the rate
the relay withheld over the same interval: on the relay route (nothing withheld) that is the
receiver's REMB unchanged; with the gate withholding, the sender keeps the rate it has, and a
receiver that really is congested (REMB under what it gets) still slows it.
"""

from __future__ import annotations

from typing import Final

MIN_INTERVAL_S: Final = 0.2
"""Shorter intervals between REMBs reuse the last withheld rate (too few packets to measure)."""


class SenderBitrate:
    """One sender's video towards one receiver: REMB in, REMB to send upstream out."""

    __slots__ = ("_at", "_forwarded", "_received", "_received_octets", "withheld_bps")

    def __init__(self) -> None:
        self._at: float | None = None
        self._received = self._received_octets = self._forwarded = 0
        self.withheld_bps = 0
        """The rate the relay withheld over the last measured interval, bits per second."""

    def on_remb(
        self, receiver_bps: int, received: int, received_octets: int, forwarded: int, now: float
    ) -> int:
        """The bitrate to tell the sender for a receiver's REMB of ``receiver_bps``.

        ``received``/``received_octets``: the sender's video packets and bytes the relay got
        so far; ``forwarded``: how many of those packets went to this receiver (counters that
        only grow). The packets' share withheld, times the rate received, is the withheld rate.
        """
        if self._at is None or now - self._at >= MIN_INTERVAL_S:
            if self._at is not None:
                packets = received - self._received
                passed = forwarded - self._forwarded
                if packets > 0 and 0 <= passed <= packets:
                    octets = received_octets - self._received_octets
                    rate = octets * 8 / (now - self._at)
                    self.withheld_bps = int(rate * (packets - passed) / packets)
                else:
                    self.withheld_bps = 0
            self._at = now
            self._received, self._received_octets = received, received_octets
            self._forwarded = forwarded
        return receiver_bps + self.withheld_bps
