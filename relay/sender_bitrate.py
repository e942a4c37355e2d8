"""What the relay tells a sender it may send (REMB): the lower of its own estimate of the
sender's uplink and what the receiver can take, sans-I/O.

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

That alone leaves the sender's uplink unmeasured: a receiver that sends no REMB (or a huge one)
let the sender grow to 10-34 Mbit/s on loopback. The relay estimates the uplink itself
(``relay.uplink_estimate``, from arrivals before any hold), and the sender is told the lower
of the two.

On a gated stream even that sum misreads the receiver. A receiving browser that detects overuse
sets its estimate to 0.85x what it received over the last second, and grows it back slowly; on a
gated stream that second often held a hold. Traced with real Chromium on the strict route: the
receiver's REMB stayed at 75-160 kbit/s for 20 s while the own estimate read 350-960 kbit/s, and
the sender fell to 480x360. There the receiver's REMB bounds the sender only while the receiver
reports loss (``LOSSY_FRACTION``, remembered ``LOSS_MEMORY_S``): a downlink that is really
congested drops packets, and the delay it shows first is what the gate's holds look like too.

Without a recent REMB from the receiver, the own estimate goes alone, once a second
(Chromium's receivers' cadence) and at once when it falls; with one, a fall of the own
estimate is told at once too, and the receiver's next REMB brings the minimum again.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

MIN_INTERVAL_S: Final = 0.2
"""Shorter intervals between REMBs reuse the last withheld rate (too few packets to measure)."""
OWN_REMB_INTERVAL_S: Final = 1.0
"""The own estimate alone is sent this often (Chromium's receivers send REMB once a second)."""
RECEIVER_REMB_STALE_S: Final = 2.5
"""A receiver's REMB older than this no longer bounds the sender: it sends none (aiortc and
Chromium send one every 0.2-1 s)."""
PROMPT_DECREASE: Final = 0.97
"""An own estimate under this share of the last REMB sent is told at once (Chromium's 3 %)."""
LOSSY_FRACTION: Final = 0.02
"""A receiver report with this share of packets lost or more (RFC 3550 fraction lost) shows a
congested downlink."""
LOSS_MEMORY_S: Final = 5.0
"""For this long after such a report, the receiver's REMB bounds a gated stream's sender."""

Bound = Literal["own", "receiver", "own_alone", "own_gated"]
"""Which figure the sender was told: the own estimate (lower than the receiver's REMB plus
withheld), the receiver's (lower, or the own estimate not ready yet), the own estimate alone
(no recent REMB from the receiver), or the own estimate on a gated stream whose receiver
reports no loss (its REMB read as what the gate let through, not as congestion)."""


class Remb(NamedTuple):
    """A REMB to send to the sender."""

    bps: int
    bound: Bound


class SenderBitrate:
    """One sender's video towards one receiver: REMB in, REMB to send upstream out."""

    __slots__ = (
        "_at",
        "_forwarded",
        "_lossy_until",
        "_received",
        "_received_octets",
        "_receiver_at",
        "_receiver_bps",
        "_sent_at",
        "_sent_bps",
        "withheld_bps",
    )

    def __init__(self) -> None:
        self._at: float | None = None
        self._received = self._received_octets = self._forwarded = 0
        self.withheld_bps = 0
        """The rate the relay withheld over the last measured interval, bits per second."""
        self._receiver_bps = 0
        self._receiver_at: float | None = None
        self._sent_bps = 0
        self._sent_at: float | None = None
        self._lossy_until = float("-inf")

    def on_remb(
        self,
        receiver_bps: int,
        received: int,
        received_octets: int,
        forwarded: int,
        now: float,
        own_bps: int | None = None,
        gated: bool = False,
    ) -> Remb:
        """What to tell the sender for a receiver's REMB of ``receiver_bps``.

        ``received``/``received_octets``: the sender's video packets and bytes the relay got
        so far; ``forwarded``: how many of those packets went to this receiver (counters that
        only grow). The packets' share withheld, times the rate received, is the withheld rate.
        ``own_bps``: the relay's own estimate of the sender's uplink (None: not ready).
        ``gated``: the moderation gate holds this stream's frames for verdicts; then a
        receiver that reported no loss lately does not bound the sender (its estimate follows
        what the gate let through: a browser that detects overuse sets it to 0.85x what it
        received in the last second, which on a gated stream was often a hold).
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
        self._receiver_bps = receiver_bps + self.withheld_bps
        self._receiver_at = now
        if own_bps is not None and own_bps < self._receiver_bps:
            return self._sent(Remb(own_bps, "own"), now)
        if own_bps is not None and gated and now >= self._lossy_until:
            return self._sent(Remb(own_bps, "own_gated"), now)
        return self._sent(Remb(self._receiver_bps, "receiver"), now)

    def on_receiver_loss(self, fraction_lost: int, now: float) -> None:
        """A receiver report's fraction lost (0-255) for this stream as the receiver gets it."""
        if fraction_lost >= LOSSY_FRACTION * 256:
            self._lossy_until = now + LOSS_MEMORY_S

    def on_own_estimate(self, own_bps: int, now: float) -> Remb | None:
        """The relay's own estimate changed: what to tell the sender now, if anything.

        Without a receiver's REMB in the last ``RECEIVER_REMB_STALE_S``: the own estimate,
        once per ``OWN_REMB_INTERVAL_S`` or at once when it falls. With one: only a fall under
        what the sender was told (the receiver's next REMB sends the minimum anyway).
        """
        falls = own_bps < self._sent_bps * PROMPT_DECREASE
        if self._receiver_at is not None and now - self._receiver_at < RECEIVER_REMB_STALE_S:
            if falls and own_bps < self._receiver_bps:
                return self._sent(Remb(own_bps, "own"), now)
            return None
        if falls or self._sent_at is None or now - self._sent_at >= OWN_REMB_INTERVAL_S:
            return self._sent(Remb(own_bps, "own_alone"), now)
        return None

    def _sent(self, remb: Remb, now: float) -> Remb:
        self._sent_bps, self._sent_at = remb.bps, now
        return remb
