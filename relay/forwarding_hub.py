"""Wiring between client legs: which leg's packets go where, and the RTCP the relay answers.

Why a separate module: ``forwarder`` decides on one stream without I/O and
``aiortc_adapter`` owns aiortc's internals; this file is the thin asyncio glue that a reader
follows from "packet in on leg A" to "packet out on leg B". Pairing ("Next") is a call to
:meth:`ForwardingHub.pair`; everything per packet is in :meth:`ForwardingHub.on_rtp`.

RTCP terminated here (the legs are independent RTP sessions):

* PLI/FIR from a receiver -> throttled PLI to the partner's incoming stream;
* NACK from a receiver -> answered from the outgoing stream's ring buffer; what the relay
  never got is NACKed upstream in the source's numbering, and the RTX answer unwrapped;
* REMB from a receiver -> re-addressed to the partner's incoming SSRCs;
* SR from a sender -> re-timed into the receiver's outgoing stream (lip sync, RTT);
* RR and SDES are consumed (counted); the relay sends its own RR about what it receives
  (:meth:`ForwardingHub.send_receiver_reports`, driven by :meth:`run_reports`).

Strict route (:meth:`ForwardingHub.set_moderated`): a moderated leg's video goes to its
``relay.strict.moderation.ModeratedStream`` instead of straight to the forwarder; the frames its
gate releases come back through :meth:`_ModerationSink.release` into the same forwarder
(rewriting, NACK ring, SR translation unchanged). Its cached keyframe is never replayed
(unclassified).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from relay import rtcp, rtp
from relay.aiortc_adapter import AiortcLeg
from relay.forwarder import ForwarderConfig, KeyframeCheck, StreamForwarder
from relay.keyframes import KeyframeCache
from relay.negotiation import (
    keyframe_checks,
    map_extension_ids,
    map_payload_types,
    rtx_payload_types,
)
from relay.reception_stats import ReceiveStats
from relay.strict.block_policy import ModerationPolicy

if TYPE_CHECKING:
    from relay.strict.depacketize import Codec
    from relay.strict.moderation import ModeratedStream, Moderator

_NO_RTX: Final[dict[int, int]] = {}
MAX_INCOMING_SSRCS: Final = 8
"""Incoming SSRCs tracked per client (audio, video, their RTX, plus restarts)."""

ModerationCallback = Callable[[AiortcLeg, str, str, float], None]
"""``(leg, "blocked" | "resumed", label, score)``: for the worker's ``control.Moderation``."""
_DEPACKETIZED: Final[dict[str, Codec]] = {"video/vp8": "vp8", "video/h264": "h264"}


class ForwardingHub:
    """Relays media between paired :class:`AiortcLeg` s of one worker."""

    def __init__(
        self,
        rng: random.Random | None = None,
        replay_keyframe_max_age: float | None = 3.0,
        clock: Callable[[], float] = time.monotonic,
        on_moderation: ModerationCallback | None = None,
    ) -> None:
        """``replay_keyframe_max_age``: on "Next", start the new partner's video with the
        sender's cached last keyframe if it is at most this old (None: never replay).
        ``on_moderation``: called when a moderated leg's video is blocked or resumed."""
        self._rng = rng or random.SystemRandom()
        self.on_moderation = on_moderation
        self._moderated: dict[AiortcLeg, ModeratedStream] = {}
        self._clock = clock
        self.replay_max_age = replay_keyframe_max_age
        self._kf: dict[AiortcLeg, KeyframeCache] = {}
        self._kf_checks: dict[AiortcLeg, dict[int, KeyframeCheck]] = {}
        self.keyframes_replayed = 0
        self._partner: dict[AiortcLeg, AiortcLeg] = {}
        self._fwd: dict[tuple[AiortcLeg, str], StreamForwarder] = {}
        self._pairings = itertools.count(1)
        self._rx: dict[AiortcLeg, dict[int, ReceiveStats]] = {}
        self._rtx_apt: dict[AiortcLeg, dict[int, int]] = {}
        self.rtx_unwrapped = 0
        self.nacks_forwarded = 0
        self.dropped: Counter[str] = Counter()
        self.rtcp_in: Counter[str] = Counter()
        self.pli_sent = 0
        self.retransmitted = 0

    # -- pairing ----------------------------------------------------------------------

    def forwarder(self, dst: AiortcLeg, kind: str) -> StreamForwarder:
        """The outgoing stream of ``kind`` towards ``dst`` (created on first use)."""
        f = self._fwd.get((dst, kind))
        if f is None:
            media = dst.media[kind]
            clock = media.codecs[0].clockRate if media.codecs else 90000
            f = StreamForwarder(
                ForwarderConfig(kind=kind, clock_rate=clock, pt_map={}, out_ssrc=media.out_ssrc),
                self._rng,
            )
            self._fwd[(dst, kind)] = f
        return f

    def add_leg(self, leg: AiortcLeg) -> None:
        """Start keeping reception statistics for a connected client (before pairing)."""
        self._rx.setdefault(leg, {})
        if "video" in leg.media and leg not in self._kf and self.replay_max_age is not None:
            self._kf[leg] = KeyframeCache()
            self._kf_checks[leg] = keyframe_checks(leg.media["video"].codecs)
        if leg not in self._rtx_apt:
            self._rtx_apt[leg] = {
                pt: apt
                for media in leg.media.values()
                for pt, apt in rtx_payload_types(media.codecs).items()
            }

    def set_moderated(
        self, leg: AiortcLeg, moderator: Moderator, policy: ModerationPolicy | None = None
    ) -> ModeratedStream:
        """Strict route: forward ``leg``'s video only when a safe verdict covers it.

        Call from the event loop once the leg is negotiated (before media flows, ideally).
        Events go to ``on_moderation``; a leg stays moderated until :meth:`forget`.
        """
        self.add_leg(leg)
        old = self._moderated.pop(leg, None)
        if old is not None:
            old.close()
        codecs = {
            c.payloadType: _DEPACKETIZED[c.mimeType.lower()]
            for c in leg.media["video"].codecs
            if c.payloadType is not None and c.mimeType.lower() in _DEPACKETIZED
        }
        stream = moderator.open_stream(
            codecs, policy or ModerationPolicy(), _ModerationSink(self, leg)
        )
        self._moderated[leg] = stream
        return stream

    def pair(self, a: AiortcLeg, b: AiortcLeg) -> None:
        """Make ``a`` and ``b`` partners (replacing earlier partners); media flows at once."""
        self.add_leg(a)
        self.add_leg(b)
        self.unpair(a)
        self.unpair(b)
        pairing = next(self._pairings)
        self._partner[a] = b
        self._partner[b] = a
        for src, dst in ((a, b), (b, a)):
            for kind, out_media in dst.media.items():
                in_media = src.media.get(kind)
                if in_media is None:
                    continue
                fwd = self.forwarder(dst, kind)
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
        src: AiortcLeg,
        dst: AiortcLeg,
        fwd: StreamForwarder,
        pairing: int,
        tables: tuple[dict[int, int], dict[int, KeyframeCheck], list[int]],
    ) -> None:
        """Show ``src``'s last keyframe to ``dst`` at once, then wait for a fresh one.

        The cached packets form their own rewriter epoch; the live stream that follows is
        gated until its next keyframe (deltas in between reference frames ``dst`` never
        got), which :meth:`on_rtp` requests with a PLI on the first gated packet.
        """
        cache = self._kf.get(src)
        if cache is None or src in self._moderated:
            return
        now = self._clock()
        packets = cache.packets(now, self.replay_max_age)
        if not packets:
            return
        fwd.set_source(("cached", pairing), *tables)
        for p in packets:
            buf = bytearray(p)
            if fwd.on_rtp(buf, now):
                dst.send(bytes(buf))
        self.keyframes_replayed += 1

    def unpair(self, leg: AiortcLeg) -> None:
        """Stop forwarding to and from ``leg``'s current partner."""
        other = self._partner.pop(leg, None)
        if other is not None:
            self._partner.pop(other, None)

    def forget(self, leg: AiortcLeg) -> None:
        """Drop all state of a leg that closed."""
        self.unpair(leg)
        self._rx.pop(leg, None)
        self._rtx_apt.pop(leg, None)
        self._kf.pop(leg, None)
        self._kf_checks.pop(leg, None)
        moderated = self._moderated.pop(leg, None)
        if moderated is not None:
            moderated.close()
        for key in [k for k in self._fwd if k[0] is leg]:
            del self._fwd[key]

    # -- media ------------------------------------------------------------------------

    def on_rtp(self, leg: AiortcLeg, data: bytes, now: float) -> None:
        """Hot path: one decrypted RTP packet from ``leg``."""
        if len(data) < rtp.RTP_HEADER_LEN:
            self.dropped["too_short"] += 1
            return
        pt = data[1] & 0x7F
        kind = leg.kind_by_pt.get(pt)
        if kind is None:
            self.dropped["unknown_pt"] += 1
            return
        rx = self._rx.get(leg)
        if rx is not None:
            st = rx.get(rtp.ssrc(data))
            if st is None:
                st = self._track_incoming(rx, leg, kind, rtp.ssrc(data))
            if st is not None:
                st.update(rtp.sequence_number(data), rtp.timestamp(data), now)
        moderated = self._moderated.get(leg)
        if moderated is not None:
            if kind == "video":
                if pt in self._rtx_apt.get(leg, _NO_RTX):
                    self.dropped["moderated_rtx"] += 1  # its frame was decided already
                else:
                    moderated.on_packet(data, now)
                return
            if moderated.blocked and moderated.policy.mute_audio_while_blocked:
                self.dropped["muted_while_blocked"] += 1
                return
        elif kind == "video":
            checks = self._kf_checks.get(leg)
            check = checks.get(pt) if checks is not None else None
            if check is not None:
                off = rtp.check_rtp(data)
                if isinstance(off, int):
                    self._kf[leg].on_packet(data, check(data, off, rtp.payload_end(data)), now)
        dst = self._partner.get(leg)
        if dst is None:
            self.dropped["unpaired"] += 1
            return
        fwd = self._fwd.get((dst, kind))
        if fwd is None:
            self.dropped["no_stream"] += 1
            return
        apt = self._rtx_apt.get(leg, _NO_RTX).get(pt)
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
        if fwd.on_rtp(buf, now):
            if not dst.send(bytes(buf)):
                self.dropped["dst_not_connected"] += 1
        elif fwd.waiting_for_keyframe and fwd.keyframe_needed(now):
            self._send_pli(leg, kind, rtp.ssrc(data))

    def _forward_released(
        self, leg: AiortcLeg, packets: Sequence[bytes], restart: bool, now: float
    ) -> None:
        """Packets of a frame the moderation gate released, through the usual forwarder."""
        dst = self._partner.get(leg)
        fwd = None if dst is None else self._fwd.get((dst, "video"))
        if dst is None or fwd is None:
            self.dropped["unpaired"] += len(packets)
            return
        if restart:
            fwd.skip_withheld()
        for p in packets:
            buf = bytearray(p)
            if fwd.on_rtp(buf, now):
                if not dst.send(bytes(buf)):
                    self.dropped["dst_not_connected"] += 1
            elif fwd.waiting_for_keyframe and fwd.keyframe_needed(now):
                self._send_pli(leg, "video", rtp.ssrc(p))

    def _moderation_keyframe_request(self, leg: AiortcLeg, media_ssrc: int, now: float) -> None:
        """The gate needs a keyframe: same throttle as the receiver's own PLIs."""
        dst = self._partner.get(leg)
        fwd = None if dst is None else self._fwd.get((dst, "video"))
        if fwd is not None and fwd.on_keyframe_request(now):
            self._send_pli(leg, "video", media_ssrc)

    def _track_incoming(
        self, rx: dict[int, ReceiveStats], leg: AiortcLeg, kind: str, ssrc: int
    ) -> ReceiveStats | None:
        if len(rx) >= MAX_INCOMING_SSRCS:
            return None  # a client spraying SSRCs does not grow relay state
        codecs = leg.media[kind].codecs
        st = ReceiveStats(codecs[0].clockRate if codecs else 90000)
        rx[ssrc] = st
        return st

    def send_receiver_reports(self, now: float) -> int:
        """Send each leg an RR about the streams the relay receives from it; returns count.

        Call about once a second (:meth:`run_reports`); the sender uses it for loss, jitter
        and RTT, which a browser feeds into its congestion control.
        """
        sent = 0
        for leg, rx in self._rx.items():
            if not rx or not leg.media:
                continue
            sender_ssrc = next(iter(leg.media.values())).out_ssrc
            blocks = [st.report_block(ssrc, now) for ssrc, st in list(rx.items())[:31]]
            if leg.send(rtcp.build_rr(sender_ssrc, blocks)):
                sent += 1
        return sent

    async def run_reports(
        self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Periodic RR task for a relay worker (cancel it to stop)."""
        while True:
            await asyncio.sleep(interval)
            self.send_receiver_reports(clock())

    def _send_pli(self, src: AiortcLeg, kind: str, media_ssrc: int) -> None:
        sender_ssrc = src.media[kind].out_ssrc
        if src.send(rtcp.build_pli(sender_ssrc, media_ssrc)):
            self.pli_sent += 1

    # -- feedback ---------------------------------------------------------------------

    def on_rtcp(self, leg: AiortcLeg, data: bytes, now: float) -> None:
        """One decrypted compound RTCP packet from ``leg``."""
        events, bad = rtcp.parse_rtcp(data)
        if bad:
            self.rtcp_in["malformed"] += bad
        src = self._partner.get(leg)
        for ev in events:
            self.rtcp_in[type(ev).__name__] += 1
            if isinstance(ev, rtcp.Nack):
                self._on_nack(leg, src, ev)
            elif isinstance(ev, rtcp.SenderReport):
                st = self._rx.get(leg, {}).get(ev.ssrc)
                if st is not None:
                    st.on_sender_report(ev.ntp_timestamp, now)
                if src is not None:
                    self._on_sr(leg, src, ev)
            elif src is None:
                continue
            elif isinstance(ev, (rtcp.Pli, rtcp.Fir)):
                self._on_keyframe_request(leg, src, now)
            elif isinstance(ev, rtcp.Remb):
                self._on_remb(leg, src, ev)

    def _stream_for_ssrc(self, leg: AiortcLeg, out_ssrc: int) -> StreamForwarder | None:
        for kind, media in leg.media.items():
            if media.out_ssrc == out_ssrc:
                return self._fwd.get((leg, kind))
        return None

    def _on_nack(self, leg: AiortcLeg, src: AiortcLeg | None, ev: rtcp.Nack) -> None:
        fwd = self._stream_for_ssrc(leg, ev.media_ssrc)
        if fwd is None:
            return
        for p in fwd.on_nack(ev.seqs):
            if not leg.send(bytes(p)):
                return
            self.retransmitted += 1
        # What the relay never received is asked for upstream, in the source's numbering.
        if src is None or fwd.source_ssrc is None:
            return
        upstream = fwd.upstream_nack(ev.seqs)
        if upstream:
            kind = fwd.config.kind
            if src.send(rtcp.build_nack(src.media[kind].out_ssrc, fwd.source_ssrc, upstream)):
                self.nacks_forwarded += 1

    def _on_keyframe_request(self, leg: AiortcLeg, src: AiortcLeg, now: float) -> None:
        fwd = self._fwd.get((leg, "video"))
        if fwd is not None and fwd.source_ssrc is not None and fwd.on_keyframe_request(now):
            self._send_pli(src, "video", fwd.source_ssrc)

    def _on_remb(self, leg: AiortcLeg, src: AiortcLeg, ev: rtcp.Remb) -> None:
        fwd = self._fwd.get((leg, "video"))
        if fwd is None or fwd.source_ssrc is None or "video" not in src.media:
            return
        src.send(rtcp.build_remb(src.media["video"].out_ssrc, ev.bitrate, [fwd.source_ssrc]))

    def _on_sr(self, leg: AiortcLeg, dst: AiortcLeg, ev: rtcp.SenderReport) -> None:
        for kind in dst.media:
            fwd = self._fwd.get((dst, kind))
            if fwd is None or fwd.source_ssrc != ev.ssrc:
                continue
            out_ts = fwd.out_timestamp(ev.ssrc, ev.rtp_timestamp)
            if out_ts is None:
                return
            dst.send(
                rtcp.build_sr(
                    fwd.config.out_ssrc, ev.ntp_timestamp, out_ts, fwd.forwarded, fwd.octets
                )
            )
            return


class _ModerationSink:
    """Where one moderated leg's stream hands its decisions back to the hub."""

    __slots__ = ("_hub", "_leg")

    def __init__(self, hub: ForwardingHub, leg: AiortcLeg) -> None:
        self._hub = hub
        self._leg = leg

    def release(self, packets: Sequence[bytes], restart: bool, now: float) -> None:
        self._hub._forward_released(self._leg, packets, restart, now)

    def request_keyframe(self, media_ssrc: int, now: float) -> None:
        self._hub._moderation_keyframe_request(self._leg, media_ssrc, now)

    def moderation_event(self, state: str, label: str, score: float) -> None:
        if self._hub.on_moderation is not None:
            self._hub.on_moderation(self._leg, state, label, score)
