"""Relayed calls end to end: real signaling (uvicorn), real relay worker processes started by
the service's supervisor, and two real aiortc clients speaking the signaling protocol."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiortc import RTCRtpReceiver
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from relay.aiortc_adapter import AiortcLeg
from relay.worker import RelayWorker
from signaling.route_policy import Route
from tests.support.rtcclient import ChatPeer
from tests.support.server import RunningServer, make_config, run_server, wait_for_workers
from tests.support.wsclient import Client

pytestmark = pytest.mark.slow  # a real service with relay worker processes, or the real model


@pytest.fixture
def relay_server() -> Iterator[RunningServer]:
    config = make_config(relay={"workers": 2, "fallback_after_s": 3.0})
    yield from run_server(config, Route.RELAY)


@pytest.fixture
async def relayed_peers(
    relay_server: RunningServer,
) -> AsyncIterator[tuple[ChatPeer, ChatPeer]]:
    """Alice (grey 200, 440 Hz) and Bob (grey 60, 1 kHz), paired through the relay."""
    await wait_for_workers(relay_server, 2)
    alice = await ChatPeer.join(relay_server.ws_url, level=200, tone_hz=440)
    bob = await ChatPeer.join(relay_server.ws_url, level=60, tone_hz=1000)
    yield alice, bob
    await alice.close()
    await bob.close()


def busy_worker(server: RunningServer) -> tuple[str, Any]:
    """The worker carrying the (only) call, and its process."""
    stats = httpx.get(server.admin_url + "/stats").json()
    (busy,) = [w for w in stats["relay_workers"] if w["legs"] == 2]
    name = str(busy["worker"])  # local-<slot>.<generation>
    supervisor = server.app_state.relay_supervisor  # type: ignore[attr-defined]
    return name, supervisor.processes[int(name.split("-")[1].split(".")[0])]


def assert_frames_from(peer: ChatPeer, level: int) -> None:
    """Every decoded frame is the partner's (its grey level) and counters only go forward."""
    levels = [got for got, _ in peer.frames]
    assert all(abs(got - level) <= 6 for got in levels), levels[:20]
    counters = [counter for _, counter in peer.frames]
    assert counters == sorted(counters), counters[:40]
    assert len(set(counters)) == len(counters)


async def test_relayed_call_carries_both_ways_exactly_what_was_sent(
    relay_server: RunningServer, relayed_peers: tuple[ChatPeer, ChatPeer]
) -> None:
    alice, bob = relayed_peers
    await alice.wait_for_frames(30)
    await bob.wait_for_frames(30)
    assert alice.route == bob.route == "relay"
    assert_frames_from(alice, 60)
    assert_frames_from(bob, 200)
    assert abs(alice.heard_frequency() - 1000) < 30
    assert abs(bob.heard_frequency() - 440) < 30
    stats = httpx.get(relay_server.admin_url + "/stats").json()
    assert stats["relay_legs"] == 2
    assert sum(w["legs"] for w in stats["relay_workers"]) == 2


def spy_on_rembs(peer: ChatPeer) -> list[tuple[float, int]]:
    """``(time, bit/s)`` of every REMB that reaches ``peer``'s video sender and names it."""
    assert peer.pc is not None
    (sender,) = [s for s in peer.pc.getSenders() if s.track and s.track.kind == "video"]
    handle = sender._handle_rtcp_packet
    rembs: list[tuple[float, int]] = []

    async def spy(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
            if sender._ssrc in ssrcs:
                rembs.append((time.monotonic(), bitrate))
        await handle(packet)

    sender._handle_rtcp_packet = spy
    return rembs


def receive_without_remb(peer: ChatPeer) -> RTCRtpReceiver:
    """A modified client: ``peer``'s video receiver sends no REMB of its own."""
    assert peer.pc is not None
    (receiver,) = [r for r in peer.pc.getReceivers() if r.track.kind == "video"]
    receiver._RTCRtpReceiver__remote_bitrate_estimator = None
    return receiver


async def test_a_sender_is_told_at_most_the_relays_own_estimate_of_its_uplink(
    relay_server: RunningServer, relayed_peers: tuple[ChatPeer, ChatPeer]
) -> None:
    """Bob's receiver first sends no REMB (the relay's own estimate must reach Alice alone,
    about once a second), then an absurd one (50 Mbit/s, the receiver-side bound, which Alice
    must not be told: the relay's estimate of her uplink is lower). Alice's picture is a flat
    grey: she sends ~20 kbit/s, and the estimate stays near 1.5 times that."""
    alice, bob = relayed_peers
    await bob.wait_for_frames(5)
    rembs = spy_on_rembs(alice)
    receiver = receive_without_remb(bob)
    start = time.monotonic()
    await asyncio.sleep(6.0)
    alone = [bps for at, bps in rembs if at > start + 1.0]  # after REMBs in flight arrive
    assert len(alone) >= 3, rembs  # the own estimate is ready about 3 s into the call
    assert all(bps < 5_000_000 for bps in alone), alone
    huge = pack_remb_fci(50_000_000, [1])
    huge_remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=huge)
    start = time.monotonic()
    for _ in range(8):
        await receiver._send_rtcp(huge_remb)
        await asyncio.sleep(0.5)
    bounded = [bps for at, bps in rembs if at > start]
    assert len(bounded) >= 6, rembs  # one per REMB of Bob's (the relay answers each)
    assert max(bounded) < 5_000_000, bounded  # the minimum: Alice's uplink, not Bob's word
    metrics = httpx.get(relay_server.admin_url + "/metrics").text
    assert 'chatguard_relay_sender_rembs_total{bound="own",worker=' in metrics
    assert 'chatguard_relay_sender_rembs_total{bound="own_alone",worker=' in metrics
    assert "chatguard_relay_sender_estimate_bps_bucket{" in metrics


async def test_killed_worker_moves_the_call_to_a_live_one(
    relay_server: RunningServer, relayed_peers: tuple[ChatPeer, ChatPeer]
) -> None:
    alice, bob = relayed_peers
    await bob.wait_for_frames(10)
    busy, process = busy_worker(relay_server)
    os.kill(process.pid, signal.SIGKILL)
    # both clients are told, offer again, and the call resumes on the other worker
    for peer in (alice, bob):
        deadline = time.monotonic() + 15
        while not any(e["type"] == "reroute" for e in peer.events):
            assert time.monotonic() < deadline, peer.events
            await asyncio.sleep(0.1)
    await bob.wait_for_frames(30)
    await alice.wait_for_frames(30)
    assert_frames_from(bob, 200)
    assert_frames_from(alice, 60)
    stats = httpx.get(relay_server.admin_url + "/stats").json()
    assert stats["calls_rerouted_after_worker_loss"] == 1
    live = {str(w["worker"]) for w in stats["relay_workers"] if w["legs"] == 2}
    assert live and busy not in live


@pytest.fixture
def token_server() -> Iterator[RunningServer]:
    config = make_config(relay={"workers": 0, "token": "test-relay-token"})
    yield from run_server(config, Route.RELAY)


async def test_relay_route_neither_decodes_nor_encodes(token_server: RunningServer) -> None:
    """The worker runs in this process here, so its aiortc objects can be inspected."""
    worker = RelayWorker(token_server.ws_url.replace("/ws", "/relay"), "test-relay-token", "w1", 10)
    running = asyncio.create_task(worker.run())
    await wait_for_workers(token_server, 1)
    alice = await ChatPeer.join(token_server.ws_url, level=200, tone_hz=440)
    bob = await ChatPeer.join(token_server.ws_url, level=60, tone_hz=1000)
    try:
        await alice.wait_for_frames(20)
        await bob.wait_for_frames(20)
        assert len(worker.legs) == 2
        for leg in worker.legs.values():
            relay_leg = leg.relay_leg
            assert relay_leg is not None and relay_leg.fast_path_active
            for transceiver in leg.pc.getTransceivers():
                assert not AiortcLeg.decoder_running(transceiver.receiver)
                assert transceiver.sender._RTCRtpSender__encoder is None  # never encoded
            assert relay_leg.decoders_stopped >= 1
        assert worker.hub.dropped.total() < 10
    finally:
        await alice.close()
        await bob.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_worker_with_a_wrong_token_is_refused(token_server: RunningServer) -> None:
    worker = RelayWorker(token_server.ws_url.replace("/ws", "/relay"), "wrong", "intruder", 10)
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(1.0)
    stats = httpx.get(token_server.admin_url + "/stats").json()
    assert stats["relay_workers"] == []
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


async def test_no_relay_available_ends_the_call_with_a_reason(token_server: RunningServer) -> None:
    alice = await ChatPeer.join(token_server.ws_url, level=200, tone_hz=440)
    bob = await ChatPeer.join(token_server.ws_url, level=60, tone_hz=1000)
    try:
        deadline = time.monotonic() + 5
        while not any(e["type"] == "call_ended" for e in alice.events):
            assert time.monotonic() < deadline, alice.events
            await asyncio.sleep(0.05)
        ended = next(e for e in alice.events if e["type"] == "call_ended")
        assert ended["reason"] == "no relay is available"
    finally:
        await alice.close()
        await bob.close()


async def test_next_keeps_the_relay_connection_and_shows_the_new_partner(
    relay_server: RunningServer, relayed_peers: tuple[ChatPeer, ChatPeer]
) -> None:
    alice, _ = relayed_peers
    await alice.wait_for_frames(10)
    kept = alice.pc
    carol = await ChatPeer.join(relay_server.ws_url, level=130, tone_hz=700)
    try:
        await asyncio.sleep(0.5)  # carol is queued
        await alice.next()
        await alice.wait_for_frames(40)
        paired = [e for e in alice.events if e["type"] == "paired"]
        assert paired[-1]["reuse"] is True
        assert alice.pc is kept  # no new handshake for alice
        answers = [e for e in alice.events if e["type"] == "answer"]
        assert len(answers) == 1  # the relay answered alice once, for the first call only
        # after the switch alice sees carol's picture only (a few of bob's may be in flight)
        levels = [level for level, _ in alice.frames]
        first_carol = next(i for i, level in enumerate(levels) if abs(level - 130) <= 6)
        assert all(abs(level - 130) <= 6 for level in levels[first_carol:]), levels
        await carol.wait_for_frames(20)
        assert_frames_from(carol, 200)
    finally:
        await carol.close()


async def test_draining_worker_keeps_its_calls_and_takes_no_new_ones(
    relay_server: RunningServer, relayed_peers: tuple[ChatPeer, ChatPeer]
) -> None:
    alice, bob = relayed_peers
    others: list[ChatPeer] = []
    try:
        await bob.wait_for_frames(10)
        busy, process = busy_worker(relay_server)
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        stats_url = relay_server.admin_url + "/stats"
        while not any(w["draining"] for w in httpx.get(stats_url).json()["relay_workers"]):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        # the call on the draining worker goes on...
        await bob.wait_for_frames(len(bob.frames) + 30)
        # ...while a new call lands on the other worker
        others = [
            await ChatPeer.join(relay_server.ws_url, level=100, tone_hz=500),
            await ChatPeer.join(relay_server.ws_url, level=150, tone_hz=800),
        ]
        await others[0].wait_for_frames(10)
        workers = httpx.get(stats_url).json()["relay_workers"]
        assert {w["worker"]: w["legs"] for w in workers}[busy] == 2
        # once its last call ends, the drained worker exits by itself
        await alice.close()
        await bob.close()
        deadline = time.monotonic() + 15
        while process.returncode is None:  # the process belongs to the server's event loop
            assert time.monotonic() < deadline, "the drained worker did not exit"
            await asyncio.sleep(0.2)
        assert process.returncode == 0
    finally:
        for peer in others:
            await peer.close()


async def test_bad_sdp_ends_only_that_call_with_a_reason(
    relay_server: RunningServer, relayed_peers: tuple[ChatPeer, ChatPeer]
) -> None:
    _, bob = relayed_peers
    await bob.wait_for_frames(10)
    mallory = await Client.connect(relay_server.ws_url)
    trudy = await Client.connect(relay_server.ws_url)
    try:
        await mallory.send(type="join")
        await trudy.send(type="join")
        pair = (await mallory.expect_paired())["pair"]
        await mallory.send(type="offer", pair=pair, sdp="v=0\r\nthis is not an offer\r\n")
        ended = await mallory.expect("call_ended", timeout=10)
        assert ended["reason"] == "the relay refused the call"
        # the worker and the other call carry on
        await bob.wait_for_frames(len(bob.frames) + 30)
        workers = httpx.get(relay_server.admin_url + "/stats").json()["relay_workers"]
        assert len(workers) == 2
    finally:
        await mallory.close()
        await trudy.close()
