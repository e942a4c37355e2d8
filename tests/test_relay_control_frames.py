"""The ``/relay`` control link carries every message the control protocol allows, while
clients on ``/ws`` stay held to their own frame limit (uvicorn has one limit for both).

The review's third worker-killer: an answer over uvicorn's 128 KiB frame limit made signaling
close the worker's control link, and the worker dropped all its calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import websockets

from relay import control as rc
from signaling.app import client_frame_limit
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import Client

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def token_server() -> Iterator[RunningServer]:
    yield from run_server(make_config(relay={"workers": 0, "token": "test-relay-token"}))


async def test_the_largest_control_message_reaches_signaling(token_server: RunningServer) -> None:
    url = token_server.ws_url.replace("/ws", "/relay")
    async with websockets.connect(url, max_size=rc.MAX_FRAME_BYTES) as ws:
        hello = rc.Hello(worker_id="w1", token="test-relay-token", pid=1, max_sessions=10)
        await ws.send(rc.encode(hello))
        assert isinstance(rc.decode_signaling_message(await ws.recv()), rc.Configure)
        # 60,000 characters (the SDP limit), each escaped by JSON to six bytes
        biggest = rc.encode(rc.Answer(leg="nobody", sdp="\x01" * 60_000))
        assert len(biggest) > 6 * 60_000 > 2**17
        await ws.send(biggest)
        await ws.send(rc.encode(rc.Load(legs=0, cpu_percent=1.0, rss_bytes=1)))
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)  # still open: not closed with 1009


async def test_a_client_frame_over_its_limit_still_closes_the_socket(
    token_server: RunningServer,
) -> None:
    limit = client_frame_limit(make_config())
    client = await Client.connect(token_server.ws_url)
    await client.send_raw("x" * (limit // 2 + 1))  # over a message's limit: an error
    error = await client.expect("error")
    assert error["code"] == "too_large"
    await client.send_raw("x" * (limit + 1))  # over a frame's: the socket goes
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
