"""Protocol tests against the real app served by real uvicorn, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import websockets

from signaling.strikes import Person
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import Client, device_subprotocols


@pytest.fixture
async def pair(server: RunningServer) -> AsyncIterator[tuple[Client, Client, str]]:
    a = await Client.connect(server.ws_url)
    b = await Client.connect(server.ws_url)
    await a.send(type="join")
    await a.expect("waiting")
    await b.send(type="join")
    paired_b = await b.expect("paired")
    paired_a = await a.expect("paired")
    assert paired_a["pair"] == paired_b["pair"]
    assert {paired_a["role"], paired_b["role"]} == {"offerer", "answerer"}
    yield a, b, paired_a["pair"]
    await a.close()
    await b.close()


async def test_welcome_carries_id_region_and_settings(server: RunningServer) -> None:
    client = await Client.connect(server.ws_url, headers={"X-Country": "de"})
    assert client.welcome["region"] == "DE"
    assert client.welcome["v"] == 1
    assert client.welcome["ice_servers"] == []
    assert client.welcome["heartbeat_interval_s"] > 0
    await client.send(type="ping")
    await client.expect("pong")
    await client.close()


async def test_offer_answer_and_candidates_reach_only_the_partner(
    server: RunningServer, pair: tuple[Client, Client, str]
) -> None:
    a, b, pair_id = pair
    bystander = await Client.connect(server.ws_url)
    await a.send(type="offer", pair=pair_id, sdp="v=0 offer")
    assert (await b.expect("offer"))["sdp"] == "v=0 offer"
    await b.send(type="answer", pair=pair_id, sdp="v=0 answer")
    assert (await a.expect("answer"))["sdp"] == "v=0 answer"
    candidate = {"candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host", "sdpMid": "0"}
    await a.send(type="candidate", pair=pair_id, candidate=candidate)
    assert (await b.expect("candidate"))["candidate"] == candidate
    # someone outside the pair cannot inject SDP, even knowing the pair id
    await bystander.send(type="offer", pair=pair_id, sdp="v=0 evil")
    error = await bystander.expect("error")
    assert error["code"] == "not_paired"
    await b.silent()
    await a.silent()
    await bystander.close()


async def test_route_is_the_stricter_of_both_regions(server: RunningServer) -> None:
    a = await Client.connect(server.ws_url, headers={"X-Country": "FR"})
    b = await Client.connect(server.ws_url, headers={"X-Country": "US"})
    await a.send(type="join")
    await a.expect("waiting")  # two sockets' messages have no order: a waits before b joins
    await b.send(type="join")
    assert (await b.expect("paired"))["route"] == "relay"
    assert (await a.expect("paired"))["route"] == "relay"
    # this server runs no relay workers: a relayed call ends at once, and says why
    assert (await a.expect("call_ended"))["reason"] == "no relay is available"
    await b.close()
    assert (await a.expect("partner_left"))["reason"] == "disconnect"
    c = await Client.connect(server.ws_url, headers={"X-Country": "DE"})
    await c.send(type="join")
    assert (await a.expect_paired())["route"] == "strict"
    assert (await c.expect_paired())["route"] == "strict"
    for client in (a, c):
        await client.close()


async def test_next_repairs_with_a_third_and_tells_the_old_partner(
    server: RunningServer, pair: tuple[Client, Client, str]
) -> None:
    a, b, pair_id = pair
    c = await Client.connect(server.ws_url)
    await c.send(type="join")
    await c.expect("waiting")
    await a.send(type="next")
    left = await b.expect("partner_left")
    assert left == {"type": "partner_left", "pair": pair_id, "reason": "next", "v": 1}
    await b.expect("waiting")  # cool-down keeps a and b apart, and c is taken by a
    new_pair = (await a.expect_paired())["pair"]
    assert (await c.expect("paired"))["pair"] == new_pair != pair_id
    # the old pair id is dead: b cannot reach a through it any more
    await b.send(type="offer", pair=pair_id, sdp="v=0 late")
    assert (await b.expect("error"))["code"] == "not_paired"
    await a.silent()
    await c.close()


async def test_stale_pair_id_is_refused(
    server: RunningServer, pair: tuple[Client, Client, str]
) -> None:
    a, b, _ = pair
    await a.send(type="offer", pair="not-this-one", sdp="v=0")
    error = await a.expect("error")
    assert error["code"] == "stale_pair" and "not-this-one" in error["message"]
    await b.silent()


async def test_leave_and_disconnect_tell_the_partner(
    server: RunningServer, pair: tuple[Client, Client, str]
) -> None:
    a, b, _pair_id = pair
    await a.send(type="leave")
    await a.expect("idle")
    assert (await b.expect("partner_left"))["reason"] == "leave"
    await b.expect("waiting")
    c = await Client.connect(server.ws_url)
    await c.send(type="join")
    await b.expect("paired")
    await c.expect("paired")
    await c.close()
    assert (await b.expect("partner_left"))["reason"] == "disconnect"


async def test_report_is_counted_and_moves_on(
    server: RunningServer, pair: tuple[Client, Client, str]
) -> None:
    a, b, _ = pair
    await a.send(type="report", reason="rude")
    await a.expect("waiting")
    assert (await b.expect("partner_left"))["reason"] == "report"
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{server.admin_url}/stats")).json()
        (record,) = (await http.get(f"{server.admin_url}/reports")).json()
    assert stats["reports"] == 1
    assert (record["reporter"], record["reported"]) == (a.welcome["id"], b.welcome["id"])
    assert (record["reason"], record["ban"]) == ("rude", False)
    # no device ids, one address: to the ban rule they are one person, who cannot count
    assert (record["counted"], record["reporters"]) == (False, 0)
    service = server.app_state.service  # type: ignore[attr-defined]
    assert service.hub.reports.count_for(b.welcome["id"]) == 1


async def test_interests_pair_first_then_fall_back(server: RunningServer) -> None:
    chess1 = await Client.connect(server.ws_url)
    music = await Client.connect(server.ws_url)
    chess2 = await Client.connect(server.ws_url)
    await chess1.send(type="join", interests=["chess"])
    await music.send(type="join", interests=["music"])
    await chess1.expect("waiting")
    await music.expect("waiting")
    await chess2.send(type="join", interests=["Chess"])
    assert (await chess2.expect("paired"))["pair"] == (await chess1.expect("paired"))["pair"]
    loner = await Client.connect(server.ws_url)
    await loner.send(type="join", interests=["knitting"])
    await loner.expect("waiting")
    # no shared interest: after the fallback (0.5 s here) anyone will do
    assert (await loner.expect("paired", timeout=3))["pair"] == (
        await music.expect("paired", timeout=3)
    )["pair"]
    for client in (chess1, music, chess2, loner):
        await client.close()


BAD_MESSAGES = [
    ("{not json", "malformed"),
    ("[1, 2]", "invalid"),
    ('{"type": "fly"}', "invalid"),
    ('{"sdp": "x"}', "invalid"),
    ('{"type": "offer", "pair": "p", "sdp": 5}', "invalid"),
    ('{"type": "join", "interests": "music"}', "invalid"),
    ('{"type": "join", "extra": 1}', "invalid"),
    ('{"type": "join", "v": 9}', "unsupported_version"),
    ('{"type": "report"}', "not_paired"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_MESSAGES)
async def test_bad_messages_get_a_clear_error_and_break_nothing(
    server: RunningServer, pair: tuple[Client, Client, str], raw: str, code: str
) -> None:
    a, b, pair_id = pair
    intruder = await Client.connect(server.ws_url)
    await intruder.send_raw(raw)
    error = await intruder.expect("error")
    assert error["code"] == code
    assert error["message"]
    # the offender's connection still works, and so does everyone else's
    await intruder.send(type="ping")
    await intruder.expect("pong")
    await a.send(type="offer", pair=pair_id, sdp="v=0 still fine")
    assert (await b.expect("offer"))["sdp"] == "v=0 still fine"
    await intruder.close()


async def test_join_while_in_a_call_is_a_state_error(
    pair: tuple[Client, Client, str],
) -> None:
    a, b, _ = pair
    await a.send(type="join")
    error = await a.expect("error")
    assert error["code"] == "bad_state" and "next" in error["message"]
    await b.silent()


async def test_next_before_join_queues_the_client(server: RunningServer) -> None:
    """As docs/protocol.md says: `next` out of a call is no error; it joins."""
    a = await Client.connect(server.ws_url)
    await a.send(type="next")
    await a.expect("waiting")
    await a.send(type="next")  # while waiting: nothing changes
    await a.expect("waiting")
    b = await Client.connect(server.ws_url)
    await b.send(type="join")
    assert (await a.expect_paired())["pair"] == (await b.expect_paired())["pair"]
    await a.close()
    await b.close()


async def test_field_errors_name_the_field(server: RunningServer) -> None:
    client = await Client.connect(server.ws_url)
    await client.send_raw('{"type": "offer", "pair": "p", "sdp": 5}')
    assert "$.sdp" in (await client.expect("error"))["message"]
    await client.send_raw(b"\x00\x01")
    assert (await client.expect("error"))["code"] == "binary"
    await client.close()


async def test_oversized_message_is_refused(server: RunningServer) -> None:
    client = await Client.connect(server.ws_url)
    limit = 65536
    await client.send(type="offer", pair="p", sdp="x" * (limit + 10))
    error = await client.expect("error")
    assert error["code"] == "too_large" and str(limit) in error["message"]
    await client.send(type="ping")
    await client.expect("pong")
    await client.close()


@pytest.fixture
def fast_timeout_server() -> Iterator[RunningServer]:
    config = make_config(matchmaking={"heartbeat_timeout_s": 0.6, "heartbeat_interval_s": 0.2})
    yield from run_server(config)


async def test_silent_client_times_out_and_partner_is_told(
    fast_timeout_server: RunningServer,
) -> None:
    url = fast_timeout_server.ws_url
    a = await Client.connect(url)
    b = await Client.connect(url)
    await a.send(type="join")
    await a.expect("waiting")  # two sockets' messages have no order: a waits before b joins
    await b.send(type="join")
    await a.expect("paired")
    await b.expect("paired")
    for _ in range(4):  # b keeps its heartbeat, a goes silent
        await asyncio.sleep(0.2)
        await b.send(type="ping")
    assert (await b.expect("partner_left", timeout=2))["reason"] == "timeout"
    with pytest.raises(websockets.ConnectionClosed) as info:
        await a.recv(timeout=2)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4000
    await b.close()


async def test_web_client_and_health_are_served(server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        page = await http.get(server.http_url + "/")
        script = await http.get(server.http_url + "/static/client.js")
        health = await http.get(server.http_url + "/healthz")
    assert page.status_code == 200 and 'id="status"' in page.text
    assert script.status_code == 200 and "RTCPeerConnection" in script.text
    assert json.loads(health.text) == {"ok": True}


async def test_a_banned_device_is_refused_at_the_door(server: RunningServer) -> None:
    service = server.app_state.service  # type: ignore[attr-defined]
    for _ in range(3):  # the default policy bans on the third strike
        service.hub.strikes.strike(Person.of("127.0.0.1", "tab-1"), time.monotonic())
    ws = await websockets.connect(server.ws_url, subprotocols=device_subprotocols("tab-1"))
    banned = json.loads(await ws.recv())
    assert banned["type"] == "banned" and banned["until_unix"] > time.time()
    with pytest.raises(websockets.ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4004
    # an innocent user behind the banned user's address can still join
    other = await Client.connect(server.ws_url, device="tab-2")
    assert other.welcome["type"] == "welcome"
    await other.close()


async def test_the_device_id_comes_in_the_subprotocol_and_not_the_query(
    server: RunningServer,
) -> None:
    service = server.app_state.service  # type: ignore[attr-defined]
    service.hub.strikes.ban(Person.of("127.0.0.1", "tab-3"), time.monotonic() + 60, "test")
    async with websockets.connect(server.ws_url, subprotocols=device_subprotocols("tab-3")) as ws:
        assert ws.subprotocol == "chatguard"  # selected, or a browser fails the handshake
        assert json.loads(await ws.recv())["type"] == "banned"
    in_query = await Client.connect(server.ws_url + "?device=tab-3")  # no longer read there
    assert in_query.welcome["type"] == "welcome"
    await in_query.close()
    # an id the web client could not have made is no id
    odd = [websockets.Subprotocol("chatguard"), websockets.Subprotocol("chatguard.device.t%b-3")]
    async with websockets.connect(server.ws_url, subprotocols=odd) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"


@pytest.fixture
def short_queue_server() -> Iterator[RunningServer]:
    many = {"per_s": 1000.0, "burst": 5000, "address_per_s": 1000.0, "address_burst": 5000}
    yield from run_server(make_config(server={"send_queue_limit": 8}, limits={"sdp": many}))


@pytest.mark.slow
async def test_a_client_that_stops_reading_is_disconnected_and_its_partner_told(
    short_queue_server: RunningServer,
) -> None:
    """Its messages pile up in the service until `send_queue_limit`, then it is dropped as
    too slow: its partner learns the call is over, and the sleeper, once it reads again, gets
    what was queued before the close, then the close (4001)."""
    server = short_queue_server
    reader = await Client.connect(server.ws_url)
    sleeper = await websockets.connect(server.ws_url, max_size=None, max_queue=1)
    await sleeper.recv()  # welcome
    await sleeper.send(json.dumps({"type": "join"}))
    await asyncio.sleep(0.2)
    await reader.send(type="join")
    pair_id = (await reader.expect("paired"))["pair"]
    sdp = "v=0\r\n" + "a=x\r\n" * 8_000  # ~50 KB each: the socket's buffers fill soon

    async def offer_until_stopped() -> None:
        for _ in range(2_000):
            await reader.send(type="offer", pair=pair_id, sdp=sdp)

    offering = asyncio.create_task(offer_until_stopped())
    left = await reader.expect("partner_left", timeout=30)
    offering.cancel()
    assert left["reason"] == "disconnect"
    offers = 0
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            offers += json.loads(await asyncio.wait_for(sleeper.recv(), 10))["type"] == "offer"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert offers >= 8  # the queue was full: the close came after what it held
    await reader.close()
