"""The load generator's ICE-TCP client (bench/ice_tcp_client.py): its SDP edits, and simulated
users that reach a real relay worker over TCP only, checked at both ends (the worker's ICE-TCP
listener attached their connections; both sides nominated a TCP pair) with media flowing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator

import pytest
from aioice.candidate import Candidate

from bench.chat_load import NEGOTIATIONS_AT_ONCE, CallStats, ChatLoadSpec, ChatUser
from bench.ice_tcp_client import (
    ActiveTcpCandidate,
    active_tcp_priority,
    answer_without_udp,
    offer_without_udp,
    passive_tcp_addresses,
)
from bench.relay_clip import encode_clip
from relay.ice_tcp_sdp import passive_tcp_priority
from relay.worker import RelayWorker
from signaling.route_policy import Route
from tests.support.ports import free_port
from tests.support.server import RunningServer, make_config, run_server, wait_for_workers

UDP = "a=candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host"
TCP = "a=candidate:2 1 tcp 1518280447 10.0.0.2 7880 typ host tcptype passive"
TCP6 = "a=candidate:3 1 tcp 1518280447 fd00::2 7880 typ host tcptype passive"
ACTIVE = "a=candidate:4 1 tcp 1518280447 10.0.0.3 9 typ host tcptype active"
VIDEO = ["m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:0", UDP, TCP, TCP6, ACTIVE]
AUDIO = ["m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:1", UDP, TCP]
SDP = "\r\n".join(["v=0", *VIDEO, "a=end-of-candidates", *AUDIO, "a=end-of-candidates", ""])


def test_the_offer_loses_its_udp_candidates_and_end_of_candidates() -> None:
    offer = offer_without_udp(SDP)
    assert UDP not in offer and "a=end-of-candidates" not in offer
    assert offer.count(TCP) == 2 and ACTIVE in offer and offer.endswith("\r\n")


def test_the_answer_keeps_only_tcp_candidates() -> None:
    answer = answer_without_udp(SDP)
    assert UDP not in answer and answer.count("a=end-of-candidates") == 2
    assert answer.count(TCP) == 2 and TCP6 in answer


def test_passive_candidates_are_found_once_each() -> None:
    assert passive_tcp_addresses(SDP) == [("10.0.0.2", 7880), ("fd00::2", 7880)]


def test_an_active_candidate_pairs_with_its_own_passive_candidate_only() -> None:
    active = ActiveTcpCandidate("10.0.0.3", 40000, ("10.0.0.2", 7880))
    ours = Candidate("x", 1, "tcp", passive_tcp_priority(), "10.0.0.2", 7880, "host", "passive")
    other = Candidate("y", 1, "tcp", passive_tcp_priority(), "10.0.0.9", 7880, "host", "passive")
    udp = Candidate("z", 1, "udp", 2130706431, "10.0.0.2", 7880, "host")
    assert active.can_pair_with(ours)
    assert not active.can_pair_with(other) and not active.can_pair_with(udp)
    assert (active.transport, active.tcptype) == ("tcp", "active")
    assert active_tcp_priority() > passive_tcp_priority()  # RFC 6544: active 6, passive 4


# -- simulated users against a real worker ------------------------------------------------


@pytest.fixture
def token_server() -> Iterator[RunningServer]:
    yield from run_server(
        make_config(relay={"workers": 0, "token": "test-relay-token"}), Route.RELAY
    )


@pytest.mark.timeout(60)
async def test_users_reach_the_relay_over_tcp_only_and_get_video(
    token_server: RunningServer,
) -> None:
    worker = RelayWorker(
        token_server.ws_url.replace("/ws", "/relay"), "test-relay-token", "w1", 10, free_port()
    )
    running = asyncio.create_task(worker.run())
    await wait_for_workers(token_server, 1)
    clip = encode_clip(1.0, 500_000, keyframe_s=0.5, width=320, height=240)
    spec = ChatLoadSpec(token_server.ws_url, 2, clip, None, None, 1, None, transport="tcp")
    calls = CallStats()
    negotiations = asyncio.Semaphore(NEGOTIATIONS_AT_ONCE)
    users = [ChatUser(spec, random.Random(i), calls, negotiations) for i in range(2)]
    tasks = [asyncio.create_task(u.run()) for u in users]
    try:
        deadline = time.monotonic() + 30
        while not all(u.peer is not None and u.peer.first_frame_at for u in users):
            assert time.monotonic() < deadline, f"no video over TCP: {calls.errors}"
            await asyncio.sleep(0.1)
        assert [u.peer.transport() for u in users if u.peer is not None] == ["tcp", "tcp"]
        assert worker.ice_tcp is not None
        stats = worker.ice_tcp.stats
        # one attached connection per leg at least (a worker with several addresses offers a
        # passive candidate on each; the users connect to all, as a browser does)
        assert stats.attached >= 2 and stats.accepted >= stats.attached
        for leg in worker.legs.values():
            assert leg.relay_leg is not None
            nominated = leg.relay_leg.ice_connection._nominated[1]
            assert (nominated.local_candidate.transport, nominated.local_candidate.tcptype) == (
                "tcp",
                "passive",
            )
        assert calls.errors == []
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(u.close() for u in users))
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
