"""Wiring between client legs: which leg's packets go where, and the RTCP the relay answers.

Why a separate module: ``forwarder`` decides on one stream without I/O and
``aiortc_adapter`` owns aiortc's internals; this file is the thin glue that a reader follows
from "packet in on leg A" to "packet out on leg B". Legs are anything with the
:class:`relay.legs.Leg` members. Everything the hub knows about one leg is in one
:class:`_LegRecord`; pairing ("Next") is a call to :meth:`ForwardingHub.pair`; everything per
packet is in :meth:`ForwardingHub.on_rtp`, and every packet that reaches a forwarder, live,
replayed or released by moderation, leaves through :meth:`ForwardingHub._deliver`.

RTCP terminated here (the legs are independent RTP sessions):

* PLI/FIR from a receiver -> throttled PLI to the partner's incoming stream; every keyframe
  request, the receiver's, the moderation gate's and a switch's, is counted by who needed it
  and whether it went out (:attr:`ForwardingHub.keyframe_requests`);
* NACK from a receiver -> answered from the outgoing stream's ring buffer, each named packet
  once and within the leg's retransmission budget (``relay.leg_budget``); what the relay
  never got is NACKed upstream in the source's numbering, and the RTX answer unwrapped;
* REMB from a receiver -> re-addressed to the partner's incoming SSRCs, plus the rate the relay
  withheld from that receiver (``relay.sender_bitrate``: the gate's withholding is not the
  receiver's congestion), and never more than the relay's own estimate of that sender's uplink
  (``relay.uplink_estimate``, fed with the sender's video as it arrives, before any hold),
  which also goes to the sender alone once a second when its receiver sends no REMB; every
  REMB sent is counted by the figure that bound it (:attr:`ForwardingHub.rembs_sent`);
* SR from a sender -> re-timed into the receiver's outgoing stream (lip sync, RTT);
* RR and SDES are consumed (counted); the relay sends its own RR about what it receives
  (:meth:`ForwardingHub.send_receiver_reports`, driven by :meth:`run_reports`).

Incoming RTP is policed per leg (packets and bits per second, ``relay.leg_budget``): over the
budget, packets are dropped and counted (``dropped["policed_packets"|"policed_bits"]``).

Strict route (:meth:`ForwardingHub.set_moderated`): a moderated leg's video goes to its
``relay.strict.moderation.ModeratedStream`` instead of straight to the forwarder; the frames its
gate releases come back through :meth:`_ModerationSink.release` into the same forwarder
(rewriting, NACK ring, SR translation unchanged). Its cached keyframe is never replayed
(unclassified). This module never imports ``relay.strict`` itself (types only): the caller
hands in the moderator, so a worker that only forwards never loads the model.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from relay import rtcp, rtp
from relay.forwarder import ForwarderConfig, KeyframeCheck, StreamForwarder
from relay.keyframes import KeyframeCache
from relay.leg_budget import DEFAULT_BUDGET, LegBudget, Meter, nack_request
from relay.negotiation import (
    ABS_SEND_TIME,
    extension_id,
    keyframe_checks,
    map_extension_ids,
    map_payload_types,
    rtx_payload_types,
)
from relay.reception_stats import ReceiveStats
from relay.sender_bitrate import Remb, SenderBitrate
from relay.uplink_estimate import UplinkEstimate

if TYPE_CHECKING:
    from relay.legs import Leg
    from relay.strict.block_policy import ModerationPolicy
    from relay.strict.depacketize import Codec
    from relay.strict.moderation import ModeratedStream, Moderator

MAX_INCOMING_SSRCS: Final = 8
"""Incoming SSRCs tracked per client (audio, video, their RTX, plus restarts)."""

ModerationCallback = Callable[["Leg", str, str, float], None]
"""``(leg, "blocked" | "resumed", label, score)``: for the worker's ``control.Moderation``."""
_DEPACKETIZED: Final[dict[str, Codec]] = {"video/vp8": "vp8", "video/h264": "h264"}


@dataclass(slots=True, eq=False)
class _LegRecord:
    """Everything the hub keeps about one leg, from :meth:`ForwardingHub.add_leg` until
    :meth:`ForwardingHub.forget` drops it in one piece."""

    leg: Leg
    rtx_apt: dict[int, int]
    """The leg's RTX payload types -> the payload type they retransmit."""
    keyframes: KeyframeCache | None
    """The leg's last keyframe, for replay on "Next" (None: not video, or replay off)."""
    keyframe_checks: dict[int, KeyframeCheck]
    """What feeds ``keyframes``: incoming video PT -> keyframe detector."""
    rx: dict[int, ReceiveStats] = field(default_factory=dict)
    """Reception statistics per incoming SSRC, for the relay's receiver reports."""
    outgoing: dict[str, StreamForwarder] = field(default_factory=dict)
    """Streams towards this leg by kind; they outlive partners (one numbering per receiver)."""
    partner: _LegRecord | None = None
    moderated: ModeratedStream | None = None
    """Strict route: the gate this leg's video goes through before the partner sees it."""
    meter: Meter = field(default_factory=Meter)
    """This second's packets, bits and retransmissions, against the hub's budget."""
    video_received: int = 0
    video_received_octets: int = 0
    """This leg's video packets and bytes that passed policing (for ``bitrate``)."""
    bitrate: SenderBitrate = field(default_factory=SenderBitrate)
    """What this leg is told it may send, from its current partner's REMB."""
    uplink: UplinkEstimate | None = None
    """The relay's own estimate of this leg's uplink (None: no video, or no abs-send-time)."""
    abs_send_time_id: int = 0
    """The id of abs-send-time in this leg's incoming video."""
    video_ssrc: int | None = None
    """The SSRC of this leg's video (not its RTX), which the relay's own REMB names."""


class ModerationMismatch(ValueError):
    """A moderated leg and an unmoderated one were to be linked; ``leg`` is the unmoderated one."""

    def __init__(self, leg: Leg) -> None:
        super().__init__("a moderated leg cannot be linked to an unmoderated one")
        self.leg = leg


class ForwardingHub:
    """Relays media between paired legs of one worker."""

    def __init__(
        self,
        rng: random.Random | None = None,
        replay_keyframe_max_age: float | None = 3.0,
        clock: Callable[[], float] = time.monotonic,
        on_moderation: ModerationCallback | None = None,
        budget: LegBudget = DEFAULT_BUDGET,
    ) -> None:
        """``replay_keyframe_max_age``: on "Next", start the new partner's video with the
        sender's cached last keyframe if it is at most this old (None: never replay).
        ``on_moderation``: called when a moderated leg's video is blocked or resumed.
        ``budget``: what one leg may send and make the relay resend per second."""
        self._rng = rng or random.SystemRandom()
        self.on_moderation = on_moderation
        self._clock = clock
        self.replay_max_age = replay_keyframe_max_age
        self._legs: dict[Leg, _LegRecord] = {}
        self._pairings = itertools.count(1)
        self.keyframes_replayed = 0
        self.rtx_unwrapped = 0
        self.nacks_forwarded = 0
        self.dropped: Counter[str] = Counter()
        self.rtcp_in: Counter[str] = Counter()
        self.pli_sent = 0
        self.keyframe_requests: Counter[str] = Counter()
        """``<who>_<outcome>``: who needed a keyframe (``receiver`` asked, the moderation
        ``gate``, a ``switch`` of source) and ``sent`` or ``throttled`` (one PLI per
        ``relay.keyframes.KEYFRAME_REQUEST_INTERVAL_S`` per stream answers them all); a
        switch's gated packets ask once each, so only what was sent is counted for it."""
        self.retransmitted = 0
        self.rembs_sent: Counter[str] = Counter()
        """REMBs sent to senders by the figure that bound them (``relay.sender_bitrate.Bound``:
        ``own``, ``receiver``, ``own_alone``, ``own_gated``)."""
        self.budget = budget
        self._max_packets = budget.max_packets_per_s
        self._max_octets = budget.max_bits_per_s // 8
        self.nack_limits: Counter[str] = Counter()
        """NACKed packets not resent: ``nack_repeats`` (named twice, or past
        ``max_nack_seqs``) and ``nack_over_budget`` (past ``max_retransmits_per_s``)."""

    # -- legs and pairing -------------------------------------------------------------

    def add_leg(self, leg: Leg) -> None:
        """Start keeping reception statistics for a connected client (before pairing)."""
        self._record(leg)

    def _record(self, leg: Leg) -> _LegRecord:
        rec = self._legs.get(leg)
        if rec is None:
            replay = "video" in leg.media and self.replay_max_age is not None
            rec = _LegRecord(
                leg,
                rtx_apt={
                    pt: apt
                    for media in leg.media.values()
                    for pt, apt in rtx_payload_types(media.codecs).items()
                },
                keyframes=KeyframeCache() if replay else None,
                keyframe_checks=keyframe_checks(leg.media["video"].codecs) if replay else {},
            )
            video = leg.media.get("video")
            if video is not None:
                rec.abs_send_time_id = extension_id(video.header_extensions, ABS_SEND_TIME)
                rec.uplink = UplinkEstimate() if rec.abs_send_time_id else None
            self._legs[leg] = rec
        return rec

    def forwarder(self, dst: Leg, kind: str) -> StreamForwarder:
        """The outgoing stream of ``kind`` towards ``dst`` (created on first use)."""
        return self._outgoing(self._record(dst), kind)

    def _outgoing(self, dst: _LegRecord, kind: str) -> StreamForwarder:
        f = dst.outgoing.get(kind)
        if f is None:
            media = dst.leg.media[kind]
            clock = media.codecs[0].clockRate if media.codecs else 90000
            config = ForwarderConfig(
                kind=kind,
                clock_rate=clock,
                pt_map={},
                out_ssrc=media.out_ssrc,
                abs_send_time_id=extension_id(media.header_extensions, ABS_SEND_TIME),
            )
            f = StreamForwarder(config, self._rng)
            dst.outgoing[kind] = f
        return f

    def set_moderated(
        self, leg: Leg, moderator: Moderator, policy: ModerationPolicy
    ) -> ModeratedStream:
        """Strict route: forward ``leg``'s video only when a safe verdict covers it.

        Call from the event loop once the leg is negotiated (before media flows, ideally).
        Events go to ``on_moderation``; a leg stays moderated until :meth:`forget`.
        """
        rec = self._record(leg)
        if rec.moderated is not None:
            rec.moderated.close()
        codecs = {
            c.payloadType: _DEPACKETIZED[c.mimeType.lower()]
            for c in leg.media["video"].codecs
            if c.payloadType is not None and c.mimeType.lower() in _DEPACKETIZED
        }
        rec.moderated = moderator.open_stream(codecs, policy, _ModerationSink(self, rec))
        return rec.moderated

    def pair(self, a: Leg, b: Leg) -> None:
        """Make ``a`` and ``b`` partners (replacing earlier partners); media flows at once.

        Raises :class:`ModerationMismatch` when one leg is moderated and the other is not: a
        strict call is moderated both ways, and the relay holds that line itself, whatever
        signaling asked (a parked unmoderated leg must never carry a strict call)."""
        ra, rb = self._record(a), self._record(b)
        if (ra.moderated is None) != (rb.moderated is None):
            raise ModerationMismatch(a if ra.moderated is None else b)
        self._unpair(ra)
        self._unpair(rb)
        ra.bitrate, rb.bitrate = SenderBitrate(), SenderBitrate()
        pairing = next(self._pairings)
        ra.partner, rb.partner = rb, ra
        for src, dst in ((ra, rb), (rb, ra)):
            for kind, out_media in dst.leg.media.items():
                in_media = src.leg.media.get(kind)
                if in_media is None:
                    continue
                fwd = self._outgoing(dst, kind)
                tables = (
                    map_payload_types(in_media.codecs, out_media.codecs),
                    keyframe_checks(in_media.codecs),
                    map_extension_ids(in_media.header_extensions, out_media.header_extensions),
                )
                if kind == "video":
                    self._replay_keyframe(src, dst, fwd, pairing, tables)
                fwd.set_source(pairing, *tables)

    def _replay_keyframe(
        self,
        src: _LegRecord,
        dst: _LegRecord,
        fwd: StreamForwarder,
        pairing: int,
        tables: tuple[dict[int, int], dict[int, KeyframeCheck], list[int]],
    ) -> None:
        """Show ``src``'s last keyframe to ``dst`` at once, then wait for a fresh one.

        The cached packets form their own rewriter epoch; the live stream that follows is
        gated until its next keyframe (deltas in between reference frames ``dst`` never
        got), which :meth:`on_rtp` requests with a PLI on the first gated packet.
        """
        if src.keyframes is None or src.moderated is not None:
            return
        now = self._clock()
        packets = src.keyframes.packets(now, self.replay_max_age)
        if not packets:
            return
        fwd.set_source(("cached", pairing), *tables)
        for p in packets:
            self._deliver(src, dst, fwd, bytearray(p), now)
        self.keyframes_replayed += 1

    def unpair(self, leg: Leg) -> None:
        """Stop forwarding to and from ``leg``'s current partner."""
        rec = self._legs.get(leg)
        if rec is not None:
            self._unpair(rec)

    @staticmethod
    def _unpair(rec: _LegRecord) -> None:
        if rec.partner is not None:
            rec.partner.partner = None
            rec.partner = None

    def outgoing_streams(self, leg: Leg | None = None) -> list[StreamForwarder]:
        """The streams towards ``leg`` (every leg's when None): their counters are what the
        relay forwarded, read by the worker's totals rather than counted again per packet."""
        records = self._legs.values() if leg is None else [self._legs[leg]]
        return [fwd for rec in records for fwd in rec.outgoing.values()]

    def uplink_estimates(self) -> list[int]:
        """The relay's own estimate of each leg's uplink, bits per second (legs with one)."""
        return [
            rec.uplink.bps
            for rec in self._legs.values()
            if rec.uplink is not None and rec.uplink.bps is not None
        ]

    def forget(self, leg: Leg) -> None:
        """Drop all state of a leg that closed."""
        rec = self._legs.pop(leg, None)
        if rec is None:
            return
        self._unpair(rec)
        if rec.moderated is not None:
            rec.moderated.close()

    # -- media ------------------------------------------------------------------------

    def on_rtp(self, leg: Leg, data: bytes, now: float) -> None:
        """Hot path: one decrypted RTP packet from ``leg``."""
        if len(data) < rtp.RTP_HEADER_LEN:
            self.dropped["too_short"] += 1
            return
        pt = data[1] & 0x7F
        kind = leg.kind_by_pt.get(pt)
        if kind is None:
            self.dropped["unknown_pt"] += 1
            return
        src = self._legs.get(leg)
        if src is None:
            self.dropped["unpaired"] += 1
            return
        meter = src.meter
        if now >= meter.rtp_window_end:
            meter.rtp_window_end = now + 1.0
            meter.packets = meter.octets = 0
        meter.packets += 1
        meter.octets += len(data)
        if meter.packets > self._max_packets:
            self.dropped["policed_packets"] += 1
            return
        if meter.octets > self._max_octets:
            self.dropped["policed_bits"] += 1
            return
        if kind == "video":
            src.video_received += 1
            src.video_received_octets += len(data)
            uplink = src.uplink
            if uplink is not None:
                sent_at = rtp.abs_send_time(data, src.abs_send_time_id)
                if sent_at is not None:
                    own_bps = uplink.on_packet(sent_at, len(data), now)
                    if own_bps is not None:
                        self._on_uplink_estimate(src, own_bps, now)
        st = src.rx.get(rtp.ssrc(data))
        if st is None:
            if kind == "video" and pt not in src.rtx_apt:
                src.video_ssrc = rtp.ssrc(data)
            st = self._track_incoming(src, kind, rtp.ssrc(data))
        if st is not None:
            st.update(rtp.sequence_number(data), rtp.timestamp(data), now)
        moderated = src.moderated
        if moderated is not None:
            if kind == "video":
                if pt in src.rtx_apt:
                    self.dropped["moderated_rtx"] += 1  # its frame was decided already
                else:
                    moderated.on_packet(data, now)
                return
            if moderated.blocked and moderated.policy.mute_audio_while_blocked:
                self.dropped["muted_while_blocked"] += 1
                return
        elif kind == "video" and src.keyframes is not None:
            check = src.keyframe_checks.get(pt)
            if check is not None:
                off = rtp.check_rtp(data)
                if isinstance(off, int):
                    src.keyframes.on_packet(data, check(data, off, rtp.payload_end(data)), now)
        dst = src.partner
        if dst is None:
            self.dropped["unpaired"] += 1
            return
        fwd = dst.outgoing.get(kind)
        if fwd is None:
            self.dropped["no_stream"] += 1
            return
        apt = src.rtx_apt.get(pt)
        if apt is None:
            buf = bytearray(data)
        else:
            # A retransmission the relay asked for upstream: restore the original packet.
            if fwd.source_ssrc is None:
                self.dropped["rtx_without_source"] += 1
                return
            unwrapped = rtp.unwrap_rtx(data, apt, fwd.source_ssrc)
            if isinstance(unwrapped, rtp.DropReason):
                self.dropped["rtx_" + unwrapped.value] += 1
                return
            buf = unwrapped
            self.rtx_unwrapped += 1
        self._deliver(src, dst, fwd, buf, now)

    def _deliver(
        self,
        src: _LegRecord,
        dst: _LegRecord,
        fwd: StreamForwarder,
        buf: bytearray,
        now: float,
        held_s: float = 0.0,
    ) -> None:
        """The one way out: ``fwd`` decides on (and rewrites) ``buf``; forwarded, it goes to
        ``dst``; gated waiting for a keyframe, ``src`` is asked for one (throttled).
        ``held_s``: how long the relay kept it (moderation)."""
        if fwd.on_rtp(buf, now, held_s):
            if not dst.leg.send(bytes(buf)):
                self.dropped["dst_not_connected"] += 1
        elif fwd.waiting_for_keyframe and fwd.keyframe_needed(now):
            self._send_pli(src, fwd.config.kind, rtp.ssrc(buf), "switch")

    def _forward_released(
        self, src: _LegRecord, packets: Sequence[bytes], restart: bool, now: float, held_s: float
    ) -> None:
        """Packets of a frame the moderation gate released, through the usual forwarder."""
        dst = src.partner
        fwd = None if dst is None else dst.outgoing.get("video")
        if dst is None or fwd is None:
            self.dropped["unpaired"] += len(packets)
            return
        if restart:
            fwd.skip_withheld()
        for p in packets:
            self._deliver(src, dst, fwd, bytearray(p), now, held_s)

    def _moderation_keyframe_request(self, src: _LegRecord, media_ssrc: int, now: float) -> None:
        """The gate needs a keyframe: same throttle as the receiver's own PLIs."""
        fwd = None if src.partner is None else src.partner.outgoing.get("video")
        if fwd is not None:
            self._request_keyframe(src, fwd, media_ssrc, "gate", now)

    @staticmethod
    def _track_incoming(src: _LegRecord, kind: str, ssrc: int) -> ReceiveStats | None:
        if len(src.rx) >= MAX_INCOMING_SSRCS:
            return None  # a client spraying SSRCs does not grow relay state
        codecs = src.leg.media[kind].codecs
        st = ReceiveStats(codecs[0].clockRate if codecs else 90000)
        src.rx[ssrc] = st
        return st

    def send_receiver_reports(self, now: float) -> int:
        """Send each leg an RR about the streams the relay receives from it; returns count.

        Call about once a second (:meth:`run_reports`); the sender uses it for loss, jitter
        and RTT, which a browser feeds into its congestion control.
        """
        sent = 0
        for rec in self._legs.values():
            if not rec.rx or not rec.leg.media:
                continue
            sender_ssrc = next(iter(rec.leg.media.values())).out_ssrc
            blocks = [st.report_block(ssrc, now) for ssrc, st in list(rec.rx.items())[:31]]
            if rec.leg.send(rtcp.build_rr(sender_ssrc, blocks)):
                sent += 1
        return sent

    async def run_reports(
        self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Periodic RR task for a relay worker (cancel it to stop)."""
        while True:
            await asyncio.sleep(interval)
            self.send_receiver_reports(clock())

    def _request_keyframe(
        self, src: _LegRecord, fwd: StreamForwarder, media_ssrc: int, who: str, now: float
    ) -> None:
        """``who`` needs a keyframe of ``src``'s stream that feeds ``fwd``: a PLI, throttled."""
        if fwd.on_keyframe_request(now):
            self._send_pli(src, "video", media_ssrc, who)
        else:
            self.keyframe_requests[who + "_throttled"] += 1

    def _send_pli(self, src: _LegRecord, kind: str, media_ssrc: int, who: str) -> None:
        sender_ssrc = src.leg.media[kind].out_ssrc
        if src.leg.send(rtcp.build_pli(sender_ssrc, media_ssrc)):
            self.pli_sent += 1
            self.keyframe_requests[who + "_sent"] += 1

    # -- feedback ---------------------------------------------------------------------

    def on_rtcp(self, leg: Leg, data: bytes, now: float) -> None:
        """One decrypted compound RTCP packet from ``leg``."""
        events, bad = rtcp.parse_rtcp(data)
        if bad:
            self.rtcp_in["malformed"] += bad
        rec = self._legs.get(leg)
        src = None if rec is None else rec.partner
        for ev in events:
            self.rtcp_in[type(ev).__name__] += 1
            if rec is None:
                continue
            if isinstance(ev, rtcp.Nack):
                self._on_nack(rec, src, ev, now)
            elif isinstance(ev, rtcp.SenderReport):
                st = rec.rx.get(ev.ssrc)
                if st is not None:
                    st.on_sender_report(ev.ntp_timestamp, now)
                if src is not None:
                    self._on_sr(src, ev)
                    self._on_reception_reports(rec, src, ev.reports, now)
            elif src is None:
                continue
            elif isinstance(ev, rtcp.ReceiverReport):
                self._on_reception_reports(rec, src, ev.reports, now)
            elif isinstance(ev, (rtcp.Pli, rtcp.Fir)):
                self._on_keyframe_request(rec, src, now)
            elif isinstance(ev, rtcp.Remb):
                self._on_remb(rec, src, ev, now)

    @staticmethod
    def _stream_for_ssrc(rec: _LegRecord, out_ssrc: int) -> StreamForwarder | None:
        for kind, media in rec.leg.media.items():
            if media.out_ssrc == out_ssrc:
                return rec.outgoing.get(kind)
        return None

    def _on_nack(self, rec: _LegRecord, src: _LegRecord | None, ev: rtcp.Nack, now: float) -> None:
        fwd = self._stream_for_ssrc(rec, ev.media_ssrc)
        if fwd is None:
            return
        seqs, repeats = nack_request(ev.seqs, self.budget)
        if repeats:
            self.nack_limits["nack_repeats"] += repeats
        allowance = rec.meter.retransmit_allowance(self.budget, now)
        packets = fwd.on_nack(seqs, now)
        if len(packets) > allowance:
            self.nack_limits["nack_over_budget"] += len(packets) - max(allowance, 0)
            del packets[max(allowance, 0) :]
        rec.meter.retransmits += len(packets)
        for p in packets:
            if not rec.leg.send(bytes(p)):
                return
            self.retransmitted += 1
        # What the relay never received is asked for upstream, in the source's numbering.
        if src is None or fwd.source_ssrc is None:
            return
        upstream = fwd.upstream_nack(seqs)
        if upstream:
            sender_ssrc = src.leg.media[fwd.config.kind].out_ssrc
            if src.leg.send(rtcp.build_nack(sender_ssrc, fwd.source_ssrc, upstream)):
                self.nacks_forwarded += 1

    def _on_keyframe_request(self, rec: _LegRecord, src: _LegRecord, now: float) -> None:
        fwd = rec.outgoing.get("video")
        if fwd is not None and fwd.source_ssrc is not None:
            self._request_keyframe(src, fwd, fwd.source_ssrc, "receiver", now)

    def _on_remb(self, rec: _LegRecord, src: _LegRecord, ev: rtcp.Remb, now: float) -> None:
        fwd = rec.outgoing.get("video")
        if fwd is None or fwd.source_ssrc is None or "video" not in src.leg.media:
            return
        own_bps = None if src.uplink is None else src.uplink.bps
        remb = src.bitrate.on_remb(
            ev.bitrate,
            src.video_received,
            src.video_received_octets,
            fwd.forwarded,
            now,
            own_bps,
            gated=src.moderated is not None,
        )
        self._send_remb(src, remb, fwd.source_ssrc)

    @staticmethod
    def _on_reception_reports(
        rec: _LegRecord, src: _LegRecord, reports: tuple[rtcp.ReportBlock, ...], now: float
    ) -> None:
        """``rec`` says how much of ``src``'s video it lost: a gated stream's sender is bound
        by ``rec``'s REMB only while it loses packets (``relay.sender_bitrate``)."""
        fwd = rec.outgoing.get("video")
        if fwd is None:
            return
        for block in reports:
            if block.ssrc == fwd.config.out_ssrc:
                src.bitrate.on_receiver_loss(block.fraction_lost, now)

    def _on_uplink_estimate(self, src: _LegRecord, own_bps: int, now: float) -> None:
        """The relay's own estimate of ``src``'s uplink changed: tell ``src`` if it is due."""
        remb = src.bitrate.on_own_estimate(own_bps, now)
        if remb is not None and src.video_ssrc is not None:
            self._send_remb(src, remb, src.video_ssrc)

    def _send_remb(self, src: _LegRecord, remb: Remb, media_ssrc: int) -> None:
        out_ssrc = src.leg.media["video"].out_ssrc
        if src.leg.send(rtcp.build_remb(out_ssrc, remb.bps, [media_ssrc])):
            self.rembs_sent[remb.bound] += 1

    @staticmethod
    def _on_sr(dst: _LegRecord, ev: rtcp.SenderReport) -> None:
        """``ev`` came from ``dst``'s partner: re-time it into ``dst``'s outgoing stream."""
        for fwd in dst.outgoing.values():
            if fwd.source_ssrc != ev.ssrc:
                continue
            out_ts = fwd.out_timestamp(ev.ssrc, ev.rtp_timestamp)
            if out_ts is None:
                return
            dst.leg.send(
                rtcp.build_sr(
                    fwd.config.out_ssrc, ev.ntp_timestamp, out_ts, fwd.forwarded, fwd.octets
                )
            )
            return


class _ModerationSink:
    """Where one moderated leg's stream hands its decisions back to the hub."""

    __slots__ = ("_hub", "_src")

    def __init__(self, hub: ForwardingHub, src: _LegRecord) -> None:
        self._hub = hub
        self._src = src

    def release(self, packets: Sequence[bytes], restart: bool, now: float, held_s: float) -> None:
        self._hub._forward_released(self._src, packets, restart, now, held_s)

    def request_keyframe(self, media_ssrc: int, now: float) -> None:
        self._hub._moderation_keyframe_request(self._src, media_ssrc, now)

    def moderation_event(self, state: str, label: str, score: float) -> None:
        if self._hub.on_moderation is not None:
            self._hub.on_moderation(self._src.leg, state, label, score)
