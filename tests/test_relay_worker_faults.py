"""One bad client harms only itself: the security review's worker-killing messages, sent
through signaling as an attacker sends them, to a real worker process that carries another
call.

Real service (uvicorn) with one supervised worker; Alice and Bob (aiortc, ``ChatPeer``) talk
through it for the whole module. Each attack comes from two fresh raw WebSocket clients that
pair with each other (so their legs land on the same worker). After each: the worker has the
same pid on ``/stats``, the attacker got ``call_ended`` where its leg was refused, and Alice and
Bob keep receiving each other's frames.

The fuzzers at the end mutate real offers (Chromium's, saved in ``tests/support``, and
aiortc's) and candidate lines; CI runs a few examples, ``CHATGUARD_FUZZ_EXAMPLES`` more (see
docs/relay-design.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay import admission
from signaling.route_policy import Route
from tests.support.loop_thread import LoopThread
from tests.support.relay_offers import CHROMIUM_OFFER, aiortc_offer, many_media_offer
from tests.support.rtcclient import ChatPeer
from tests.support.server import RunningServer, make_config, run_server, wait_for_workers
from tests.support.wsclient import Client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FUZZ_EXAMPLES = int(os.environ.get("CHATGUARD_FUZZ_EXAMPLES", "8"))
PUBLIC_HOST = "candidate:1 1 udp 2122260223 203.0.113.7 9 typ host"


@dataclass
class Arena:
    server: RunningServer
    loop: LoopThread
    alice: ChatPeer
    bob: ChatPeer
    pid: int


def worker_stats(server: RunningServer) -> dict[str, Any]:
    (worker,) = httpx.get(server.admin_url + "/stats").json()["relay_workers"]
    return dict(worker)


async def keep_alive(*peers: ChatPeer) -> None:
    """Ping signaling as the page does: the module's call outlives the idle time-out."""
    while True:
        await asyncio.sleep(5)
        for peer in peers:
            await peer.signaling.send(type="ping")


@pytest.fixture(scope="module")
def arena() -> Iterator[Arena]:
    config = make_config(relay={"workers": 1})
    with LoopThread() as loop, contextlib.contextmanager(run_server)(config, Route.RELAY) as srv:
        (worker,) = loop.run(wait_for_workers(srv, 1))
        alice = loop.run(ChatPeer.join(srv.ws_url, level=200, tone_hz=440))
        bob = loop.run(ChatPeer.join(srv.ws_url, level=60, tone_hz=1000))
        pinging = asyncio.run_coroutine_threadsafe(keep_alive(alice, bob), loop.loop)
        try:
            loop.run(alice.wait_for_frames(10, timeout=30))
            loop.run(bob.wait_for_frames(10, timeout=30))
            yield Arena(srv, loop, alice, bob, int(str(worker["pid"])))
        finally:
            pinging.cancel()
            loop.run(alice.close())
            loop.run(bob.close())


async def media_report(*peers: ChatPeer) -> list[dict[str, Any]]:
    """Where the peers' media stopped, for a failure message: connection states, frames
    decoded, and the video packets each sent and got (aiortc's stats)."""
    reports: list[dict[str, Any]] = []
    for peer in peers:
        report: dict[str, Any] = {"frames": len(peer.frames)}
        if peer.pc is not None:
            report.update(connection=peer.pc.connectionState, ice=peer.pc.iceConnectionState)
            for stats in (await peer.pc.getStats()).values():
                if getattr(stats, "kind", None) != "video":
                    continue
                if stats.type == "inbound-rtp":
                    report["video_in"] = (stats.packetsReceived, stats.packetsLost)
                elif stats.type == "outbound-rtp":
                    report["video_out"] = stats.packetsSent
        reports.append(report)
    return reports


def relay_counters(server: RunningServer) -> list[str]:
    """The worker's forwarding and keyframe counters from ``/metrics``, for a failure message."""
    wanted = ("packets_forwarded", "packets_dropped", "plis", "keyframe_requests")
    lines = httpx.get(server.admin_url + "/metrics").text.splitlines()
    return [line for line in lines if not line.startswith("#") and any(w in line for w in wanted)]


def survived(arena: Arena) -> None:
    """Same worker process, and the other call's media still flows both ways."""
    stats = worker_stats(arena.server)
    assert stats["pid"] == arena.pid, stats
    before = len(arena.alice.frames), len(arena.bob.frames)
    try:
        arena.loop.run(arena.alice.wait_for_frames(before[0] + 10, timeout=15))
        arena.loop.run(arena.bob.wait_for_frames(before[1] + 10, timeout=15))
    except AssertionError as exc:
        events = arena.alice.events[-3:], arena.bob.events[-3:]
        media = [arena.loop.run(media_report(arena.alice, arena.bob))]
        time.sleep(2.0)
        media.append(arena.loop.run(media_report(arena.alice, arena.bob)))
        raise AssertionError(
            f"{exc}; last events {events}; media (alice, bob; again 2 s later) {media}; "
            f"worker {stats}; "
            f"relay counters {relay_counters(arena.server)}"
        ) from None
    assert arena.alice.route == arena.bob.route == "relay"


@dataclass
class Attackers:
    first: Client
    second: Client
    pair: str

    async def close(self) -> None:
        await self.first.close()
        await self.second.close()


async def attackers(server: RunningServer) -> Attackers:
    first, second = await Client.connect(server.ws_url), await Client.connect(server.ws_url)
    await first.send(type="join")
    await second.send(type="join")
    paired = await first.expect_paired()
    assert (await second.expect_paired())["pair"] == paired["pair"]
    assert paired["route"] == "relay"
    return Attackers(first, second, paired["pair"])


async def received(
    client: Client, until: str | tuple[str, ...], timeout: float
) -> list[dict[str, Any]]:
    """Messages until one of a type in ``until`` (included) or ``timeout`` seconds."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await client.recv(left)
        except TimeoutError:
            break
        got.append(message)
        if message["type"] in ((until,) if isinstance(until, str) else until):
            break
    return got


async def send_offer(
    server: RunningServer,
    offer: str,
    candidates: list[dict[str, Any]] = [],  # noqa: B006 (read only)
    until: str | tuple[str, ...] = "call_ended",
    timeout: float = 5.0,
) -> list[dict[str, Any]]:
    """A fresh pair; the first sends ``offer`` then ``candidates``; what it got back."""
    pair = await attackers(server)
    try:
        await pair.first.send(type="offer", pair=pair.pair, sdp=offer)
        for candidate in candidates:
            await pair.first.send(type="candidate", pair=pair.pair, candidate=candidate)
        return await received(pair.first, until, timeout)
    finally:
        await pair.close()


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages if m["type"] != "pong"]


def defences(arena: Arena, key: str, at_least: int, timeout: float = 5.0) -> dict[str, int]:
    """The worker's counters on /stats once ``key`` reached ``at_least`` (load reports come
    every second)."""
    deadline = time.monotonic() + timeout
    while True:
        counts: dict[str, int] = worker_stats(arena.server).get("defences", {})
        if counts.get(key, 0) >= at_least or time.monotonic() > deadline:
            assert counts.get(key, 0) >= at_least, counts
            return counts
        time.sleep(0.2)


# -- the three worker-killers of the review -------------------------------------------------


def test_an_offer_with_one_mid_removed(arena: Arena) -> None:
    offer = CHROMIUM_OFFER.replace("a=mid:0\r\n", "", 1)
    got = arena.loop.run(send_offer(arena.server, offer))
    assert types(got) == ["call_ended"], got
    assert got[-1]["reason"] == "the relay refused the call"
    survived(arena)
    defences(arena, "offer_mid", 1)


def test_an_offer_with_130_bundled_m_lines(arena: Arena) -> None:
    offer = many_media_offer(130)
    assert 39_000 < len(offer) < 60_000  # what signaling lets through
    got = arena.loop.run(send_offer(arena.server, offer))
    assert types(got) == ["call_ended"], got
    survived(arena)
    defences(arena, "offer_too_many_media", 1)


def test_a_candidate_with_neither_mid_nor_index(arena: Arena) -> None:
    got = arena.loop.run(send_offer(arena.server, CHROMIUM_OFFER, [{"candidate": PUBLIC_HOST}]))
    assert types(got) == ["answer", "call_ended"], got
    survived(arena)
    defences(arena, "candidate_no_mid", 1)


# -- candidates the relay must not act on ------------------------------------------------------


def test_mdns_candidates_are_ignored_without_stalling_other_legs(arena: Arena) -> None:
    """Fifteen ``.local`` candidates once held the worker's control loop 15 s (one blocking
    look-up each); now the partner's offer, sent right after, is answered at once."""
    mdns = [
        {"candidate": f"candidate:{i} 1 udp 2122260223 {i:08x}-1234-4abc-8def-0123456789ab.local "
         f"{50000 + i} typ host", "sdpMid": "0"}
        for i in range(15)
    ]  # fmt: skip

    async def attack() -> tuple[list[dict[str, Any]], float]:
        pair = await attackers(arena.server)
        try:
            await pair.first.send(type="offer", pair=pair.pair, sdp=CHROMIUM_OFFER)
            for candidate in mdns:
                await pair.first.send(type="candidate", pair=pair.pair, candidate=candidate)
            started = time.monotonic()
            await pair.second.send(type="offer", pair=pair.pair, sdp=CHROMIUM_OFFER)
            got = await received(pair.second, "answer", 10)
            return got, time.monotonic() - started
        finally:
            await pair.close()

    got, waited = arena.loop.run(attack())
    assert types(got) == ["answer"], got
    assert waited < 3.0
    survived(arena)
    defences(arena, "candidate_mdns", 15)


def test_a_loopback_candidate_gets_no_stun_from_the_relay(arena: Arena) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        target.settimeout(3.0)
        port = target.getsockname()[1]
        loopback = {"candidate": f"candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host",
                    "sdpMid": "0"}  # fmt: skip
        got = arena.loop.run(send_offer(arena.server, CHROMIUM_OFFER, [loopback], "answer"))
        assert types(got) == ["answer"], got
        with pytest.raises(TimeoutError):
            target.recvfrom(2048)  # the relay's STUN checks would arrive within this wait
    survived(arena)
    defences(arena, "candidate_loopback", 1)


# -- NACK amplification, on a real leg ----------------------------------------------------------


class ArrivalSpy:
    """Stands in for a client's SRTP session to see every video packet that arrives, before
    decryption: a resent packet is an SRTP replay (same SSRC and seq), which the session
    rejects, so it never reaches RTP handling."""

    def __init__(self, srtp: Any, video_pts: set[int], seen: list[tuple[int, int]]) -> None:
        self._srtp = srtp
        self._video_pts = video_pts
        self._seen = seen

    def unprotect(self, data: bytes) -> bytes:
        if (data[1] & 0x7F) in self._video_pts:
            ssrc, seq = int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big")
            self._seen.append((ssrc, seq))
        return bytes(self._srtp.unprotect(data))

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return bytes(self._srtp.unprotect_rtcp(data))


def test_one_nack_naming_5100_packets_gets_each_resent_at_most_twice(arena: Arena) -> None:
    """Mallory receives Trent's video through the relay, then sends one 1,212-byte NACK whose
    300 entries each name the same 17 packets she received: the relay resends each once
    (the review measured 5,100 packets resent for this NACK). Counted as they arrive at
    Mallory's SRTP session (see ``ArrivalSpy``)."""
    from relay import rtcp

    async def attack() -> tuple[int, int]:
        mallory = await ChatPeer.join(arena.server.ws_url, level=90, tone_hz=700)
        trent = await ChatPeer.join(arena.server.ws_url, level=160, tone_hz=900)
        try:
            await mallory.wait_for_frames(5, timeout=30)
            assert mallory.pc is not None
            transceivers = mallory.pc.getTransceivers()
            (dtls,) = {t.receiver.transport for t in transceivers}
            video_pts = {c.payloadType for t in transceivers if t.kind == "video"
                         for c in t._codecs if c.mimeType.lower() != "video/rtx"}  # fmt: skip
            seen: list[tuple[int, int]] = []  # (ssrc, seq) of each video packet that arrived
            dtls._rx_srtp = ArrivalSpy(dtls._rx_srtp, video_pts, seen)
            await asyncio.sleep(1.0)
            ssrc, first = seen[-20]
            named = {(ssrc, (first + i) & 0xFFFF) for i in range(17)}
            body = (0x1234).to_bytes(4, "big") + ssrc.to_bytes(4, "big")
            body += (first.to_bytes(2, "big") + b"\xff\xff") * 300
            nack = bytes((0x80 | rtcp.FMT_NACK, rtcp.RTCP_RTPFB)) + (len(body) // 4).to_bytes(
                2, "big"
            ) + body  # fmt: skip
            assert len(nack) == 1212
            before = len(seen)
            await dtls._send_rtp(nack)
            await asyncio.sleep(1.5)
            resent = sum(1 for p in seen[before:] if p in named)
            return resent, len(named)
        finally:
            await mallory.close()
            await trent.close()

    resent, named = arena.loop.run(attack())
    assert 0 < resent <= 2 * named, resent
    survived(arena)
    defences(arena, "nack_repeats", 5100 - 17)


# -- fuzzing: mutated real offers, odd candidates -------------------------------------------


FUZZ_WARNINGS = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
)
"""Hypothesis sees the global ``random`` state move while it draws an example: that is
aiortc in the call's thread (``LoopThread``), not the strategies."""

_LINE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
_EDIT = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 10_000)),
    st.tuples(st.just("repeat"), st.integers(0, 10_000)),
    st.tuples(st.just("replace"), st.integers(0, 10_000), _LINE),
    st.tuples(st.just("insert"), st.integers(0, 10_000), _LINE.map(lambda s: "a=" + s)),
    st.tuples(st.just("digits"), st.integers(0, 10_000), st.integers(-1, 2**33)),
)


def mutate(sdp: str, edits: list[tuple[Any, ...]]) -> str:
    lines = sdp.split("\r\n")
    for kind, at, *rest in edits:
        i = at % len(lines)
        if kind == "drop" and len(lines) > 1:
            del lines[i]
        elif kind == "repeat":
            lines.insert(i, lines[i])
        elif kind == "replace":
            lines[i] = rest[0]
        elif kind == "insert":
            lines.insert(i, rest[0])
        elif kind == "digits":
            words = lines[i].split(" ")
            words[at % len(words)] = str(rest[0])
            lines[i] = " ".join(words)
    return "\r\n".join(lines)


@pytest.fixture(scope="module")
def real_offers(arena: Arena) -> list[str]:
    return [CHROMIUM_OFFER, arena.loop.run(aiortc_offer())]


@FUZZ_WARNINGS
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(which=st.integers(0, 1), edits=st.lists(_EDIT, min_size=1, max_size=6))
def test_fuzzed_offers_never_end_the_worker(
    arena: Arena, real_offers: list[str], which: int, edits: list[tuple[Any, ...]]
) -> None:
    offer = mutate(real_offers[which], edits)
    if not offer.strip() or len(offer) > 60_000:
        return  # signaling's own checks refuse these before any worker sees them
    outcomes = ("answer", "call_ended", "error")
    got = arena.loop.run(send_offer(arena.server, offer, until=outcomes, timeout=3.0))
    assert "call_ended" in types(got) or "answer" in types(got) or "error" in types(got), got
    assert worker_stats(arena.server)["pid"] == arena.pid


_CANDIDATE = st.one_of(
    st.builds(
        "candidate:{} {} {} {} {} {} typ {}{}".format,
        st.text("abc123", min_size=0, max_size=4),
        st.sampled_from(["1", "2", "0", "x", "99999999999"]),
        st.sampled_from(["udp", "tcp", "UDP", "sctp", ""]),
        st.sampled_from(["2122260223", "-1", "1e9", "0"]),
        st.sampled_from(["203.0.113.7", "127.0.0.1", "::1", "fe80::1", "0.0.0.0", "224.0.0.1",
                         "x.local", "example.com", "999.1.1.1", "", "[::1]"]),
        st.sampled_from(["9", "0", "65536", "-5", "abc"]),
        st.sampled_from(["host", "srflx", "relay", "prflx", "bogus"]),
        st.sampled_from(["", " raddr 0.0.0.0 rport 0", " rport x", " tcptype", " generation 0"]),
    ),
    _LINE,
)  # fmt: skip


@FUZZ_WARNINGS
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    candidates=st.lists(
        st.fixed_dictionaries(
            {"candidate": _CANDIDATE},
            optional={
                "sdpMid": st.sampled_from(["0", "1", "7", ""]),
                "sdpMLineIndex": st.integers(0, 64),
            },
        ),
        min_size=1,
        max_size=admission.MAX_CANDIDATES_PER_LEG + 8,
    )
)
def test_fuzzed_candidates_never_end_the_worker(
    arena: Arena, candidates: list[dict[str, Any]]
) -> None:
    # a crash shows on /stats at once; a refusal takes ~0.1 s; most candidates are ignored
    arena.loop.run(send_offer(arena.server, CHROMIUM_OFFER, candidates, timeout=0.3))
    assert worker_stats(arena.server)["pid"] == arena.pid


def test_after_the_fuzzers_the_other_call_still_has_media(arena: Arena) -> None:
    survived(arena)
