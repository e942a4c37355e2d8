"""A relay worker process: terminates WebRTC legs for signaling and forwards media between them.

The worker is a control-plane client of signaling (``relay.control``): it dials the signaling
URL, says hello, reports its load every second, and opens, links, unlinks and closes legs when
told to. Media never leaves this process: ``relay.forwarding_hub.ForwardingHub`` forwards RTP
between the legs' ``AiortcLeg`` s. When the signaling connection drops, every leg is closed
(signaling has forgotten them and will re-place the calls) and the worker dials again with
back-off; a worker that crashes takes only its own legs with it.

Fault boundary: what one client sends must cost only its own leg. Offers and candidates are
checked (``relay.admission``) before aiortc sees them; each leg's control work runs in its own
lane (``relay.lanes``: in order per leg, concurrent across legs) inside a guard, and so do its
media callbacks (``AiortcLeg``'s ``on_fault``): an exception there closes that leg, answers
``Refused`` with the reason, is counted (``RelayTotals.defences``) and logged once, and never
reaches the control loop.

The strict route (``relay.strict``: the model, onnxruntime, the Cython frame code) is imported
on the first moderated leg, not before. Signaling configures every worker's moderation policy at
connect, whatever its routes; the worker keeps that as plain data until a leg needs it, so a
worker that only forwards never loads any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import websockets
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from relay import admission
from relay import control as c
from relay.admission import LegRefused
from relay.aiortc_adapter import AiortcLeg
from relay.forwarding_hub import ForwardingHub, ModerationMismatch
from relay.ice_gathering import (
    DEFAULT_GATHERING,
    GatheringPolicy,
    interface_addresses,
    restrict_gathering,
    select_addresses,
)
from relay.ice_tcp import IceTcpListener
from relay.ice_udp_mux import UdpMux
from relay.lanes import Lanes
from relay.signaling_tls import client_context
from relay.totals import RelayTally

if TYPE_CHECKING:
    from relay.legs import Leg
    from relay.strict.block_policy import ModerationPolicy
    from relay.strict.gate import GateConfig
    from relay.strict.moderation import Moderator

log = logging.getLogger("chatguard.relay")

RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class _Leg:
    pc: RTCPeerConnection
    relay_leg: AiortcLeg | None = None
    reported: set[str] = field(default_factory=set)
    candidates: int = 0
    """Remote candidates handed to aiortc (the offer's and trickled ones)."""


class _CpuMeter:
    """CPU used by this process between two readings, in % of one core."""

    def __init__(self) -> None:
        self._last_cpu = self._cpu_seconds()
        self._last_wall = time.monotonic()

    @staticmethod
    def _cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def read(self) -> float:
        cpu, wall = self._cpu_seconds(), time.monotonic()
        percent = 100.0 * (cpu - self._last_cpu) / max(wall - self._last_wall, 1e-6)
        self._last_cpu, self._last_wall = cpu, wall
        return percent


def _rss_bytes() -> int:
    with contextlib.suppress(OSError), open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return 0


class RelayWorker:
    """One worker's legs and its control connection."""

    def __init__(
        self,
        signaling_url: str,
        token: str,
        worker_id: str,
        max_legs: int,
        ice_tcp_port: int = 0,
        gathering: GatheringPolicy = DEFAULT_GATHERING,
        ca_file: str = "",
    ) -> None:
        """``ice_tcp_port``: where browsers whose UDP is blocked reach this worker over TCP
        (RFC 6544 passive candidates); 0: UDP only. ``gathering``: the addresses and UDP
        ports every leg's answer offers (``relay.ice_gathering``). ``ca_file``: what to trust
        for a ``wss://`` signaling URL (``relay.signaling_tls``); empty: the system's CAs."""
        self.gathering = gathering
        self.signaling_url = signaling_url
        self.tls = client_context(signaling_url, ca_file)
        self.token = token
        self.worker_id = worker_id
        self.max_legs = max_legs
        self.hub = ForwardingHub(on_moderation=self._on_moderation)
        self.tally = RelayTally(self.hub)
        self.legs: dict[str, _Leg] = {}
        self._leg_ids: dict[Leg, str] = {}
        self.moderation_settings: c.Configure | None = None
        """Signaling's moderation policy as sent (None: the defaults); read on moderated legs."""
        self.ice = RTCConfiguration(iceServers=[])  # never aiortc's default public STUN
        self._moderator: Moderator | None = None
        self.moderation_ready: bool | None = None
        self.moderation_error = ""
        self._preparing: asyncio.Task[None] | None = None
        self._pending_sends: set[asyncio.Task[None]] = set()
        self.draining = False
        self._ws: websockets.ClientConnection | None = None
        self._cpu = _CpuMeter()
        self._lanes = Lanes()
        self.defences: Counter[str] = Counter()
        """Refusals, ignored candidates and caught faults by kind (sent in ``Load``)."""
        self.ice_tcp = IceTcpListener(ice_tcp_port) if ice_tcp_port else None
        self.udp_mux: UdpMux | None = None

    # -- connection to signaling ------------------------------------------------------------

    async def run(self) -> None:
        """Serve signaling until cancelled, re-dialling whenever the connection drops."""
        reports = asyncio.create_task(self.hub.run_reports())
        attempt = 0
        await self._start_ice_tcp()
        await self._start_udp_mux()
        if not self.gathering.is_default:
            log.info("ICE host candidates: %s", self.gathering.describe())
        try:
            while True:
                try:
                    async with websockets.connect(
                        self.signaling_url, max_size=c.MAX_FRAME_BYTES, ssl=self.tls
                    ) as ws:
                        attempt = 0
                        await self._serve(ws)
                    log.info("signaling closed the control connection")  # 1000 or 1001
                except websockets.ConnectionClosed as exc:
                    # 1012: signaling is restarting or shutting down, as it does
                    restart = exc.rcvd is not None and exc.rcvd.code == 1012
                    level = logging.INFO if restart else logging.WARNING
                    log.log(level, "signaling closed the control connection: %s", exc)
                except (OSError, websockets.WebSocketException) as exc:
                    log.warning("cannot reach signaling at %s: %s", self.signaling_url, exc)
                except Exception:  # a bug on the control path: re-dial, never exit
                    self.defences["fault_control"] += 1
                    log.exception("relay worker %s: control loop failed", self.worker_id)
                finally:
                    self._ws = None
                    await self._close_all_legs()
                delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
                attempt += 1
                await asyncio.sleep(delay)
        finally:
            reports.cancel()
            await self._close_all_legs()
            if self.ice_tcp is not None:
                await self.ice_tcp.close()
            if self.udp_mux is not None:
                self.udp_mux.close()
            if self._moderator is not None:
                await self._moderator.aclose()

    async def _start_ice_tcp(self) -> None:
        """A port that cannot be bound costs TCP reachability, not the worker."""
        if self.ice_tcp is None:
            return
        try:
            await self.ice_tcp.start()
        except OSError as exc:
            log.error("ICE-TCP port %d unavailable, serving UDP only: %s", self.ice_tcp.port, exc)
            self.ice_tcp = None
            return
        log.info("ICE-TCP passive candidates on port %d", self.ice_tcp.port)

    async def _start_udp_mux(self) -> None:
        """The shared UDP port on every address the worker offers; one that cannot be bound
        costs the firewall-friendly port (legs get ports of their own), not the worker."""
        port = self.gathering.shared_udp_port
        if not port:
            return
        hosts = select_addresses(interface_addresses(), self.gathering.gather_from)
        mux = UdpMux(port, hosts)
        try:
            await mux.start()
        except OSError as exc:
            log.error("UDP port %d unavailable, a port per leg instead: %s", port, exc)
            return
        self.udp_mux = mux

    async def _serve(self, ws: websockets.ClientConnection) -> None:
        self._ws = ws
        await self._send(
            c.Hello(
                worker_id=self.worker_id,
                token=self.token,
                pid=os.getpid(),
                max_sessions=self.max_legs,
            )
        )
        log.info("relay worker %s connected to %s", self.worker_id, self.signaling_url)
        loader = asyncio.create_task(self._report_load())
        try:
            async for raw in ws:
                try:
                    message = c.decode_signaling_message(raw)
                except c.ControlError as exc:
                    log.error("ignoring a control message: %s", exc)
                    continue
                try:
                    await self._handle(message)
                except Exception:  # the per-leg guards should have caught it: still, go on
                    self.defences["fault_control"] += 1
                    log.exception("relay worker %s: control message failed", self.worker_id)
        finally:
            loader.cancel()

    async def _send(self, message: c.WorkerMessage) -> None:
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(c.encode(message))

    async def _report_load(self) -> None:
        while True:
            await self._send(
                c.Load(
                    legs=len(self.legs),
                    cpu_percent=self._cpu.read(),
                    rss_bytes=_rss_bytes(),
                    draining=self.draining,
                    moderation=self._moderation_load(),
                    moderation_ready=self.moderation_ready,
                    moderation_error=self.moderation_error,
                    totals=self.tally.totals(self._all_defences()),
                    sender_estimates=self.tally.sender_estimates(),
                )
            )
            await asyncio.sleep(c.LOAD_INTERVAL_S)

    def _all_defences(self) -> Counter[str]:
        """The worker's refusals and its moderated streams' decode limits, together."""
        if self._moderator is None:
            return self.defences
        return self.defences + self._moderator.defences

    def _moderation_load(self) -> c.ModerationLoad | None:
        if self._moderator is None:
            return None
        self.tally.absorb(self._moderator.meter, self._moderator.batcher.stats.take_run_s())
        return self._moderator.report(c.LOAD_INTERVAL_S)

    # -- control messages -------------------------------------------------------------------

    async def _handle(self, message: c.SignalingMessage) -> None:
        """Decide at once what needs no waiting (admission, bookkeeping); hand each leg's
        aiortc work to its lane, so that one leg never holds up the next message."""
        match message:
            case c.Configure():
                self._configure(message)
            case c.OpenLeg(leg=leg_id, offer=offer, moderated=moderated):
                await self._open_leg(leg_id, offer, moderated)
            case c.AddCandidate():
                await self._add_candidate(message)
            case c.Link(first=first, second=second):
                self._in_lane((first, second), "link", lambda: self._link(first, second))
            case c.Unlink(leg=leg_id):
                self._in_lane((leg_id,), "unlink", lambda: self._unlink(leg_id))
            case c.CloseLeg(leg=leg_id):
                self._in_lane((leg_id,), "close", lambda: self._close_leg(leg_id))
            case c.Drain():
                self.draining = True
                log.info("relay worker %s draining: no new legs", self.worker_id)

    def _in_lane(
        self, legs: tuple[str, ...], what: str, work: Callable[[], Awaitable[None]]
    ) -> None:
        self._lanes.submit(legs, lambda: self._guarded(legs, what, work))

    async def _guarded(
        self, legs: tuple[str, ...], what: str, work: Callable[[], Awaitable[None]]
    ) -> None:
        """The fault boundary: whatever ``work`` raises costs ``legs`` and nothing else."""
        try:
            await work()
        except LegRefused as exc:
            await self._refuse(legs, exc.code, f"{what}: {exc}")
        except Exception as exc:
            await self._refuse(legs, f"fault_{what}", f"{what} failed: {exc!r}", exc)

    async def _refuse(
        self, legs: tuple[str, ...], code: str, reason: str, fault: Exception | None = None
    ) -> None:
        """Close ``legs``, tell signaling why, count it; one log line (with the traceback of
        an unexpected fault)."""
        self.defences[code] += 1
        level = logging.INFO if fault is None else logging.WARNING  # a client's doing, or ours
        log.log(level, "leg %s refused: %s", "+".join(legs), reason, exc_info=fault)
        for leg_id in legs:
            await self._close_leg(leg_id)
            await self._send(c.Refused(leg=leg_id, reason=reason[:500]))

    async def _link(self, first: str, second: str) -> None:
        """Refuses the one leg at fault (unknown, or unmoderated beside a moderated one)."""
        a, b = self.legs.get(first), self.legs.get(second)
        if a is None or a.relay_leg is None or b is None or b.relay_leg is None:
            missing = first if a is None or a.relay_leg is None else second
            self.defences["unknown_leg"] += 1
            await self._send(c.Refused(leg=missing, reason="unknown leg"))
            return
        try:
            self.hub.pair(a.relay_leg, b.relay_leg)
        except ModerationMismatch as refused:
            unmoderated = first if refused.leg is a.relay_leg else second
            self.defences["link_moderation_mismatch"] += 1
            log.warning("refused to link legs %s and %s: %s", first, second, refused)
            await self._send(c.Refused(leg=unmoderated, reason=str(refused)))

    async def _unlink(self, leg_id: str) -> None:
        leg = self.legs.get(leg_id)
        if leg is not None and leg.relay_leg is not None:
            self.hub.unpair(leg.relay_leg)

    def _configure(self, message: c.Configure) -> None:
        """Signaling's moderation policy and ICE settings; apply to legs opened from now on."""
        servers = [RTCIceServer(urls=message.stun_url)] if message.stun_url else []
        self.ice = RTCConfiguration(iceServers=servers)
        self.moderation_settings = message
        block = message.block
        log.info(
            "moderation policy: block %s",
            "the model's default list"
            if block is None
            else ", ".join(f"{k}>={v}" for k, v in block.items()),
        )
        preparing = self._preparing is not None and not self._preparing.done()
        if message.strict and self._moderator is None and not preparing:  # or failed before
            self._preparing = asyncio.create_task(self._prepare_moderation())

    async def _prepare_moderation(self) -> None:
        """Signaling runs a strict route: load the model and run it once, off the event loop,
        so that a worker that cannot moderate says so in its load reports (and is given no
        strict calls) instead of failing its first strict call."""
        try:
            self._moderator = await asyncio.to_thread(_tested_moderator, self._strict_settings()[1])
        except Exception as exc:  # a missing file, a broken model, a missing library: all say no
            self.moderation_ready = False
            self.moderation_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("relay worker %s cannot moderate: %s", self.worker_id, self.moderation_error)
        else:
            self.moderation_ready = True
            log.info("relay worker %s: moderation model loaded and tested", self.worker_id)

    def _strict_settings(self) -> tuple[ModerationPolicy, GateConfig]:
        """Signaling's moderation settings as the strict route's own types. Imports
        ``relay.strict``: call only when a leg is moderated (or the model is to be loaded)."""
        from relay.strict.block_policy import DEFAULT_THRESHOLDS, ModerationPolicy
        from relay.strict.gate import GateConfig

        settings = self.moderation_settings
        if settings is None:
            return ModerationPolicy(), GateConfig()
        policy = ModerationPolicy(
            thresholds=DEFAULT_THRESHOLDS if settings.block is None else settings.block,
            mute_audio_while_blocked=settings.mute_audio_while_blocked,
            reference_margin=settings.reference_margin,
        )
        gate = GateConfig(
            verdict_ttl_s=settings.verdict_ttl_s,
            min_classifications_per_s=settings.min_classifications_per_s,
            resume_after_safe=settings.resume_after_safe,
            alert_s=settings.alert_s,
            alert_classifications_per_s=settings.alert_classifications_per_s,
            scene_peak_cells=settings.scene_peak_cells,
            scene_peak_threshold=settings.scene_peak_threshold,
            detail_growth=settings.detail_growth,
            settle_s=settings.settle_s,
        )
        return policy, gate

    def _moderate(self, relay_leg: AiortcLeg) -> None:
        """Gate ``relay_leg``'s video. The first call imports ``relay.strict`` and loads the
        model (seconds, once per process): workers that only forward never pay for it."""
        from relay.strict.decision_log import enable as enable_decision_log
        from relay.strict.moderation import Moderator

        policy, gate = self._strict_settings()
        if self._moderator is None:
            self._moderator = Moderator.default(gate)
        self._moderator.gate_config = gate  # streams take these when they open
        if self.moderation_settings is not None:
            self._moderator.max_pixels = self.moderation_settings.max_decoded_pixels
            self._moderator.decode_budget = self.moderation_settings.decode_budget
            self._moderator.decision_log = self.moderation_settings.decision_log
            if self._moderator.decision_log:
                enable_decision_log()
        self.hub.set_moderated(relay_leg, self._moderator, policy)

    def _on_moderation(self, relay_leg: Leg, state: str, label: str, score: float) -> None:
        leg_id = self._leg_ids.get(relay_leg)
        if leg_id is None or state not in ("blocked", "resumed"):
            return
        threshold = self._strict_settings()[0].thresholds.get(label) if label else None
        event = c.Moderation(
            leg=leg_id, state="blocked" if state == "blocked" else "resumed", label=label,
            score=score, threshold=threshold,
        )  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._send(event))
        self._pending_sends.add(task)
        task.add_done_callback(self._pending_sends.discard)

    async def _open_leg(self, leg_id: str, offer: str, moderated: bool) -> None:
        """Admit the leg now (room, a valid offer), negotiate it in its lane."""
        if self.draining or len(self.legs) >= self.max_legs or leg_id in self.legs:
            reason = "draining" if self.draining else "full" if leg_id not in self.legs else "dup"
            self.defences[f"open_{reason}"] += 1
            await self._send(c.Refused(leg=leg_id, reason=f"cannot open leg: {reason}"))
            return
        try:
            checked = admission.check_offer(offer)
        except LegRefused as exc:
            self.defences[exc.code] += 1
            log.info("leg %s: offer refused: %s", leg_id, exc)
            await self._send(c.Refused(leg=leg_id, reason=f"bad offer: {exc}"))
            return
        self.defences.update(checked.ignored)
        leg = _Leg(RTCPeerConnection(self.ice), candidates=checked.candidates)
        self.legs[leg_id] = leg
        self._in_lane(
            (leg_id,), "offer", lambda: self._negotiate(leg_id, leg, checked.sdp, moderated)
        )

    async def _negotiate(self, leg_id: str, leg: _Leg, offer: str, moderated: bool) -> None:
        pc = leg.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        AiortcLeg.prepare_transceivers(pc)
        restrict_gathering(pc, self.gathering, self.udp_mux)
        await pc.setLocalDescription(await pc.createAnswer())
        relay_leg = AiortcLeg(pc, self.hub.on_rtp, self.hub.on_rtcp, on_fault=self._on_media_fault)
        leg.relay_leg = relay_leg
        self.hub.add_leg(relay_leg)
        self._leg_ids[relay_leg] = leg_id
        answer = pc.localDescription.sdp
        if self.ice_tcp is not None:
            answer = self.ice_tcp.offer(relay_leg.ice_connection, answer)
        admission.check_answer(answer)
        if moderated:
            self._moderate(relay_leg)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state in leg.reported:
                return
            if state == "connected":
                leg.reported.add(state)
                await self._send(c.LegState(leg=leg_id, state="connected"))
            elif state == "failed":
                leg.reported.add(state)
                await self._send(c.LegState(leg=leg_id, state="failed"))

        await self._send(c.Answer(leg=leg_id, sdp=answer))

    def _on_media_fault(self, relay_leg: AiortcLeg, fault: Exception) -> None:
        """A media callback of ``relay_leg`` raised: that leg goes, in its lane."""
        leg_id = self._leg_ids.get(relay_leg)
        if leg_id is not None:
            self._lanes.submit(
                (leg_id,),
                lambda: self._refuse((leg_id,), "fault_media", f"media failed: {fault!r}", fault),
            )

    async def _add_candidate(self, message: c.AddCandidate) -> None:
        """Screen a trickled candidate now (cheap, bounded); aiortc gets it in the leg's lane.

        A candidate the relay must not use (mDNS, loopback, over the cap...) is ignored and
        counted, not refused: honest browsers send some of those too."""
        leg = self.legs.get(message.leg)
        if leg is None:
            return  # a late candidate for a leg that closed: harmless
        line = message.candidate.removeprefix("a=")
        if not line:
            return  # end-of-candidates: aiortc needs no word of it
        problem = admission.candidate_problem(line, leg.candidates)
        if problem is not None:
            self.defences[problem] += 1
            log.debug("leg %s: candidate ignored (%s): %.100s", message.leg, problem, line)
            return
        leg.candidates += 1

        async def add() -> None:
            admission.check_candidate_target(message.sdp_mid, message.sdp_mline_index)
            candidate = candidate_from_sdp(line.removeprefix("candidate:"))
            candidate.sdpMid = message.sdp_mid
            candidate.sdpMLineIndex = message.sdp_mline_index
            await leg.pc.addIceCandidate(candidate)

        self._in_lane((message.leg,), "candidate", add)

    async def _close_leg(self, leg_id: str) -> None:
        leg = self.legs.pop(leg_id, None)
        if leg is None:
            return
        if leg.relay_leg is not None:
            self.tally.retire(leg.relay_leg)
            self.hub.forget(leg.relay_leg)
            self._leg_ids.pop(leg.relay_leg, None)
            if self.ice_tcp is not None:
                self.ice_tcp.forget(leg.relay_leg.ice_connection)
        try:
            await leg.pc.close()
        except Exception:  # aiortc half set up by a bad offer: the leg is gone all the same
            self.defences["fault_close"] += 1
            log.warning("leg %s: closing raised", leg_id, exc_info=True)

    async def _close_all_legs(self) -> None:
        await self._lanes.cancel_all()
        for leg_id in list(self.legs):
            await self._close_leg(leg_id)

    async def drain_then_stop(self, poll_s: float = 1.0, grace_s: float = 3600.0) -> None:
        """SIGTERM: take no new legs, tell signaling, and return once the last call has
        ended (or after `grace_s`), so an operator can retire a worker without cutting calls."""
        self.draining = True
        log.info("relay worker %s draining: %d legs still open", self.worker_id, len(self.legs))
        deadline = time.monotonic() + grace_s
        while self.legs and time.monotonic() < deadline:
            await asyncio.sleep(poll_s)


def _tested_moderator(gate_config: GateConfig) -> Moderator:
    """The default moderator, after one inference on a blank input (in a worker thread)."""
    import numpy as np

    from relay.strict.moderation import Moderator

    moderator = Moderator.default(gate_config)
    size = moderator.input_size
    moderator.batcher.runner.run_raw(np.zeros((1, 3, size, size), np.float32))
    return moderator


async def until_orphaned(parent: int, interval_s: float = 1.0) -> None:
    """Returns once this process's parent is no longer ``parent`` (it died: the process was
    handed to init). Why, beside the parent-death SIGINT the supervisor arranges: that signal
    is not sent when the parent died before the child asked for it (between fork and
    ``prctl``), and a worker whose SIGINT was ignored (``chatguard.supervisor._WORKER_ENTRY``)
    outlived its killed supervisor for hours; this check depends on neither."""
    while os.getppid() == parent:
        await asyncio.sleep(interval_s)
    log.warning("relay worker: the process that started it (%d) is gone; stopping", parent)


async def _run_until_drained(worker: RelayWorker, parent: int | None = None) -> None:
    """``parent``: stop when this process's parent is no longer it (None: no such check)."""
    serving = asyncio.create_task(worker.run())
    drained = asyncio.Event()

    def on_sigterm() -> None:
        draining = asyncio.create_task(worker.drain_then_stop())
        draining.add_done_callback(lambda _: drained.set())

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    waiter = asyncio.create_task(drained.wait())
    watched = {serving, waiter}
    if parent is not None:
        watched.add(asyncio.create_task(until_orphaned(parent)))
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    for task in watched - {serving}:
        task.cancel()
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving


def run_worker(
    signaling_url: str,
    token: str,
    worker_id: str,
    max_legs: int,
    ice_tcp_port: int = 0,
    gathering: GatheringPolicy = DEFAULT_GATHERING,
    ca_file: str = "",
    parent: int | None = None,
) -> None:
    """Process entry point: uvloop when available (it halves per-packet cost, see the notes).
    ``parent``: stop once this process's parent is no longer that process (``serve`` says so
    for the workers it starts)."""
    worker = RelayWorker(
        signaling_url, token, worker_id, max_legs, ice_tcp_port, gathering, ca_file
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(_run_until_drained(worker, parent))
    else:
        uvloop.run(_run_until_drained(worker, parent))
