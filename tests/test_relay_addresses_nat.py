"""A relay worker behind 1:1 NAT is reached through the address it announces.

The worker runs (`chatguard relay`, as an operator starts it) inside a network namespace that
this machine sees only through a simulated 1:1 NAT (tests/support/netns.py `one_to_one_nat`):
UDP to its own address is dropped, UDP to the "public" address is translated to it. Signaling
and two aiortc clients run here. The worker gathers on its private address and announces the
public one; the clients' calls connect, and the relay address they use is the public one.
Without the announcement the same worker is unreachable (the clients' side, like nearly every
client's, takes UDP only as replies to what it sent, so peer-reflexive discovery cannot stand
in for the announcement).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from chatguard.supervisor import TOKEN_ENV
from signaling.route_policy import Route
from tests.support.netns import (
    SUBNET_BASE,
    NamespaceHost,
    echo_server,
    isolated_hosts_or_skip,
    one_to_one_nat,
    probe,
)
from tests.support.rtcclient import ChatPeer
from tests.support.server import RunningServer, make_config, run_server, wait_for_workers

pytestmark = [pytest.mark.netns, pytest.mark.slow]

TOKEN = "nat-test-relay-token"


@pytest.fixture
def natted_host() -> Iterator[tuple[NamespaceHost, str]]:
    """A test host behind 1:1 NAT and its public address, the NAT checked both ways."""
    with isolated_hosts_or_skip(1) as hosts, one_to_one_nat(hosts.hosts[0]) as public:
        host = hosts.hosts[0]
        with echo_server(host) as port:
            assert probe(None, public, port)["udp"] is True
            private = probe(None, host.address, port)
        assert (private["tcp"], private["udp"]) == (True, False), private
        yield host, public


@pytest.fixture
def signaling() -> Iterator[RunningServer]:
    relay = {"workers": 0, "token": TOKEN, "workers_from": [f"{SUBNET_BASE}.0.0/16"]}
    config = make_config(server={"host": "0.0.0.0"}, relay=relay)  # workers from the test hosts
    yield from run_server(config, Route.RELAY)


@contextlib.contextmanager
def worker_in(host: NamespaceHost, signaling_port: int, *options: str) -> Iterator[None]:
    argv = [
        sys.executable, "-P", "-m", "chatguard.cli", "relay",
        "--signaling", f"ws://{host.gateway}:{signaling_port}/relay",
        "--worker-id", "natted", "--log-level", "warning", *options,
    ]  # fmt: skip
    with subprocess.Popen(host.command(*argv), env={**os.environ, TOKEN_ENV: TOKEN}) as process:
        try:
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.mark.parametrize("ports", [(), ("--udp-port", "40000")], ids=["port_per_leg", "shared"])
async def test_a_worker_behind_nat_is_reached_through_its_announced_address(
    natted_host: tuple[NamespaceHost, str], signaling: RunningServer, ports: tuple[str, ...]
) -> None:
    host, public = natted_host
    options = ("--gather-from", host.address, "--announce", public, "--ice-tcp-port", "7880")
    options += ports
    with worker_in(host, signaling.port, *options):
        await wait_for_workers(signaling, 1)
        ws_url = f"ws://127.0.0.1:{signaling.port}/ws"
        alice = await ChatPeer.join(ws_url, level=200, tone_hz=440)
        bob = await ChatPeer.join(ws_url, level=60, tone_hz=1000)
        try:
            await alice.wait_for_frames(5)
            await bob.wait_for_frames(5)
            for peer in (alice, bob):
                assert peer.route == "relay"
                assert peer.pc is not None
                answer = peer.pc.remoteDescription.sdp
                offered = {
                    (fields[2], fields[4])
                    for line in answer.splitlines()
                    if line.startswith("a=candidate:") and (fields := line.split())
                }
                # the private address is offered neither for UDP nor for ICE-TCP
                assert offered == {("udp", public), ("tcp", public)}
                if ports:
                    assert f" {public} 40000 typ host" in answer
                pair = peer.pc.getTransceivers()[0].receiver.transport.transport
                nominated = pair.iceGatherer._connection._nominated[1]
                assert nominated.remote_addr[0] == public
        finally:
            await alice.close()
            await bob.close()
            await asyncio.sleep(0)


async def test_without_the_announcement_the_same_worker_is_unreachable(
    natted_host: tuple[NamespaceHost, str], signaling: RunningServer
) -> None:
    host, _ = natted_host
    with worker_in(host, signaling.port, "--gather-from", host.address):
        await wait_for_workers(signaling, 1)
        ws_url = f"ws://127.0.0.1:{signaling.port}/ws"
        alice = await ChatPeer.join(ws_url, level=200, tone_hz=440)
        bob = await ChatPeer.join(ws_url, level=60, tone_hz=1000)
        try:
            with pytest.raises(AssertionError, match="0 frames arrived"):
                await alice.wait_for_frames(1, timeout=5)
            assert alice.pc is not None
            answer = alice.pc.remoteDescription.sdp
            assert f" {host.address} " in answer  # offered, but behind the NAT
        finally:
            await alice.close()
            await bob.close()
