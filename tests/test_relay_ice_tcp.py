"""The relay's ICE-TCP listener (relay/ice_tcp.py) with real aioice connections and sockets.

What Chromium does against it is in tests/test_relay_ice_tcp_browser.py; here each rule is
shown on its own: which first messages attach a connection, which are refused, how a stalled
reader is bounded, that a whole ICE exchange and data flow over the stream between two aioice
agents, and that a relayed call between aiortc peers (UDP) is offered TCP but stays on UDP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aioice import stun
from aioice.candidate import Candidate, candidate_priority
from aioice.ice import Connection, StunProtocol
from aiortc.sdp import candidate_from_sdp

from relay.ice_tcp import (
    MAX_SEND_BUFFER_BYTES,
    FramedStreamTransport,
    IceTcpListener,
    IceTcpStats,
    UnsupportedAioiceError,
    check_aioice_version,
)
from relay.ice_tcp_sdp import PassiveTcpCandidate, add_candidates, passive_tcp_priority
from relay.rfc4571 import FrameDecoder, encode_frame
from relay.worker import RelayWorker
from signaling.config import ConfigError, config_from_mapping
from signaling.route_policy import Route
from tests.support.ports import free_port, free_tcp_range
from tests.support.rtcclient import ChatPeer
from tests.support.server import (
    RunningServer,
    chatguard_serve,
    make_config,
    run_server,
    wait_for_workers,
)

ANSWER = (
    "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"
    "a=candidate:1 1 udp 2130706431 192.0.2.2 5000 typ host\r\n"
    "a=candidate:2 1 udp 2130706431 fd00::2 5001 typ host\r\n"
    "a=end-of-candidates\r\na=ice-ufrag:abcd\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:1\r\n"
    "a=candidate:1 1 udp 2130706431 192.0.2.2 5000 typ host\r\n"
    "a=end-of-candidates\r\n"
)


def test_passive_candidates_rank_below_every_udp_candidate() -> None:
    for udp_type in ("host", "prflx", "srflx"):
        assert passive_tcp_priority() < candidate_priority(1, udp_type)
    assert passive_tcp_priority() > candidate_priority(1, "relay")  # TURN: TCP here is better


def test_answer_gets_the_passive_candidates_in_every_section() -> None:
    candidates = [PassiveTcpCandidate("192.0.2.2", 7880), PassiveTcpCandidate("fd00::2", 7880)]
    sdp = add_candidates(ANSWER, candidates)
    sections = sdp.split("m=")[1:]
    for section in sections:
        lines = section.split("\r\n")
        tcp = [line for line in lines if " tcp " in line]
        assert tcp == [f"a=candidate:{c.to_sdp()}" for c in candidates]
        # after the UDP candidates, before end-of-candidates
        assert lines.index(tcp[0]) > max(i for i, x in enumerate(lines) if " udp " in x)
        assert lines[lines.index(tcp[-1]) + 1] == "a=end-of-candidates"
    parsed = candidate_from_sdp(sections[0].split("\r\n")[4].removeprefix("a=candidate:"))
    assert (parsed.protocol, parsed.tcpType, parsed.port, parsed.type) == (
        "tcp",
        "passive",
        7880,
        "host",
    )
    assert add_candidates(ANSWER, []) == ANSWER


def test_other_aioice_releases_are_refused() -> None:
    check_aioice_version()
    with pytest.raises(UnsupportedAioiceError):
        check_aioice_version("0.14.0")


# -- the listener, with a raw TCP client standing in for the browser ----------------------


@contextlib.asynccontextmanager
async def listening(
    max_send_buffer: int = MAX_SEND_BUFFER_BYTES,
    first_message_timeout_s: float = 10.0,
    max_unattached: int = 8,
) -> AsyncIterator[tuple[IceTcpListener, Connection]]:
    """A listener on a free port and one registered leg (an aioice connection, as aiortc's)."""
    listener = IceTcpListener(
        0, "127.0.0.1", max_send_buffer, first_message_timeout_s, max_unattached
    )
    await listener.start()
    leg = Connection(ice_controlling=False, use_ipv6=False)
    await leg.gather_candidates()
    listener.offer(leg, ANSWER)
    try:
        yield listener, leg
    finally:
        await leg.close()
        await listener.close()


def binding_request(username: str, password: str) -> stun.Message:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1518280447
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(password.encode())
    return request


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    length = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(length)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionError):
        return await asyncio.wait_for(reader.read(), 2) == b""
    return True


async def test_an_authenticated_first_check_attaches_the_connection_and_is_answered() -> None:
    async with listening() as (listener, leg):
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        request = binding_request(f"{leg.local_username}:brws", leg.local_password)
        protocols_before = len(leg._protocols)
        # split across writes: the listener must reassemble it
        frame = encode_frame(bytes(request))
        writer.write(frame[:3])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(frame[3:])
        response = stun.parse_message(await asyncio.wait_for(read_frame(reader), 2))
        assert response.message_class == stun.Class.RESPONSE
        assert response.transaction_id == request.transaction_id
        assert response.attributes["XOR-MAPPED-ADDRESS"] == writer.get_extra_info("sockname")
        assert response.check_message_integrity(leg.local_password.encode())
        (attached,) = leg._protocols[protocols_before:]
        candidate = attached.local_candidate
        assert (candidate.transport, candidate.tcptype) == ("tcp", "passive")
        assert (candidate.host, candidate.port) == ("127.0.0.1", listener.port)
        assert listener.stats == IceTcpStats(accepted=1, attached=1)
        # closing the leg closes its TCP connections
        await leg.close()
        assert await closed_by_server(reader)
        writer.close()


def first_frames(leg: Connection) -> Iterator[tuple[str, bytes]]:
    yield "not_stun", encode_frame(b"\x16\xfe\xfd" + b"\x00" * 40)  # a DTLS record
    indication = stun.Message(
        message_method=stun.Method.BINDING, message_class=stun.Class.INDICATION
    )
    yield "not_stun", encode_frame(bytes(indication))
    yield "unknown_username", encode_frame(bytes(binding_request("zzzz:brws", "x" * 22)))
    yield (
        "unauthenticated",
        encode_frame(bytes(binding_request(f"{leg.local_username}:brws", "wrong" * 5))),
    )
    yield "oversize", b"\xff\xff" + b"\x00" * 100


async def test_first_messages_that_name_no_leg_are_refused_and_counted() -> None:
    async with listening() as (listener, leg):
        protocols = list(leg._protocols)
        refused = 0
        for counter, data in first_frames(leg):
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(data)
            assert await closed_by_server(reader), counter
            writer.close()
            refused += 1
            assert getattr(listener.stats, counter) >= 1, counter
        assert listener.stats.accepted == refused
        assert listener.stats.attached == 0
        assert leg._protocols == protocols  # nothing was handed to the leg


async def test_a_silent_connection_is_closed() -> None:
    async with listening(first_message_timeout_s=0.2) as (listener, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await closed_by_server(reader)
        assert listener.stats.first_message_timeouts == 1
        writer.close()


async def test_idle_connections_are_bounded_and_dropped_when_the_listener_closes() -> None:
    async with listening(max_unattached=2) as (listener, _):
        idle = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(2)]
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await closed_by_server(reader)
        assert listener.stats.too_many_unattached == 1
        assert len(listener.unattached) == 2
        await listener.close()
        for idle_reader, idle_writer in idle:
            assert await closed_by_server(idle_reader)
            idle_writer.close()
        writer.close()
        assert not listener.unattached


async def test_a_forgotten_leg_is_no_longer_reachable() -> None:
    async with listening() as (listener, leg):
        listener.forget(leg)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(encode_frame(bytes(binding_request(f"{leg.local_username}:b", "p" * 22))))
        assert await closed_by_server(reader)
        assert listener.stats.unknown_username == 1
        writer.close()


async def test_a_stalled_reader_gets_a_bounded_backlog_then_drops() -> None:
    limit = 64 * 1024
    async with listening(max_send_buffer=limit) as (listener, leg):
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", listener.port))
        request = binding_request(f"{leg.local_username}:brws", leg.local_password)
        client.send(encode_frame(bytes(request)))
        while listener.stats.attached == 0:
            await asyncio.sleep(0.01)
        attached = leg._protocols[-1]
        packet = b"\x80" + b"m" * 1199
        for _ in range(50):  # ~6 MB offered to a reader that reads nothing
            for _ in range(100):
                attached.transport.sendto(packet, ("127.0.0.1", 0))
            await asyncio.sleep(0)
        assert listener.stats.dropped_packets > 0
        assert attached.transport.get_write_buffer_size() <= limit + len(packet) + 2
        # the leg still closes promptly although its peer never read
        await asyncio.wait_for(leg.close(), 2)
        client.close()


# -- a whole ICE exchange over the stream, aioice on both ends -------------------------------


class _ActiveTcpClient(asyncio.Protocol):
    """The browser's side of RFC 6544: an active TCP candidate of a controlling aioice agent."""

    def __init__(self, agent: Connection) -> None:
        self.stun = StunProtocol(agent)
        self.decoder = FrameDecoder()
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        host, port = transport.get_extra_info("sockname")[:2]
        self.peer = transport.get_extra_info("peername")[:2]
        self.stun.local_candidate = Candidate(
            "activetcp", 1, "tcp", 1518280447, host, port, "host", tcptype="active"
        )
        self.stun.connection_made(FramedStreamTransport(transport, IceTcpStats(), 1 << 20))

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.stun.datagram_received(frame, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stun.connection_lost(exc)


async def test_ice_completes_and_data_flows_both_ways_over_the_stream() -> None:
    async with listening() as (listener, relay):
        browser = Connection(ice_controlling=True, use_ipv6=False)
        browser._local_candidates_end = True  # its only candidate is the TCP one below
        relay.remote_username = browser.local_username
        relay.remote_password = browser.local_password
        browser.remote_username = relay.local_username
        browser.remote_password = relay.local_password
        passive = PassiveTcpCandidate("127.0.0.1", listener.port)
        _, client = await asyncio.get_running_loop().create_connection(
            lambda: _ActiveTcpClient(browser), "127.0.0.1", listener.port
        )
        browser._protocols.append(client.stun)
        await browser.add_remote_candidate(passive)
        await browser.add_remote_candidate(None)
        try:
            await asyncio.wait_for(asyncio.gather(browser.connect(), relay.connect()), 10)
            nominated = relay._nominated[1]
            assert nominated.local_candidate.transport == "tcp"
            assert nominated.remote_addr == browser._nominated[1].local_addr
            for i in range(20):
                await browser.send(b"up %d" % i)
                await relay.send(b"down %d" % i)
            ups = [await asyncio.wait_for(relay.recv(), 2) for _ in range(20)]
            downs = [await asyncio.wait_for(browser.recv(), 2) for _ in range(20)]
            assert ups == [b"up %d" % i for i in range(20)]
            assert downs == [b"down %d" % i for i in range(20)]
            assert listener.stats.attached == 1
        finally:
            await browser.close()


# -- a relayed call between aiortc peers, which have no TCP ----------------------------------


@pytest.fixture
def token_server() -> Iterator[RunningServer]:
    config = make_config(relay={"workers": 0, "token": "test-relay-token"})
    yield from run_server(config, Route.RELAY)


async def test_udp_peers_are_offered_tcp_and_stay_on_udp(token_server: RunningServer) -> None:
    port = free_port()
    worker = RelayWorker(
        token_server.ws_url.replace("/ws", "/relay"),
        "test-relay-token",
        "w1",
        10,
        ice_tcp_port=port,
    )
    running = asyncio.create_task(worker.run())
    await wait_for_workers(token_server, 1)
    alice = await ChatPeer.join(token_server.ws_url, level=200, tone_hz=440)
    bob = await ChatPeer.join(token_server.ws_url, level=60, tone_hz=1000)
    try:
        await alice.wait_for_frames(10)
        await bob.wait_for_frames(10)
        for peer in (alice, bob):
            assert peer.pc is not None
            answer = peer.pc.remoteDescription.sdp
            assert f" tcp {passive_tcp_priority()} " in answer
            assert f" {port} typ host tcptype passive" in answer
        assert worker.ice_tcp is not None and worker.ice_tcp.port == port
        for leg in worker.legs.values():
            assert leg.relay_leg is not None
            nominated = leg.relay_leg.ice_connection._nominated[1]
            assert nominated.local_candidate.transport == "udp"
        assert worker.ice_tcp.stats.accepted == 0
    finally:
        await alice.close()
        await bob.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


def test_the_configured_base_must_leave_a_port_for_every_worker() -> None:
    assert config_from_mapping({}).relay.ice_tcp_port == 7880  # on unless switched off
    config_from_mapping({"relay": {"workers": 2, "ice_tcp_port": 65534}})
    config_from_mapping({"relay": {"workers": 2, "ice_tcp_port": 0}})
    for bad in (65535, -1):
        with pytest.raises(ConfigError, match="ice_tcp_port"):
            config_from_mapping({"relay": {"workers": 2, "ice_tcp_port": bad}})


def test_serve_gives_each_local_worker_its_own_consecutive_port(tmp_path: Path) -> None:
    base = free_tcp_range(2)[0]  # below the ephemeral ports the servers get
    with chatguard_serve(tmp_path, f"[relay]\nworkers = 2\nice_tcp_port = {base}\n") as url:
        deadline = time.monotonic() + 20
        while len(httpx.get(url.admin + "/stats", timeout=5).json()["relay_workers"]) < 2:
            assert time.monotonic() < deadline, "the relay workers did not join"
            time.sleep(0.2)
        for port in (base, base + 1):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
                tcp.sendall(encode_frame(b"not a STUN message"))
                assert tcp.recv(16) == b""  # an ICE-TCP listener: it refuses what is not ICE
