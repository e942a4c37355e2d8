"""Operator-set addresses and ports of relay workers (relay/ice_gathering.py).

The rules alone (which addresses, which names, which ports), then real aiortc answers made
under a policy, then a `chatguard serve` whose worker must keep every ICE socket inside the
configured UDP port range, read from the worker's own sockets in /proc.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aioice import stun
from aioice.ice import Connection
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from chatguard.cli import _build_parser, _gathering
from chatguard.supervisor import gathering_options
from relay.aiortc_adapter import AiortcLeg
from relay.ice_gathering import (
    GatheringPolicy,
    _bind,
    candidate_hosts,
    gather_by_policy,
    interface_addresses,
    ports_to_try,
    restrict_gathering,
    select_addresses,
)
from relay.ice_udp_mux import UdpMux
from signaling.config import ConfigError, config_from_mapping
from tests.support.ports import free_udp_range
from tests.support.rtcclient import ChatPeer
from tests.support.server import chatguard_serve

MACHINE = [
    ("lo", "127.0.0.1"),
    ("lo", "::1"),
    ("eth0", "192.0.2.2"),
    ("eth0", "fd00::2"),
    ("eth0", "fe80::fc:ff:fe00:1"),
    ("docker0", "172.17.0.1"),
]


def test_by_default_every_address_but_loopback_and_link_local() -> None:
    assert select_addresses(MACHINE, []) == ["192.0.2.2", "fd00::2", "172.17.0.1"]


def test_gather_from_names_interfaces_addresses_and_networks() -> None:
    assert select_addresses(MACHINE, ["eth0"]) == ["192.0.2.2", "fd00::2"]
    assert select_addresses(MACHINE, ["192.0.2.0/24"]) == ["192.0.2.2"]
    assert select_addresses(MACHINE, ["172.17.0.1", "lo"]) == ["127.0.0.1", "::1", "172.17.0.1"]
    assert select_addresses(MACHINE, ["fe80::/10"]) == []  # link-local never: no scope in SDP
    assert select_addresses(MACHINE, ["wlan0"]) == []


def test_announced_addresses_replace_or_join_the_interface_address_of_their_family() -> None:
    policy = GatheringPolicy(announced=("203.0.113.7", "2001:db8::7"))
    assert candidate_hosts("10.0.0.5", policy) == ["203.0.113.7"]
    assert candidate_hosts("fd00::5", policy) == ["2001:db8::7"]
    v4_only = GatheringPolicy(announced=("203.0.113.7", "203.0.113.8"))
    assert candidate_hosts("10.0.0.5", v4_only) == ["203.0.113.7", "203.0.113.8"]
    assert candidate_hosts("fd00::5", v4_only) == ["fd00::5"]  # no IPv6 announced: unchanged
    kept = GatheringPolicy(announced=("203.0.113.7",), keep_interface_addresses=True)
    assert candidate_hosts("10.0.0.5", kept) == ["203.0.113.7", "10.0.0.5"]


def test_a_port_range_is_tried_whole_from_a_random_offset() -> None:
    tried = list(ports_to_try((40000, 40009), random.Random(3)))
    assert sorted(tried) == list(range(40000, 40010))
    starts = {next(ports_to_try((40000, 40009), random.Random(seed))) for seed in range(20)}
    assert len(starts) > 1  # legs spread over the range instead of racing for its first port
    assert list(ports_to_try(None, random.Random(0))) == [0]


def test_config_checks_ports_and_addresses() -> None:
    relay = config_from_mapping({"relay": {"udp_ports": "40000-40199"}}).relay
    assert relay.udp_port_range() == (40000, 40199)
    assert config_from_mapping({}).relay.udp_port_range() is None
    for bad in ("40199-40000", "0-10", "40000-70000", "ports"):
        with pytest.raises(ConfigError, match="udp_ports"):
            config_from_mapping({"relay": {"udp_ports": bad}})
    with pytest.raises(ConfigError, match="announced_addresses"):
        config_from_mapping({"relay": {"announced_addresses": ["example.com"]}})
    assert config_from_mapping({"relay": {"workers": 2, "udp_port": 65534}}).relay.udp_port
    with pytest.raises(ConfigError, match="leave a port per worker"):
        config_from_mapping({"relay": {"workers": 2, "udp_port": 65535}})
    with pytest.raises(ConfigError, match="exclude each other"):
        config_from_mapping({"relay": {"udp_port": 40000, "udp_ports": "40001-40002"}})


def test_relay_options_and_the_supervisor_pass_the_same_settings() -> None:
    relay = config_from_mapping(
        {
            "relay": {
                "udp_ports": "40000-40199",
                "gather_from": ["eth0"],
                "announced_addresses": ["203.0.113.7"],
                "announce_interface_addresses": True,
            }
        }
    ).relay
    options = gathering_options(relay)
    args = _build_parser().parse_args(["relay", "--signaling", "ws://x/relay", *options])
    assert _gathering(args) == GatheringPolicy(
        gather_from=("eth0",),
        announced=("203.0.113.7",),
        keep_interface_addresses=True,
        udp_ports=(40000, 40199),
    )
    assert _gathering(args).describe() == (
        "gathered on eth0, offered as 203.0.113.7 and the interface addresses, "
        "UDP ports 40000-40199"
    )
    args = _build_parser().parse_args(["relay", "--signaling", "ws://x/relay"])
    assert _gathering(args).is_default
    bad = _build_parser().parse_args(["relay", "--signaling", "ws://x/relay", "--announce", "x"])
    with pytest.raises(ConfigError, match="announced_addresses"):
        _gathering(bad)


# -- real aiortc answers under a policy ---------------------------------------------------------


async def answer_candidates(policy: GatheringPolicy) -> list[list[str]]:
    """The candidate lines (split) of a relay-style answer made under ``policy``."""
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        offerer.addTransceiver("video")
        offerer.addTransceiver("audio")
        await offerer.setLocalDescription(await offerer.createOffer())
        offer = offerer.localDescription
        await answerer.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
        AiortcLeg.prepare_transceivers(answerer)
        restrict_gathering(answerer, policy)
        await answerer.setLocalDescription(await answerer.createAnswer())
        sdp = answerer.localDescription.sdp
    finally:
        await offerer.close()
        await answerer.close()
    lines = [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]
    return lines[: len(lines) // 2]  # BUNDLE: both sections repeat the same candidates


async def test_the_interface_filter_leaves_the_other_addresses_out_of_the_answer() -> None:
    everything = {c[4] for c in await answer_candidates(GatheringPolicy())}
    assert "127.0.0.1" not in everything  # aioice never offers loopback by itself
    others = everything - {"127.0.0.1"}
    assert others, "this test needs an interface besides lo"
    filtered = await answer_candidates(GatheringPolicy(gather_from=("lo",)))
    loopback = {address for name, address in interface_addresses() if name == "lo"}
    assert {c[4] for c in filtered} == loopback
    assert not loopback & others


async def test_answers_carry_announced_addresses_on_ports_from_the_range() -> None:
    first, last = free_udp_range(8)
    policy = GatheringPolicy(
        gather_from=("127.0.0.1",),
        announced=("198.51.100.7", "198.51.100.8"),
        keep_interface_addresses=True,
        udp_ports=(first, last),
    )
    candidates = await answer_candidates(policy)
    assert [c[4] for c in candidates] == ["198.51.100.7", "198.51.100.8", "127.0.0.1"]
    ports = {int(c[5]) for c in candidates}
    assert len(ports) == 1 and first <= ports.pop() <= last  # one socket, three names
    assert all(c[2] == "udp" and c[7] == "host" for c in candidates)


# -- a served worker keeps to its port range ----------------------------------------------------


def udp_ports_of(pid: int) -> list[int]:
    """Local port of each UDP socket process `pid` holds (its fds against /proc/net/udp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def port_range() -> Iterator[tuple[int, int]]:
    yield free_udp_range(20)


async def served_call_udp_ports(tmp_path: Path, relay_settings: str) -> list[int]:
    """The local ports of the UDP sockets of a served worker, with `relay_settings` (TOML
    lines of `[relay]`), while two aiortc clients are in a relayed call through it."""
    config = (
        '[regions]\ndefault_route = "relay"\n'
        '[relay]\nworkers = 1\nice_tcp_port = 0\ngather_from = ["127.0.0.1"]\n' + relay_settings
    )  # one gathered address, whatever else this machine has at the time
    with chatguard_serve(tmp_path, config) as url:  # ready: the relay worker has joined
        ws_url = url.replace("http://", "ws://") + "/ws"
        alice = await ChatPeer.join(ws_url, level=200, tone_hz=440)
        bob = await ChatPeer.join(ws_url, level=60, tone_hz=1000)
        try:
            await alice.wait_for_frames(5)
            await bob.wait_for_frames(5)
            workers = httpx.get(url.admin + "/stats", timeout=5).json()["relay_workers"]
            (pid,) = [w["pid"] for w in workers]
            return udp_ports_of(pid)
        finally:
            await alice.close()
            await bob.close()


@pytest.mark.slow
async def test_a_served_worker_binds_its_ice_sockets_inside_the_port_range(
    tmp_path: Path, port_range: tuple[int, int]
) -> None:
    first, last = port_range
    ports = await served_call_udp_ports(tmp_path, f'udp_ports = "{first}-{last}"\n')
    assert len(ports) == 2  # one socket per leg (and gathered address)
    assert all(first <= port <= last for port in ports), (ports, port_range)


@pytest.mark.slow
async def test_a_served_worker_with_a_shared_port_carries_every_leg_on_it(
    tmp_path: Path,
) -> None:
    port, _ = free_udp_range(1)
    assert await served_call_udp_ports(tmp_path, f"udp_port = {port}\n") == [port]


# -- one shared UDP port per worker --------------------------------------------------------------


@dataclass
class EchoCall:
    """A client and a mux-gathering answerer that echoes what arrives on a data channel."""

    client: RTCPeerConnection
    answerer: RTCPeerConnection
    channel: RTCDataChannel
    echoed: list[str]


async def echo_call(mux: UdpMux) -> EchoCall:
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    @answerer.on("datachannel")
    def on_channel(channel: RTCDataChannel) -> None:
        channel.on("message", channel.send)

    call = EchoCall(client, answerer, client.createDataChannel("echo"), [])
    call.channel.on("message", call.echoed.append)
    await client.setLocalDescription(await client.createOffer())
    offer = client.localDescription
    await answerer.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
    restrict_gathering(answerer, GatheringPolicy(gather_from=("127.0.0.1",)), mux)
    await answerer.setLocalDescription(await answerer.createAnswer())
    answer = answerer.localDescription
    await client.setRemoteDescription(RTCSessionDescription(answer.sdp, answer.type))
    return call


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def test_legs_share_one_udp_port_and_keep_their_own_traffic() -> None:
    port, _ = free_udp_range(1)
    mux = UdpMux(port, ["127.0.0.1"])
    await mux.start()
    calls = [await echo_call(mux) for _ in range(2)]
    try:
        for i, call in enumerate(calls):
            sdp = call.answerer.localDescription.sdp
            candidates = [line.split() for line in sdp.splitlines() if "a=candidate:" in line]
            assert {(c[4], int(c[5])) for c in candidates} == {("127.0.0.1", port)}
            await until(lambda call=call: call.channel.readyState == "open", "no channel")
            call.channel.send(f"leg {i}")
        for i, call in enumerate(calls):
            await until(lambda call=call: bool(call.echoed), "no echo")
            assert call.echoed == [f"leg {i}"]  # each leg's answerer, through one socket
        assert mux.stats.dropped == 0
        assert udp_ports_of(os.getpid()).count(port) == 1  # one socket for both legs
    finally:
        for call in calls:
            await call.client.close()
            await call.answerer.close()
    assert all(not shared.legs and not shared.owners for shared in mux._sockets.values())
    mux.close()


def binding_request(username: str, password: str) -> bytes:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1518280447
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(password.encode())
    return bytes(request)


async def test_the_shared_port_learns_a_peer_from_an_authenticated_check_only() -> None:
    port, _ = free_udp_range(1)
    mux = UdpMux(port, ["127.0.0.1"])
    await mux.start()
    leg = Connection(ice_controlling=False)
    gather_by_policy(leg, GatheringPolicy(gather_from=("127.0.0.1",)), mux)
    await leg.gather_candidates()
    assert [(c.host, c.port) for c in leg.local_candidates] == [("127.0.0.1", port)]
    ufrag, password = leg.local_username, leg.local_password
    loop = asyncio.get_running_loop()
    try:
        for username, key, answered in (
            ("nobody:peer", password, False),  # names no leg
            (f"{ufrag}:peer", "wrong-password-wrong-pw", False),
            (f"{ufrag}:peer", password, True),
        ):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind(("127.0.0.1", 0))
                peer.setblocking(False)
                peer.sendto(binding_request(username, key), ("127.0.0.1", port))
                try:
                    reply = await asyncio.wait_for(loop.sock_recv(peer, 1500), 0.5)
                except TimeoutError:
                    reply = b""
                assert bool(reply) == answered, username
                if answered:
                    assert stun.parse_message(reply).message_class == stun.Class.RESPONSE
        assert (mux.stats.dropped, mux.stats.learned_addresses) == (2, 1)
    finally:
        await leg.close()
        mux.close()


# uvloop leaves the transport of a failed bind for the collector, which warns about it
UVLOOP_LEAVES_FAILED_BINDS = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning"
)


@pytest.mark.parametrize(
    "loop_kind", ["asyncio", pytest.param("uvloop", marks=UVLOOP_LEAVES_FAILED_BINDS)]
)
def test_a_taken_port_in_the_range_is_skipped_on_either_event_loop(loop_kind: str) -> None:
    """Workers run on uvloop, whose bind error carries no errno (the system's error is its
    cause): a port of the range that another leg holds must be skipped there too, not end
    the gathering on that address."""
    first, last = free_udp_range(2)
    policy = GatheringPolicy(udp_ports=(first, last))

    async def bind_beside_a_taken_port() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", first))
            for seed in range(4):  # either port first
                protocol = await _bind(Connection(ice_controlling=False), "127.0.0.1", policy,
                                       random.Random(seed))  # fmt: skip
                assert protocol is not None and protocol.transport is not None
                port = int(protocol.transport.get_extra_info("sockname")[1])
                protocol.transport.close()
                await asyncio.sleep(0.01)  # the socket closes on the loop's next turn
                assert port == last
        return port

    if loop_kind == "uvloop":
        import uvloop

        assert uvloop.run(bind_beside_a_taken_port()) == last
    else:
        assert asyncio.run(bind_beside_a_taken_port()) == last
