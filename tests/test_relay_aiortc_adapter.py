"""Two real aiortc clients talk through the relay adapter; no decoder runs on the relay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiortc.rtcrtpreceiver as rtcrtpreceiver
import pytest
from aiortc import (
    RTCPeerConnection,
)

from relay import rtp
from relay.aiortc_adapter import (
    AiortcLeg,
    UnsupportedAiortcError,
    check_aiortc_version,
)
from relay.forwarding_hub import ForwardingHub
from tests.support.relay_peers import config, connect_client
from tests.support.tracks import SolidTrack


@pytest.fixture
def decoders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Mime types of every decoder aiortc builds in this process (clients' and relay's)."""
    built: list[str] = []
    original_get_decoder = rtcrtpreceiver.get_decoder

    def spy_get_decoder(codec: Any) -> Any:
        built.append(codec.mimeType)
        return original_get_decoder(codec)

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", spy_get_decoder)
    return built


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await pc.close()


def test_version_guard() -> None:
    check_aiortc_version()
    with pytest.raises(UnsupportedAiortcError):
        check_aiortc_version("1.17.0")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fast_receive", [True, False], ids=["fast-receive", "aiortc-receive"])
async def test_video_flows_through_relay_without_relay_decoding(
    pcs: list[RTCPeerConnection],
    monkeypatch: pytest.MonkeyPatch,
    decoders: list[str],
    fast_receive: bool,
) -> None:
    seen_by_aiortc_receiver: set[int] = set()
    original_handle = rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet

    async def spy_handle(self: Any, packet: Any, arrival_time_ms: int) -> None:
        seen_by_aiortc_receiver.add(id(self))
        await original_handle(self, packet, arrival_time_ms)

    monkeypatch.setattr(rtcrtpreceiver.RTCRtpReceiver, "_handle_rtp_packet", spy_handle)

    hub = ForwardingHub()
    relay_pcs: list[RTCPeerConnection] = []
    a, b = RTCPeerConnection(config()), RTCPeerConnection(config())
    pcs.extend([a, b])
    a.addTrack(SolidTrack(200))
    b.addTrack(SolidTrack(40))
    got: dict[str, asyncio.Future[Any]] = {}
    for name, pc in (("a", a), ("b", b)):
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        got[name] = fut

        @pc.on("track")
        def on_track(track: Any, fut: asyncio.Future[Any] = fut) -> None:
            if not fut.done():
                fut.set_result(track)

    leg_a = await connect_client(a, hub, relay_pcs, fast_receive)
    leg_b = await connect_client(b, hub, relay_pcs, fast_receive)
    pcs.extend(relay_pcs)
    hub.pair(leg_a, leg_b)

    async def mean_levels(track: Any, n: int) -> list[float]:
        out = []
        for _ in range(n):
            frame = await track.recv()
            out.append(float(frame.to_ndarray(format="gray").mean()))
        return out

    track_at_b = await asyncio.wait_for(got["b"], 20)
    track_at_a = await asyncio.wait_for(got["a"], 20)
    levels_b, levels_a = await asyncio.wait_for(
        asyncio.gather(mean_levels(track_at_b, 15), mean_levels(track_at_a, 15)), 30
    )
    # B decoded A's grey 200 picture and A decoded B's grey 40 with their own decoders
    assert abs(levels_b[-1] - 200) < 12, levels_b
    assert abs(levels_a[-1] - 40) < 12, levels_a

    for leg in (leg_a, leg_b):
        assert leg.fast_path_active == fast_receive
        assert leg.srtp_errors == 0
        assert leg.decoders_stopped == 1
        for t in leg.pc.getTransceivers():
            assert not AiortcLeg.decoder_running(t.receiver)
            assert id(t.receiver) not in seen_by_aiortc_receiver
    # the only decoders built were the two clients' own
    assert decoders == ["video/VP8", "video/VP8"]
    fa = hub.forwarder(leg_b, "video")
    assert fa.forwarded > 15 and fa.rewriter.epochs == 1
    # only drops allowed: media from a leg whose partner was not connected yet
    assert set(hub.dropped) <= {"dst_not_connected", "unpaired"}, hub.dropped
    # the relay re-timed the clients' sender reports and hid aiortc's empty ones
    # (clients send an SR about every second; give them the chance)
    for _ in range(40):
        if hub.rtcp_in["SenderReport"] and leg_a.suppressed_reports:
            break
        await asyncio.sleep(0.1)
    assert hub.rtcp_in["SenderReport"] >= 1 and leg_a.suppressed_reports >= 1

    # the relay's own receiver report reaches A's sender: no loss, and an RTT from LSR/DLSR
    rtt = None
    for _ in range(40):
        assert hub.send_receiver_reports(time.monotonic()) == 2
        await asyncio.sleep(0.1)
        stats = await a.getSenders()[0].getStats()
        remote = [s for s in stats.values() if s.type == "remote-inbound-rtp"]
        if remote and remote[0].roundTripTime is not None:
            rtt = remote[0].roundTripTime
            assert remote[0].packetsLost == 0
            break
    assert rtt is not None and 0 <= rtt < 0.5


@pytest.mark.timeout(90)
async def test_next_switches_partner_with_keyframe_request(pcs: list[RTCPeerConnection]) -> None:
    """A talks to B, then "Next" pairs A with C: C's video starts from a fresh keyframe.

    The relay gates C's outgoing video until a keyframe and asks A for one with a PLI;
    aiortc's sender answers a PLI by forcing a keyframe, so C decodes A's picture.
    """
    hub = ForwardingHub()
    relay_pcs: list[RTCPeerConnection] = []
    a, b, c = (RTCPeerConnection(config()) for _ in range(3))
    pcs.extend([a, b, c])
    a.addTrack(SolidTrack(200))
    b.addTrack(SolidTrack(40))
    c.addTrack(SolidTrack(120))
    tracks: dict[str, asyncio.Future[Any]] = {}
    for name, pc in (("a", a), ("b", b), ("c", c)):
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        tracks[name] = fut

        @pc.on("track")
        def on_track(track: Any, fut: asyncio.Future[Any] = fut) -> None:
            if not fut.done():
                fut.set_result(track)

    leg_a = await connect_client(a, hub, relay_pcs)
    leg_b = await connect_client(b, hub, relay_pcs)
    leg_c = await connect_client(c, hub, relay_pcs)
    pcs.extend(relay_pcs)
    hub.pair(leg_a, leg_b)
    track_b = await asyncio.wait_for(tracks["b"], 20)
    for _ in range(3):
        await asyncio.wait_for(track_b.recv(), 10)
    await asyncio.sleep(0.5)  # past A's first keyframe: the next one must be requested
    pli_before = hub.pli_sent
    replayed_before = hub.keyframes_replayed  # the first pairing may have replayed some too
    # ...and so started one or two epochs towards A (B's cached keyframe, if A's connection was
    # slow enough for B to send one before the pairing, then B's live video)
    epochs_before = hub.forwarder(leg_a, "video").rewriter.epochs

    hub.pair(leg_a, leg_c)  # "Next"
    track_c = await asyncio.wait_for(tracks["c"], 20)
    frame = await asyncio.wait_for(track_c.recv(), 20)
    assert abs(float(frame.to_ndarray(format="gray").mean()) - 200) < 12
    track_a = await asyncio.wait_for(tracks["a"], 20)
    levels = []
    for _ in range(40):  # A first sees B's frames, then C's
        f = await asyncio.wait_for(track_a.recv(), 10)
        levels.append(float(f.to_ndarray(format="gray").mean()))
        if abs(levels[-1] - 120) < 12:
            break
    assert abs(levels[-1] - 120) < 12, levels
    assert hub.pli_sent > pli_before
    # both new partners were shown the other's cached last keyframe at once
    assert hub.keyframes_replayed - replayed_before == 2
    to_c = hub.forwarder(leg_c, "video")
    assert to_c.dropped["awaiting_keyframe"] >= 0 and to_c.forwarded > 0
    to_a = hub.forwarder(leg_a, "video")
    # one continuous outgoing stream to A across B's video, C's cached keyframe, C's video
    assert to_a.rewriter.epochs - epochs_before == 2


@pytest.mark.timeout(60)
async def test_loss_before_the_relay_is_repaired_from_the_sender(
    pcs: list[RTCPeerConnection],
) -> None:
    """A deterministic lossy link A -> relay: every 10th media packet is dropped once.

    B NACKs the gap; the relay has no copy, so it NACKs A in A's numbering; A answers with
    RTX, which the relay unwraps and forwards into B's stream.
    """
    hub = ForwardingHub()
    relay_pcs: list[RTCPeerConnection] = []
    a, b = RTCPeerConnection(config()), RTCPeerConnection(config())
    pcs.extend([a, b])
    a.addTrack(SolidTrack(200))
    b.addTrack(SolidTrack(40))
    track_fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @b.on("track")
    def on_track(track: Any) -> None:
        if not track_fut.done():
            track_fut.set_result(track)

    dropped: set[int] = set()
    media_pts: set[int] = set()

    def lossy(leg: AiortcLeg, data: bytes, now: float) -> None:
        seq = rtp.sequence_number(data)
        if rtp.payload_type(data) in media_pts and seq % 10 == 5 and seq not in dropped:
            dropped.add(seq)
            return
        hub.on_rtp(leg, data, now)

    leg_a = await connect_client(a, hub, relay_pcs, on_rtp=lossy)
    media_pts.update(
        c.payloadType for c in leg_a.media["video"].codecs if c.mimeType == "video/VP8"
    )
    leg_b = await connect_client(b, hub, relay_pcs)
    pcs.extend(relay_pcs)
    hub.pair(leg_a, leg_b)
    track = await asyncio.wait_for(track_fut, 20)
    for _ in range(60):
        if hub.rtx_unwrapped >= 2:
            break
        await asyncio.wait_for(track.recv(), 10)
    assert len(dropped) >= 2
    assert hub.nacks_forwarded >= 1
    assert hub.rtx_unwrapped >= 2
    assert not any(k.startswith("rtx_") for k in hub.dropped), hub.dropped


def test_fast_receive_demux_without_a_network() -> None:
    """Only SRTP media takes the fast path; STUN, DTLS, SRTCP and junk keep aiortc's route."""
    import pylibsrtp

    class FakeProtocol:
        def __init__(self) -> None:
            self.slow: list[bytes] = []

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.slow.append(data)

    class FakeSrtp:
        def unprotect(self, data: bytes) -> bytes:
            if data.endswith(b"bad"):
                raise pylibsrtp.Error("auth fail")
            return data[:-4]

    fast: list[bytes] = []
    leg = AiortcLeg.__new__(AiortcLeg)  # no peer connection needed for the demux
    leg._on_rtp = lambda _leg, data, now: fast.append(data)
    leg._clock = lambda: 0.0
    leg.srtp_errors = 0
    proto = FakeProtocol()
    leg._install_fast_receive([proto], FakeSrtp())

    rtp_pkt = b"\x80\x60" + bytes(10) + b"payload" + b"TAG!"
    datagrams = [
        b"",  # empty datagram
        b"\x00\x01\x00\x00" + bytes(16),  # STUN binding request (consent check)
        b"\x16\xfe\xfd" + bytes(20),  # DTLS record
        b"\x80\xc8\x00\x06" + bytes(24),  # SRTCP sender report
        b"\x80\x60\x00",  # too short for RTP
        rtp_pkt,
        b"\x80\x60" + bytes(10) + b"bad",
    ]
    for d in datagrams:
        proto.datagram_received(d, ("192.0.2.1", 5000))
    assert fast == [rtp_pkt[:-4]]
    assert proto.slow == datagrams[:5]
    assert leg.srtp_errors == 1 and leg.fast_path_active


@pytest.mark.timeout(60)
async def test_h264_video_and_opus_audio_flow_through_relay(
    pcs: list[RTCPeerConnection], decoders: list[str]
) -> None:
    """H.264 (STAP-A/FU-A keyframe gating) and Opus (48 kHz rewriting) through the relay."""
    from aiortc import AudioStreamTrack, RTCRtpSender

    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    hub = ForwardingHub()
    relay_pcs: list[RTCPeerConnection] = []
    a, b = RTCPeerConnection(config()), RTCPeerConnection(config())
    pcs.extend([a, b])
    tracks: dict[tuple[str, str], asyncio.Future[Any]] = {}
    for name, pc, level in (("a", a, 200), ("b", b, 40)):
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(SolidTrack(level))
        for t in pc.getTransceivers():
            if t.kind == "video":
                t.setCodecPreferences(h264)
        for kind in ("audio", "video"):
            tracks[(name, kind)] = asyncio.get_running_loop().create_future()

        @pc.on("track")
        def on_track(track: Any, name: str = name) -> None:
            fut = tracks[(name, track.kind)]
            if not fut.done():
                fut.set_result(track)

    leg_a = await connect_client(a, hub, relay_pcs)
    leg_b = await connect_client(b, hub, relay_pcs)
    pcs.extend(relay_pcs)
    assert leg_a.media["video"].codecs[0].mimeType == "video/H264"
    hub.pair(leg_a, leg_b)

    video_b = await asyncio.wait_for(tracks[("b", "video")], 20)
    audio_b = await asyncio.wait_for(tracks[("b", "audio")], 20)
    for _ in range(5):
        frame = await asyncio.wait_for(video_b.recv(), 10)
    assert abs(float(frame.to_ndarray(format="gray").mean()) - 200) < 12
    for _ in range(10):
        audio = await asyncio.wait_for(audio_b.recv(), 10)
    assert audio.sample_rate == 48000
    to_b_audio = hub.forwarder(leg_b, "audio")
    assert to_b_audio.forwarded >= 10 and to_b_audio.rewriter.clock_rate == 48000
    assert not to_b_audio.waiting_for_keyframe
    assert hub.forwarder(leg_b, "video").forwarded >= 5
    # the relay built no decoder: only the clients' own (B's here, maybe A's too by now)
    assert set(decoders) <= {"video/H264", "audio/opus"}
    assert len(decoders) <= 4
    for leg in (leg_a, leg_b):
        assert leg.decoders_stopped == 2
        for t in leg.pc.getTransceivers():
            assert not AiortcLeg.decoder_running(t.receiver)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fast_receive", [True, False], ids=["fast-receive", "aiortc-receive"])
async def test_a_raising_packet_callback_is_reported_once_and_stays_in_the_leg(
    pcs: list[RTCPeerConnection], fast_receive: bool
) -> None:
    """The leg's fault boundary: what the relay's packet code raises goes to ``on_fault``
    (once: the worker closes the leg), never up into aioice's or aiortc's receive loops."""
    faults: list[Exception] = []

    def broken(leg: AiortcLeg, data: bytes, now: float) -> None:
        raise RuntimeError("a bug in the relay")

    client = RTCPeerConnection(config())
    pcs.append(client)
    client.addTrack(SolidTrack(50))
    relay_pcs: list[RTCPeerConnection] = []
    leg = await connect_client(
        client, ForwardingHub(), relay_pcs, fast_receive, broken,
        lambda _leg, exc: faults.append(exc),
    )  # fmt: skip
    pcs.extend(relay_pcs)
    for _ in range(200):
        if leg.faults >= 10:
            break
        await asyncio.sleep(0.05)
    assert leg.faults >= 10 and len(faults) == 1
    assert isinstance(faults[0], RuntimeError)
    assert leg.fast_path_active is fast_receive
