from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import pytest

from signaling import protocol as p
from signaling.config import IceConfig, TurnConfig
from signaling.ice import ice_servers_for, stun_servers, turn_credentials, with_turn
from tests.support.browser import chromium, open_pages, requires_chromium, wait_for_state
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import Client

CONFIG = IceConfig(
    stun_urls=["stun:stun.example.org:3478"],
    turn=TurnConfig(urls=["turn:turn.example.org:3478"], secret="k"),
)


def test_turn_credentials_follow_coturn_shared_secret_scheme() -> None:
    username, password = turn_credentials("s3cret", "alice", 1_700_000_000)
    assert username == "1700000000:alice"
    # coturn: password = base64(HMAC-SHA1(static-auth-secret, username)), computed independently
    mac = hmac.HMAC(b"s3cret", msg=b"1700000000:alice", digestmod=hashlib.sha1)
    assert base64.b64decode(password) == mac.digest()
    # a fixed vector, so a change of hash or encoding cannot slip through unnoticed
    assert (
        password
        == base64.b64encode(
            bytes.fromhex(hmac.new(b"s3cret", b"1700000000:alice", "sha1").hexdigest())
        ).decode()
    )


def test_ice_servers_carry_expiring_turn_credentials() -> None:
    config = IceConfig(
        stun_urls=["stun:stun.example.org:3478"],
        turn=TurnConfig(
            urls=["turn:turn.example.org:3478?transport=udp"], secret="k", credential_ttl_s=600
        ),
    )
    stun, turn = ice_servers_for(config, "bob", now_unix=1000.4)
    assert stun.urls == ["stun:stun.example.org:3478"] and stun.username is None
    assert turn.username == "1600:bob"
    assert turn.credential == turn_credentials("k", "bob", 1600)[1]


def test_no_servers_configured_means_none_handed_out() -> None:
    assert ice_servers_for(IceConfig(), "x", 0) == []


def test_the_turn_credential_lives_five_minutes_by_default() -> None:
    _, turn = ice_servers_for(CONFIG, "bob", now_unix=1000)
    assert turn.username == "1300:bob"


def test_before_join_only_stun_is_handed_out() -> None:
    assert stun_servers(CONFIG) == [p.IceServer(urls=["stun:stun.example.org:3478"])]


def test_a_pairing_a_reroute_or_a_refresh_carries_fresh_turn_credentials() -> None:
    paired = with_turn(p.Paired(pair="x", role="offerer", route="direct"), CONFIG, "bob", 2000)
    rerouted = with_turn(p.Reroute(pair="x", route="relay", reason="r"), CONFIG, "bob", 3000)
    assert isinstance(paired, p.Paired) and isinstance(rerouted, p.Reroute)
    assert [s.username for s in paired.ice_servers] == [None, "2300:bob"]
    assert [s.username for s in rerouted.ice_servers] == [None, "3300:bob"]
    refreshed = with_turn(p.IceServers(pair="x"), CONFIG, "bob", 4000)
    assert isinstance(refreshed, p.IceServers)
    assert [s.username for s in refreshed.ice_servers] == [None, "4300:bob"]


def test_messages_that_open_no_connection_carry_no_credentials() -> None:
    kept = p.Paired(pair="x", role="offerer", route="relay", reuse=True)
    assert with_turn(kept, CONFIG, "bob", 0) is kept
    pong = p.Pong()
    assert with_turn(pong, CONFIG, "bob", 0) is pong


TURN_URL = "turn:127.0.0.1:9?transport=udp"  # nothing listens: these tests only read credentials


@pytest.fixture
def turn_server() -> Iterator[RunningServer]:
    ice = {"stun_urls": ["stun:127.0.0.1:9"], "turn": {"urls": [TURN_URL], "secret": "k"}}
    yield from run_server(make_config(ice=ice))


def assert_fresh_turn(servers: list[dict[str, Any]], user: str, since: float) -> None:
    """STUN, then TURN with a credential for `user` minted after `since` (and by now) that
    lives five minutes."""
    stun, turn = servers
    assert stun == {"urls": ["stun:127.0.0.1:9"]}
    expiry, named = turn["username"].split(":")
    assert named == user
    assert int(since) + 300 <= int(expiry) <= time.time() + 300
    assert turn["credential"] == turn_credentials("k", user, int(expiry))[1]


async def test_no_turn_credential_before_join_and_a_fresh_one_with_the_pairing(
    turn_server: RunningServer,
) -> None:
    a = await Client.connect(turn_server.ws_url)
    assert a.welcome["ice_servers"] == [{"urls": ["stun:127.0.0.1:9"]}]
    joined = time.time()
    await a.send(type="join")
    waiting = await a.expect("waiting")
    assert "ice_servers" not in waiting
    b = await Client.connect(turn_server.ws_url)
    await b.send(type="join")
    pair = ""
    for client in (a, b):
        paired = await client.expect_paired()
        assert_fresh_turn(paired["ice_servers"], client.welcome["id"], joined)
        pair = paired["pair"]
    # restoring the media: fresh credentials for the one restoring, as its ICE restart needs
    restoring = time.time() + 1  # a whole second later: the expiry has moved on with it
    await asyncio.sleep(restoring - time.time())
    await a.send(type="call_state", pair=pair, state="reconnecting", route="direct")
    refreshed = await a.expect("ice_servers")
    assert refreshed["pair"] == pair
    assert_fresh_turn(refreshed["ice_servers"], a.welcome["id"], restoring)
    assert (await b.expect("partner_state"))["state"] == "reconnecting"
    for client in (a, b):
        await client.close()


@pytest.mark.browser
@requires_chromium
async def test_the_page_connects_with_the_pairings_turn_credential(
    turn_server: RunningServer,
) -> None:
    async with chromium() as browser:
        pages = await open_pages(browser, turn_server.http_url, 2)
        started = time.time()
        for page in pages:
            await page.click("#start")
        for page in pages:
            await wait_for_state(page, "connected")
            servers = await page.evaluate("window.chatguard.pc.getConfiguration().iceServers")
            user = await page.evaluate("window.chatguard.welcome.id")
            turn = next(server for server in servers if server["urls"] == [TURN_URL])
            assert_fresh_turn([{"urls": ["stun:127.0.0.1:9"]}, turn], user, started)
