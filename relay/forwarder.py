"""The per-packet forwarding decision for one outgoing stream, sans-I/O.

This is where a relayed packet is *decided on*: it enters as decrypted RTP bytes from one
leg (see ``aiortc_adapter``), and leaves as rewritten RTP bytes for the other leg, or is
dropped with a counted reason. Steps, in order:

1. validate the header (``rtp.check_rtp``); malformed -> drop, count;
2. map the payload type by codec between the legs; unknown PT (e.g. RTX) -> drop, count;
3. video after a source switch: drop until a keyframe starts (the receiver cannot decode
   deltas of a picture it never saw), and say that a PLI should go upstream;
4. rewrite seq/ts/SSRC into the outgoing stream's continuous numbering (``rewriter``);
5. renumber or erase header extensions for the outgoing leg (``rtp.map_extension_ids``); a
   packet the relay held (a frame waiting for its moderation verdict) has its abs-send-time
   moved by the hold (``rtp.delay_abs_send_time``);
6. keep a copy for NACKs (``retransmit``); a resent copy's abs-send-time is moved by the time
   since it was first sent.

The caller owns all I/O and the clock. RTCP from the receiver (NACK, PLI/FIR, REMB) is
handled by :meth:`StreamForwarder.on_nack` / :meth:`on_keyframe_request`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from relay import rtp
from relay.keyframes import KEYFRAME_REQUEST_INTERVAL_S, KeyframeRequestThrottle
from relay.retransmit import RetransmitBuffer
from relay.rewriter import SequenceRewriter

KeyframeCheck = Callable[[rtp.Buffer, int, int], bool]
"""``(packet, payload_start, payload_end) -> is the first packet of a keyframe``."""


@dataclass(slots=True)
class ForwarderConfig:
    """What negotiation on the two legs decided for one outgoing stream."""

    kind: str
    """``"audio"`` or ``"video"``."""
    clock_rate: int
    pt_map: Mapping[int, int]
    """Incoming payload type -> outgoing payload type, matched by codec between the legs."""
    out_ssrc: int
    """SSRC the relay announced for this stream in the receiving leg's SDP."""
    keyframe_checks: Mapping[int, KeyframeCheck] = field(default_factory=dict)
    """Incoming video PT -> keyframe detector; PTs without one are never gated."""
    ext_id_map: Sequence[int] = field(default_factory=lambda: [0] * 256)
    """Incoming extension id -> outgoing id (0 = erase), indexed 0..255."""
    abs_send_time_id: int = 0
    """The receiving leg's abs-send-time extension id (0: not negotiated)."""
    keyframe_request_interval: float = KEYFRAME_REQUEST_INTERVAL_S
    ring_slots: int = 512


class StreamForwarder:
    """Decides on and rewrites every packet of one outgoing stream (one receiver, one kind)."""

    def __init__(self, config: ForwarderConfig, rng: random.Random | None = None) -> None:
        r = rng or random.SystemRandom()
        self.config = config
        self.rewriter = SequenceRewriter(
            config.clock_rate, config.out_ssrc, r.randrange(1 << 16), r.randrange(1 << 32)
        )
        self.ring = RetransmitBuffer(config.ring_slots)
        self.throttle = KeyframeRequestThrottle(config.keyframe_request_interval)
        self._pt_map = dict(config.pt_map)
        self._checks = dict(config.keyframe_checks)
        self._ext_map = list(config.ext_id_map)
        self._abs_send_time_id = config.abs_send_time_id
        self._source_id: Hashable = None
        self._epoch = 0
        self._need_keyframe = config.kind == "video"
        self.forwarded = 0
        self.octets = 0
        """Payload bytes forwarded, for the sender reports the relay emits."""
        self.source_ssrc: int | None = None
        """SSRC of the incoming stream last forwarded (where PLI/REMB/NACK go upstream)."""
        self.dropped: Counter[str] = Counter()
        """Drop counts by reason (``rtp.DropReason`` values and forwarder reasons)."""

    @property
    def waiting_for_keyframe(self) -> bool:
        """True while video is gated after a source switch."""
        return self._need_keyframe

    def set_source(
        self,
        source_id: Hashable,
        pt_map: Mapping[int, int] | None = None,
        keyframe_checks: Mapping[int, KeyframeCheck] | None = None,
        ext_id_map: Sequence[int] | None = None,
    ) -> None:
        """A new partner (or a restarted one) feeds this stream from now on.

        ``source_id`` must be unique per pairing (e.g. a pairing counter), so that late
        packets of a previous pairing are never taken for a switch back. The tables are
        those between the new partner's leg and this stream's leg (None: keep).
        """
        self._source_id = source_id
        self.source_ssrc = None
        if pt_map is not None:
            self._pt_map = dict(pt_map)
        if keyframe_checks is not None:
            self._checks = dict(keyframe_checks)
        if ext_id_map is not None:
            self._ext_map = list(ext_id_map)
        if self.config.kind == "video":
            self._need_keyframe = True

    def on_rtp(self, buf: bytearray, now: float, held_s: float = 0.0) -> bool:
        """Decide on one incoming packet; rewrite it in place. True: send ``buf`` now.

        ``held_s``: how long the relay kept the packet before this (moderation's hold).

        When this returns False for a gated video packet, :meth:`keyframe_needed` tells the
        caller whether to send a PLI upstream (throttled).
        """
        off = rtp.check_rtp(buf)
        if not isinstance(off, int):
            self.dropped[off.value] += 1
            return False
        in_pt = buf[1] & 0x7F
        out_pt = self._pt_map.get(in_pt)
        if out_pt is None:
            self.dropped["unmapped_pt"] += 1
            return False
        if self._need_keyframe:
            check = self._checks.get(in_pt)
            if check is not None and not check(buf, off, rtp.payload_end(buf)):
                self.dropped["awaiting_keyframe"] += 1
                return False
            self._need_keyframe = False
        in_ssrc = rtp.ssrc(buf)
        seq_ts = self.rewriter.translate(
            (self._source_id, self._epoch, in_ssrc),
            rtp.sequence_number(buf),
            rtp.timestamp(buf),
            now,
        )
        if seq_ts is None:
            self.dropped["late"] += 1
            return False
        self.source_ssrc = in_ssrc
        rtp.rewrite_header(buf, out_pt, seq_ts[0], seq_ts[1], self.config.out_ssrc)
        if buf[0] & 0x10 and not rtp.map_extension_ids(buf, self._ext_map):
            self.dropped[rtp.DropReason.TRUNCATED_EXTENSION.value] += 1
            return False
        if held_s > 0.0 and self._abs_send_time_id:
            rtp.delay_abs_send_time(buf, self._abs_send_time_id, held_s)
        self.ring.store(buf, now)
        self.forwarded += 1
        self.octets += len(buf) - off
        return True

    def out_timestamp(self, in_ssrc: int, rtp_ts: int) -> int | None:
        """Translate a source RTP timestamp (e.g. from its SR) into the outgoing stream's."""
        return self.rewriter.out_timestamp((self._source_id, self._epoch, in_ssrc), rtp_ts)

    def skip_withheld(self) -> None:
        """Frames of the source were withheld before reaching this forwarder (moderation).

        Starts a new rewriter epoch at the next packet, so the receiver sees the outgoing
        sequence continue without a gap (no NACKs for packets that will never come), and gates
        video until a keyframe: the receiver's decoder lacks the withheld frames.
        """
        self._epoch += 1
        if self.config.kind == "video":
            self._need_keyframe = True

    def keyframe_needed(self, now: float) -> bool:
        """True if the caller should send a PLI upstream now (gated and not throttled)."""
        return self._need_keyframe and self.throttle.should_forward(now)

    def on_keyframe_request(self, now: float) -> bool:
        """The receiver sent PLI/FIR for this stream; True: send a PLI upstream now."""
        return self.throttle.should_forward(now)

    def on_nack(self, seqs: Iterable[int], now: float) -> list[bytearray]:
        """Copies of the stored packets answering a NACK from the receiver (outgoing seqs),
        their abs-send-time moved by the time since they were first sent (``now``)."""
        out = []
        for p, sent_at in self.ring.answer(seqs):
            copy = bytearray(p)
            if self._abs_send_time_id:
                rtp.delay_abs_send_time(copy, self._abs_send_time_id, now - sent_at)
            out.append(copy)
        return out

    def upstream_nack(self, seqs: Iterable[int]) -> list[int]:
        """Source seqs to NACK upstream: the NACKed packets the relay never got itself.

        Only those of the current source epoch; earlier ones cannot be repaired any more.
        """
        out = []
        for s in seqs:
            if self.ring.get(s) is None:
                src = self.rewriter.source_seq(s)
                if src is not None:
                    out.append(src)
        return out
