"""Cost of forwarding one packet through the relay: decision path alone, and via aiortc.

Why: the design question is whether going through aiortc's RTCDtlsTransport/aioice per
packet fits the budget (~10-20 µs/packet for hundreds of streams per core) or whether the
relay needs its own socket path. This measures both halves on the real code:

* ``micro``: ``StreamForwarder.on_rtp`` plus the two copies the adapter makes, on 1200-byte
  VP8 packets with an abs-send-time extension (no I/O);
* ``e2e``: a relay process (``relay.hub`` + ``relay.aiortc_adapter``) between client pairs
  in this process; clients are aiortc peer connections hooked the same way, so they send
  pre-built RTP without encoders. Reports relay CPU per forwarded packet (its own rusage)
  and one-way latency relayed vs direct (same clock: both clients live in this process).

Keep runs short (shared 2-core machine): ``python -m bench.relay_path --pairs 8 --seconds 8``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import resource
import struct
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from relay.aiortc_adapter import AiortcLeg, ParkedTrack
from relay.forwarder import ForwarderConfig, StreamForwarder
from relay.hub import ForwardingHub
from relay.negotiation import keyframe_checks

PACKETS_PER_FRAME = 4
PAYLOAD = 1050  # 4 x 1050 B x 30 fps ~ 1 Mbit/s
_STAMP = struct.Struct("!Q")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def micro(n: int = 50_000) -> float:
    """µs per packet for the sans-I/O decision path plus the adapter's copies."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap

    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                )
            ]
        )
    )
    codec_checks = keyframe_checks([_vp8(97)])
    table = [0] * 256
    table[3] = 2
    f = StreamForwarder(
        ForwarderConfig("video", 90000, {97: 120}, 0x1234, codec_checks, table),
        random.Random(0),
    )
    f.set_source(1)
    pkts = []
    for i in range(n):
        p = RtpPacket(
            payload_type=97,
            sequence_number=i & 0xFFFF,
            timestamp=3000 * (i // 4),
            ssrc=0x99,
            payload=(b"\x10\x00" if i == 0 else b"\x00\x01") + bytes(1198),
        )
        p.extensions.abs_send_time = i & 0xFFFFFF
        pkts.append(p.serialize(m))
    t0 = time.perf_counter()
    for i, data in enumerate(pkts):
        buf = bytearray(data)
        if f.on_rtp(buf, i * 0.0001):
            bytes(buf)
    dt = time.perf_counter() - t0
    assert f.forwarded == n
    return dt / n * 1e6


class _FakeLeg:
    """Just what ForwardingHub reads from a leg; ``send`` only counts."""

    def __init__(self, ssrc: int) -> None:
        from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

        from relay.aiortc_adapter import NegotiatedMedia

        codecs = (
            _vp8(97),
            RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=90000, payloadType=98, parameters={"apt": 97}
            ),
        )
        ext = (
            RTCRtpHeaderExtensionParameters(
                id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            ),
        )
        self.media = {"video": NegotiatedMedia("video", codecs, ext, ssrc)}
        self.kind_by_pt = {97: "video", 98: "video"}
        self.sent = 0

    def send(self, data: bytes) -> bool:
        self.sent += 1
        return True


def micro_hub(n: int = 50_000) -> float:
    """µs per packet for ``ForwardingHub.on_rtp`` (stats, keyframe cache, forwarder, copies)."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap

    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                )
            ]
        )
    )
    hub = ForwardingHub(rng=random.Random(0))
    a, b = _FakeLeg(1), _FakeLeg(2)
    hub.pair(a, b)  # type: ignore[arg-type]
    pkts = []
    for i in range(n):
        p = RtpPacket(
            payload_type=97,
            sequence_number=i & 0xFFFF,
            timestamp=3000 * (i // 4),
            ssrc=0x99,
            marker=int(i % 4 == 3),
            payload=(b"\x10\x00" if i % 120 == 0 else b"\x00\x01") + bytes(1198),
        )
        p.extensions.abs_send_time = i & 0xFFFFFF
        pkts.append(p.serialize(m))
    on_rtp = hub.on_rtp
    t0 = time.perf_counter()
    for i, data in enumerate(pkts):
        on_rtp(a, data, i * 0.0001)  # type: ignore[arg-type]
    dt = time.perf_counter() - t0
    assert b.sent == n, (b.sent, hub.dropped)
    return dt / n * 1e6


def _vp8(pt: int) -> Any:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    return RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=pt)


def _config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])


# ---------------------------------------------------------------------------- relay side


def relay_main(
    conn: Connection, use_uvloop: bool, profile: bool = False, fast_receive: bool = True
) -> None:
    if use_uvloop:
        import uvloop

        uvloop.install()
    if not profile:
        asyncio.run(_relay(conn, fast_receive))
        return
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    asyncio.run(_relay(conn, fast_receive))
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


async def _relay(conn: Connection, fast_receive: bool) -> None:
    loop = asyncio.get_running_loop()
    hub = ForwardingHub()
    legs: list[AiortcLeg] = []
    while True:
        msg = await loop.run_in_executor(None, conn.recv)
        if msg[0] == "offer":
            pc = RTCPeerConnection(_config())
            await pc.setRemoteDescription(RTCSessionDescription(sdp=msg[1], type="offer"))
            AiortcLeg.prepare_transceivers(pc)
            await pc.setLocalDescription(await pc.createAnswer())
            legs.append(AiortcLeg(pc, hub.on_rtp, hub.on_rtcp, fast_receive=fast_receive))
            hub.add_leg(legs[-1])
            conn.send(("answer", pc.localDescription.sdp))
        elif msg[0] == "pair":
            hub.pair(legs[msg[1]], legs[msg[2]])
            conn.send(("ok",))
        elif msg[0] == "stats":
            fwd = sum(hub.forwarder(leg, "video").forwarded for leg in legs)
            conn.send(("stats", _cpu(), fwd, dict(hub.dropped)))
        elif msg[0] == "stop":
            for leg in legs:
                await leg.pc.close()
            conn.send(("bye",))
            return


# ---------------------------------------------------------------------------- client side


class Client:
    """An aiortc peer hooked like the relay: sends pre-built RTP, timestamps arrivals."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(_config())
        self.pc.addTransceiver(ParkedTrack("video"), direction="sendrecv")
        self.leg: AiortcLeg | None = None
        self.latencies: list[float] = []
        self.received = 0
        self.send_errors = 0

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        AiortcLeg.prepare_transceivers(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.leg = AiortcLeg(self.pc, self._on_rtp, self._on_rtcp)
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        self.leg = AiortcLeg(self.pc, self._on_rtp, self._on_rtcp)

    def _on_rtp(self, leg: AiortcLeg, data: bytes, now: float) -> None:
        self.received += 1
        if data[1] & 0x80:  # marker: last packet of a frame, as the baseline notes measure
            sent = _STAMP.unpack_from(data, len(data) - 8)[0]
            self.latencies.append(time.perf_counter_ns() - sent)

    def _on_rtcp(self, leg: AiortcLeg, data: bytes, now: float) -> None:
        pass

    async def send_stream(self, stop: asyncio.Event) -> None:
        assert self.leg is not None
        media = self.leg.media["video"]
        pt = next(c.payloadType for c in media.codecs if c.mimeType.lower() == "video/vp8")
        assert pt is not None
        while self.pc.connectionState != "connected" and not stop.is_set():
            await asyncio.sleep(0.05)
        # Streams of different clients are not frame-aligned: start at a random phase.
        await asyncio.sleep(random.random() / 30)
        seq = random.randrange(1 << 16)
        frame = 0
        next_t = time.perf_counter()
        header = bytearray(12)
        while not stop.is_set():
            key = frame % 60 == 0
            for i in range(PACKETS_PER_FRAME):
                last = i == PACKETS_PER_FRAME - 1
                struct.pack_into(
                    "!BBHII",
                    header,
                    0,
                    0x80,
                    (0x80 if last else 0) | pt,
                    seq & 0xFFFF,
                    (3000 * frame) & 0xFFFFFFFF,
                    media.out_ssrc,
                )
                desc = (b"\x10" if i == 0 else b"\x00") + (b"\x00" if key else b"\x01")
                body = bytes(PAYLOAD - 8 - len(desc))
                stamp = _STAMP.pack(time.perf_counter_ns())
                if not self.leg.send(bytes(header) + desc + body + stamp):
                    self.send_errors += 1
                seq += 1
            frame += 1
            next_t += 1 / 30
            await asyncio.sleep(max(0.0, next_t - time.perf_counter()))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1e6


async def e2e(
    pairs: int, seconds: float, use_uvloop: bool, profile: bool = False, fast_receive: bool = True
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=relay_main, args=(child, use_uvloop, profile, fast_receive), daemon=True
    )
    proc.start()
    loop = asyncio.get_running_loop()

    async def call(*msg: Any) -> Any:
        parent.send(msg)
        return await loop.run_in_executor(None, parent.recv)

    senders, receivers = [], []
    for k in range(pairs):
        a, b = Client(), Client()
        for c in (a, b):
            reply = await call("offer", await c.offer())
            await c.accept(reply[1])
        await call("pair", 2 * k, 2 * k + 1)
        senders.append(a)
        receivers.append(b)
    # direct baseline: one more pair connected without the relay
    da, db = Client(), Client()
    offer = await da.offer()
    await da.accept(await db.answer(offer))

    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.send_stream(stop)) for s in [*senders, da]]
    await asyncio.sleep(3.0)  # ICE/DTLS and warm-up
    for r in [*receivers, db]:
        r.latencies.clear()
    s0 = await call("stats")
    await asyncio.sleep(seconds)
    s1 = await call("stats")
    stop.set()
    await asyncio.gather(*tasks)
    await call("stop")
    proc.join(5)
    relayed = [x for r in receivers for x in r.latencies]
    direct = db.latencies
    for c in [*senders, *receivers, da, db]:
        await c.pc.close()
    forwarded = s1[2] - s0[2]
    return {
        "pairs": pairs,
        "loop": "uvloop" if use_uvloop else "asyncio",
        "receive_path": "fast (ICE socket)" if fast_receive else "aiortc (queue + DTLS task)",
        "forwarded_pkts": forwarded,
        "pkt_per_s": forwarded / seconds,
        "relay_cpu_us_per_pkt": (s1[1] - s0[1]) / max(1, forwarded) * 1e6,
        "relay_cpu_pct_of_core": (s1[1] - s0[1]) / seconds * 100,
        "relayed_ms_p50": _pct(relayed, 0.5),
        "relayed_ms_p99": _pct(relayed, 0.99),
        "direct_ms_p50": _pct(direct, 0.5),
        "direct_ms_p99": _pct(direct, 0.99),
        "relay_drops": s1[3],
        "client_send_errors": sum(c.send_errors for c in [*senders, da]),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--uvloop", action="store_true", help="run the relay process on uvloop")
    ap.add_argument("--micro-only", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile the relay process")
    ap.add_argument(
        "--aiortc-receive", action="store_true", help="receive through aiortc's DTLS task"
    )
    args = ap.parse_args(argv)
    print(f"micro: forwarder decision + copies: {micro():.2f} µs/packet")
    print(f"micro: ForwardingHub.on_rtp (stats, cache, forwarder): {micro_hub():.2f} µs/packet")
    if args.micro_only:
        return
    result = asyncio.run(
        e2e(args.pairs, args.seconds, args.uvloop, args.profile, not args.aiortc_receive)
    )
    for k, v in result.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
