"""Two signaling nodes sharing one real redis-server: clients on different nodes meet, signal
and call each other, and a node killed mid-call hands its clients' partners back to the pool."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import websockets

from signaling import protocol as p
from signaling.config import Config
from tests.support.cluster_nodes import PRESENCE_TTL_S, refused_at, serve_node, ws_url
from tests.support.ports import free_port, free_tcp_range
from tests.support.redis_server import RedisServer, redis_server
from tests.support.rtcclient import ChatPeer, see_each_other
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import Client

serve_one = contextmanager(run_server)


@pytest.fixture
def nodes(redis: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    with ExitStack() as stack:
        first, second = (stack.enter_context(serve_one(node_config(redis))) for _ in range(2))
        yield first, second


def node_config(redis: RedisServer) -> Config:
    return make_config(
        cluster={"redis_url": redis.url, "presence_ttl_s": PRESENCE_TTL_S},
        regions={"trusted_header": "x-country", "routes": {"FR": "relay"}},
        server={"trusted_proxies": ["127.0.0.1"]},  # the test plays the proxy
        reports={"reporters_to_ban": 2},
    )


async def paired_across(
    first: str, second: str, headers: dict[str, str] | None = None, hide_address: bool = False
) -> tuple[Client, Client, str]:
    """A client on each node, joined one after the other: the pool pairs them together."""
    a = await Client.connect(first, headers)
    b = await Client.connect(second)
    await a.send(type="join", hide_address=hide_address)
    await a.expect("waiting")
    await b.send(type="join")
    paired_a, paired_b = await a.expect_paired(), await b.expect_paired()
    assert paired_a["pair"] == paired_b["pair"]
    assert paired_a["route"] == paired_b["route"]
    if paired_a["route"] == "direct":  # who offers: whose join reached Redis last
        assert {paired_a["role"], paired_b["role"]} == {"offerer", "answerer"}
    return a, b, paired_a["pair"]


async def test_clients_on_two_nodes_meet_signal_chat_and_part(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    first, second = nodes
    a, b, pair = await paired_across(first.ws_url, second.ws_url)
    await b.send(type="offer", pair=pair, sdp="v=0 offer")  # the protocol lets either offer
    assert (await a.expect("offer"))["sdp"] == "v=0 offer"
    await a.send(type="answer", pair=pair, sdp="v=0 answer")
    assert (await b.expect("answer"))["sdp"] == "v=0 answer"
    candidates = [
        {"candidate": f"candidate:{i} 1 udp 1 10.0.0.1 {5000 + i} typ host", "sdpMid": "0"}
        for i in range(20)
    ]
    for candidate in candidates:
        await b.send(type="candidate", pair=pair, candidate=candidate)
    for candidate in candidates:  # in the order sent, across nodes
        assert (await a.expect("candidate"))["candidate"] == candidate
    await a.send(type="chat", pair=pair, text="hello from the other node")
    assert (await b.expect("chat"))["text"] == "hello from the other node"
    await a.send(type="call_state", pair=pair, state="connected", route="direct")
    assert (await b.expect("partner_state"))["state"] == "connected"

    await b.send(type="next")
    assert (await b.expect("waiting")) is not None
    left = await a.expect("partner_left")
    assert (left["pair"], left["reason"]) == (pair, "next")
    await a.expect("waiting")
    # both are back in the pool, kept apart by the re-pair cool-down; a third meets one
    c = await Client.connect(second.ws_url)
    await c.send(type="join")
    paired_c = await c.expect_paired()
    assert paired_c["pair"] != pair
    heard = await asyncio.gather(a.recv(1), b.recv(1), return_exceptions=True)
    told = [m for m in heard if isinstance(m, dict) and m.get("pair") == paired_c["pair"]]
    assert len(told) == 1 and told[0]["type"] == "paired"
    for client in (a, b, c):
        await client.close()


async def test_a_late_message_for_a_call_over_is_not_delivered(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    first, second = nodes
    a, b, pair = await paired_across(first.ws_url, second.ws_url)
    await a.send(type="leave")
    await a.expect("idle")
    assert (await b.expect("partner_left"))["reason"] == "leave"
    await b.expect("waiting")
    await a.send(type="offer", pair=pair, sdp="v=0 late")
    assert (await a.expect("error"))["code"] == "not_paired"
    await b.silent()
    await a.close()
    await b.close()


@pytest.mark.parametrize("why", ["region", "hide_address"])
async def test_a_relayed_call_across_nodes_with_no_worker_ends_clearly_on_both_sides(
    nodes: tuple[RunningServer, RunningServer], why: str
) -> None:
    """Both nodes choose the route from both members' regions and address choices alike; the
    hosting node finds no worker on any node, and both members are told rather than left
    waiting (a call placed on another node's worker: test_signaling_cluster_relays)."""
    first, second = nodes
    headers = {"X-Country": "FR"} if why == "region" else None
    a, b, pair = await paired_across(first.ws_url, second.ws_url, headers, why == "hide_address")
    for client in (a, b):
        ended = await client.expect("call_ended")
        assert (ended["pair"], ended["reason"]) == (pair, "no relay is available")
    await a.close()
    await b.close()


async def test_a_direct_call_across_nodes_that_fails_moves_to_the_relay(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    """Either member's word that it failed reaches the node hosting the call, which moves it
    to a relay worker (none here: both members are told the call ended)."""
    first, second = nodes
    a, b, pair = await paired_across(first.ws_url, second.ws_url)
    await a.send(type="call_state", pair=pair, state="failed", route="direct")
    for client in (a, b):
        ended = await client.expect("call_ended")
        assert (ended["pair"], ended["reason"]) == (pair, "no relay is available")
    await a.send(type="next")
    await a.expect("waiting")
    assert (await b.expect("partner_left"))["reason"] == "next"
    await a.close()
    await b.close()


async def report_twice(ws_url: str) -> None:
    """Two reporters in turn meet the waiting ``rude-device`` and report it (the ban limit)."""
    for reporter_device in ("reporter-1", "reporter-2"):
        reporter = await Client.connect(ws_url, device=reporter_device)
        await reporter.send(type="join")
        await reporter.expect_paired()
        await reporter.send(type="report", reason="rude")
        await reporter.send(type="leave")  # out of the pool: the next reporter meets `rude`
        await reporter.close()


async def test_a_ban_holds_at_every_nodes_door_and_for_nodes_started_later(
    nodes: tuple[RunningServer, RunningServer], redis: RedisServer
) -> None:
    first, second = nodes
    rude = await Client.connect(first.ws_url, device="rude-device")
    await rude.send(type="join")
    await report_twice(first.ws_url)
    while (message := await rude.recv())["type"] != "banned":  # paired, partner left, ...
        assert message["type"] in ("waiting", "paired", "partner_left"), message
    assert message["reason"] == "reported by 2 people"
    await rude.close()

    await refused_at(second.ws_url, "rude-device")
    with serve_one(node_config(redis)) as third:
        await refused_at(third.ws_url, "rude-device")
    welcome = await Client.connect(second.ws_url, device="someone-else")
    await welcome.close()


async def test_reports_filed_through_two_nodes_add_up_to_a_ban(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    """One report through each node: each node alone counts one of the two needed (the
    second node knows `rude`, connected to the first, only through the pool)."""
    first, second = nodes
    rude = await Client.connect(first.ws_url, device="rude-device")
    await rude.send(type="join")
    for node, reporter_device in ((first, "reporter-1"), (second, "reporter-2")):
        reporter = await Client.connect(node.ws_url, device=reporter_device)
        await reporter.send(type="join")
        await reporter.expect_paired()
        await reporter.send(type="report", reason="rude")
        await reporter.send(type="leave")  # out of the pool: the next reporter meets `rude`
        await reporter.close()
    await banned_and_closed(rude, "reported by 2 people")  # by the second node, the first closes
    await refused_at(first.ws_url, "rude-device")
    await refused_at(second.ws_url, "rude-device")


async def test_a_ban_made_on_one_node_closes_that_devices_session_on_another(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    """The device has a session on each node (two tabs, say); reports on the first ban it:
    its idle session on the second is told and closed at once, not at its next reconnect."""
    first, second = nodes
    elsewhere = await Client.connect(second.ws_url, device="rude-device")
    bystander = await Client.connect(second.ws_url, device="someone-else")
    rude = await Client.connect(first.ws_url, device="rude-device")
    await rude.send(type="join")
    await report_twice(first.ws_url)
    await banned_and_closed(rude, "reported by 2 people")
    await banned_and_closed(elsewhere, "reported by 2 people")
    await bystander.send(type="ping")
    await bystander.expect("pong")  # another device's session stays
    await bystander.close()


async def banned_and_closed(client: Client, reason: str) -> None:
    """Until `client` is told it is banned for `reason`; then its socket closes, as banned."""
    while (message := await client.recv())["type"] != "banned":  # paired, partner left, ...
        assert message["type"] in ("waiting", "paired", "partner_left"), message
    assert message["reason"] == reason
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == p.CLOSE_BANNED


async def test_a_message_a_node_cannot_handle_is_counted_and_harms_no_one(
    nodes: tuple[RunningServer, RunningServer], redis: RedisServer
) -> None:
    import redis as redis_client

    first, second = nodes
    async with httpx.AsyncClient() as http:
        name = (await http.get(first.admin_url + "/stats")).json()["node"]
        with redis_client.Redis(port=redis.port) as r:
            r.publish(f"cg:node:{name}", '["call", "u1", "u2", "client", "not a message"]')
            r.publish(f"cg:node:{name}", "not json")
        a, b, _ = await paired_across(first.ws_url, second.ws_url)  # still at work
        stats = (await http.get(first.admin_url + "/stats")).json()
        assert stats["cluster_messages_refused"] == 2
    await a.close()
    await b.close()


async def test_stats_show_each_nodes_own_clients(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    first, second = nodes
    a, b, _ = await paired_across(first.ws_url, second.ws_url)
    async with httpx.AsyncClient() as http:
        for node in nodes:
            stats = (await http.get(node.admin_url + "/stats")).json()
            assert (stats["clients"], stats["pairs"], stats["waiting"]) == (1, 1, 0)
    await a.close()
    await b.close()


async def test_a_report_on_one_node_is_listed_by_every_nodes_admin_listener(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    first, second = nodes
    a, b, pair = await paired_across(first.ws_url, second.ws_url)
    await a.send(type="report", reason="<b>rude</b>")  # handled by a's node, the first
    await b.expect("partner_left")
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + 5
        while not (reports := (await http.get(second.admin_url + "/reports")).json()):
            assert time.monotonic() < deadline, "the second node never listed the report"
            await asyncio.sleep(0.05)
        events = (await http.get(second.admin_url + "/events")).json()
        page = await http.get(second.admin_url + "/")
        assert (await http.get(first.admin_url + "/reports")).json() == reports
    ((report,),) = (reports,)
    assert (report["reporter"], report["reported"], report["call"]) == (
        a.welcome["id"], b.welcome["id"], pair,
    )  # fmt: skip
    assert report["reason"] == "<b>rude</b>"
    assert [(e["decision"], e["subject"]) for e in events] == [("report", b.welcome["id"])]
    assert "address" not in events[0]  # not asked for
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # none allowed
    assert "&lt;b&gt;rude&lt;/b&gt;" in page.text and "<b>rude" not in page.text
    assert report["id"] in page.text and events[0]["id"] in page.text
    await a.close()
    await b.close()


@pytest.mark.slow
async def test_a_node_killed_mid_call_hands_its_partners_back(
    tmp_path: Path, redis: RedisServer
) -> None:
    with serve_node(tmp_path, redis, "left") as left, serve_node(tmp_path, redis, "right") as right:
        a, b, pair = await paired_across(ws_url(left), ws_url(right))
        await b.send(type="offer", pair=pair, sdp="v=0 offer")
        assert (await a.expect("offer"))["sdp"] == "v=0 offer"
        killed_at = time.monotonic()
        right.send_signal(signal.SIGKILL)
        right.wait(timeout=10)
        left_message = await a.expect("partner_left", timeout=PRESENCE_TTL_S + 5)
        assert (left_message["pair"], left_message["reason"]) == (pair, "timeout")
        assert time.monotonic() - killed_at < PRESENCE_TTL_S + 2
        await a.expect("waiting")
        # a is back in the pool (no cool-down after a node's death): a newcomer meets it
        c = await Client.connect(ws_url(left))
        await c.send(type="join")
        assert (await c.expect_paired())["pair"] == (await a.expect_paired())["pair"]
        await asyncio.gather(a.close(), c.close())
        with pytest.raises(Exception):  # noqa: B017  the connection died with its node
            await b.recv(timeout=2)


@pytest.mark.slow
async def test_a_real_call_between_two_nodes_carries_video(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    first, second = nodes
    alice = await ChatPeer.join(first.ws_url, level=200, tone_hz=440)
    bob = await ChatPeer.join(second.ws_url, level=60, tone_hz=1000)
    try:
        await see_each_other(alice, bob, 20, "direct")
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.slow
async def test_serve_procs_runs_nodes_on_one_port_each_with_its_own_workers(
    redis: RedisServer,
) -> None:
    port, admin_port = free_port(), free_tcp_range(2)[0]
    command = [sys.executable, "-m", "chatguard.cli", "serve", "--procs", "2"]
    command += ["--redis", redis.url, "--relay-workers", "2", "--port", str(port)]
    command += ["--admin-port", str(admin_port)]  # the second child's is the next port
    with subprocess.Popen([*command, "--log-level", "warning"]) as parent:
        try:
            # each child's own worker (both named local-0.0), and the other's, seen there
            workers_by_node: dict[str, tuple[int, int]] = {}
            deadline = time.monotonic() + 60
            while sorted(workers_by_node.values()) != [(1, 1), (1, 1)]:
                assert time.monotonic() < deadline, f"nodes seen: {workers_by_node}"
                assert parent.poll() is None, "serve --procs exited"
                for admin in (admin_port, admin_port + 1):
                    try:
                        stats = httpx.get(f"http://127.0.0.1:{admin}/stats").json()
                        elsewhere = stats.get("relay_workers_elsewhere", [])
                        workers_by_node[stats["node"]] = (
                            len(stats["relay_workers"]),
                            len(elsewhere),
                        )
                    except httpx.TransportError:
                        pass
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient() as http:  # one port, the kernel picks the child
                assert (await http.get(f"http://127.0.0.1:{port}/readyz")).is_success
            url = f"ws://127.0.0.1:{port}/ws"
            clients = [await Client.connect(url) for _ in range(2)]
            for client in clients:
                await client.send(type="join")
            pairs = {(await client.expect_paired())["pair"] for client in clients}
            assert len(pairs) == 1
            for client in clients:
                await client.close()
            parent.terminate()
            assert parent.wait(timeout=20) == 0
        finally:  # a failure above is reported as itself, not as the exit code this gives
            if parent.poll() is None:
                parent.terminate()
                parent.wait(timeout=20)


def process_state(pid: int) -> tuple[str, int] | None:
    """State letter and parent pid of a process (from /proc); None once it is gone."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def children_of(pid: int) -> set[int]:
    """Running processes (not zombies) whose parent is `pid`."""
    running = set()
    for entry in Path("/proc").iterdir():
        state = process_state(int(entry.name)) if entry.name.isdigit() else None
        if state is not None and state[1] == pid and state[0] != "Z":
            running.add(int(entry.name))
    return running


@pytest.mark.slow
async def test_a_killed_procs_parent_leaves_no_signaling_process_behind(
    redis: RedisServer,
) -> None:
    command = [sys.executable, "-m", "chatguard.cli", "serve", "--procs", "2", "--redis"]
    command += [redis.url, "--relay-workers", "0", "--port", str(free_port()), "--admin-port", "0"]
    with subprocess.Popen([*command, "--log-level", "warning"]) as parent:
        deadline = time.monotonic() + 30
        while len(children := children_of(parent.pid)) < 2:
            assert time.monotonic() < deadline and parent.poll() is None
            await asyncio.sleep(0.05)
        parent.kill()  # no chance to stop its children itself
        parent.wait()
        deadline = time.monotonic() + 20
        # orphans belong to init, which may leave them zombies for a while: those are done
        while alive := {pid for pid in children if (process_state(pid) or ("Z",))[0] != "Z"}:
            assert time.monotonic() < deadline, f"still running: {alive}"
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_redis_restart_keeps_calls_and_queues_and_errors_clearly(tmp_path: Path) -> None:
    """Redis restarts empty: a request made meanwhile gets a clear error, the connection stays,
    and the request is carried out when Redis is back; the nodes hand it their users again,
    so a call in progress goes on (Next still tells the partner) and waiting users meet."""
    with ExitStack() as redis_stack, ExitStack() as node_stack:
        redis = redis_stack.enter_context(redis_server(tmp_path))
        first, second = (node_stack.enter_context(serve_one(node_config(redis))) for _ in range(2))
        a, b, pair = await paired_across(first.ws_url, second.ws_url)
        waiting = await Client.connect(first.ws_url)
        await waiting.send(type="join")
        await waiting.expect("waiting")

        redis_stack.close()  # Redis is gone
        late = await Client.connect(second.ws_url)
        await late.send(type="join")
        assert (await late.expect("waiting")) is not None
        assert (await late.expect("error"))["code"] == "unavailable"
        async with httpx.AsyncClient() as http:  # the operator's lists: 503, and why
            for path in ("/events", "/reports"):
                response = await http.get(first.admin_url + path)
                assert response.status_code == 503, response.text
                assert "(Redis) is unreachable" in response.json()["error"]
            assert "(Redis) is unreachable" in (await http.get(first.admin_url + "/")).text
        # kept and sent when Redis is back, but pub/sub delivers at most once: if a's node
        # has not subscribed again by then, it is lost (what a partner sends after is not)
        await b.send(type="chat", pair=pair, text="still here?")

        redis_stack.enter_context(redis_server(tmp_path, redis.port))  # back, and empty
        # the waiting user's own heartbeat may have met the outage too: the same clear error
        # (the request is kept)
        met = [await c.expect_paired(timeout=10, errors=("unavailable",)) for c in (waiting, late)]
        assert met[0]["pair"] == met[1]["pair"]
        await asyncio.sleep(1.0)  # both nodes have noticed the restart and subscribed again
        await b.send(type="offer", pair=pair, sdp="v=0 after the restart")
        while (message := await a.recv(timeout=5))["type"] == "chat":
            assert message["text"] == "still here?"
        assert (message["type"], message["sdp"]) == ("offer", "v=0 after the restart")
        await b.send(type="next")
        left = await a.expect("partner_left", timeout=5)
        assert (left["pair"], left["reason"]) == (pair, "next")
        for client in (a, b, waiting, late):
            await client.close()


@pytest.mark.slow
async def test_many_clients_pressing_next_on_two_nodes_leave_a_consistent_pool(
    nodes: tuple[RunningServer, RunningServer], redis: RedisServer
) -> None:
    """Inputs racing through two nodes: afterwards every pair in Redis is mutual, the counts
    add up, and each client's last word from its node agrees with the pool."""
    rng = random.Random(5)
    clients = [await Client.connect(nodes[i % 2].ws_url) for i in range(24)]
    ids = [client.welcome["id"] for client in clients]
    for client in clients:
        await client.send(type="join")
    for _ in range(10):  # bursts: every client acts at once, while pairings are on their way
        for client in rng.sample(clients, 12):
            await client.send(type=rng.choice(["next", "next", "leave", "join"]))
        await asyncio.sleep(0.1)  # one client's own inputs are a human's clicks apart
    await asyncio.sleep(2.0)  # let every input and event arrive

    last: dict[str, dict[str, object]] = {}
    for user, client in zip(ids, clients, strict=True):
        while True:
            try:
                message = await client.recv(timeout=0.2)
            except TimeoutError:
                break
            if message["type"] in ("paired", "waiting", "idle", "partner_left"):
                last[user] = message
    view = aioredis_state(redis, ids)
    paired = {user: partner for user, (state, partner) in view.items() if state == "paired"}
    assert all(paired.get(partner) == user for user, partner in paired.items())
    for user in ids:
        state, _ = view[user]
        told = last[user]["type"]
        if state == "paired":
            assert told == "paired", (user, state, told)
        else:  # a partner that left is followed by waiting
            assert told in ("waiting", "idle"), (user, state, told)
            assert (told == "waiting") == (state == "waiting"), (user, state, told)
    for client in clients:
        await client.close()


def aioredis_state(redis: RedisServer, users: list[str]) -> dict[str, tuple[str, str]]:
    import redis as redis_client

    with redis_client.Redis(port=redis.port, decode_responses=True) as r:
        return {
            user: (r.hget(f"cg:u:{user}", "state") or "", r.hget(f"cg:u:{user}", "partner") or "")
            for user in users
        }
