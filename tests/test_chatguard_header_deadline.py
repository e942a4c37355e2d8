"""The request-head deadline against real uvicorn, with raw sockets: half a request is
answered 408 and closed in time, a whole one is served, a WebSocket outlives the deadline."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatguard.header_deadline import header_deadline_protocol
from tests.support.server import RunningServer, chatguard_serve, make_config, run_server
from tests.support.wsclient import Client

DEADLINE_S = 0.5
MARGIN_S = 2.0
"""How much later than the deadline the close may come on a loaded machine."""
HALF_A_HEAD = b"GET / HTTP/1.1\r\nHost: chatguard\r\nUser-Agent: slow"


@pytest.fixture
def quick_server() -> Iterator[RunningServer]:
    yield from run_server(make_config(limits={"header_timeout_s": DEADLINE_S}))


def closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes `sock`, and everything it sent before."""
    start, received = time.monotonic(), b""
    sock.settimeout(DEADLINE_S + MARGIN_S + 5)
    while chunk := sock.recv(4096):
        received += chunk
    return time.monotonic() - start, received


def test_half_a_request_head_is_closed_at_the_deadline(quick_server: RunningServer) -> None:
    with socket.create_connection((quick_server.host, quick_server.port)) as sock:
        sock.sendall(HALF_A_HEAD)
        elapsed, received = closed_after(sock)
    assert DEADLINE_S * 0.9 <= elapsed < DEADLINE_S + MARGIN_S
    assert received.startswith(b"HTTP/1.1 408 ")
    metrics = httpx.get(quick_server.admin_url + "/metrics", timeout=5).text
    assert "chatguard_http_header_timeouts_total 1.0" in metrics


def test_the_next_request_on_a_kept_alive_connection_has_a_deadline_too(
    quick_server: RunningServer,
) -> None:
    with socket.create_connection((quick_server.host, quick_server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: chatguard\r\n\r\n")
        first = b""
        while not first.endswith(b'{"ok":true}'):  # the whole first response
            first += sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(HALF_A_HEAD)
        elapsed, received = closed_after(sock)
    assert elapsed < DEADLINE_S + MARGIN_S
    assert received.startswith(b"HTTP/1.1 408 ")


def test_a_head_that_comes_slowly_but_in_time_is_served(quick_server: RunningServer) -> None:
    with socket.create_connection((quick_server.host, quick_server.port)) as sock:
        for line in (b"GET /healthz HTTP/1.1\r\n", b"Host: chatguard\r\n", b"\r\n"):
            sock.sendall(line)
            time.sleep(DEADLINE_S / 5)
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


async def test_a_websocket_outlives_the_deadline(quick_server: RunningServer) -> None:
    client = await Client.connect(quick_server.ws_url)
    time.sleep(DEADLINE_S * 2)  # the server's loop runs in its own thread meanwhile
    await client.send(type="ping")
    await client.expect("pong")
    await client.close()


@pytest.fixture
def long_deadline_server() -> Iterator[RunningServer]:
    yield from run_server(make_config(limits={"header_timeout_s": 60.0}))


async def test_an_upgraded_connection_leaves_no_http_protocol_behind(
    long_deadline_server: RunningServer,
) -> None:
    """The deadline's timer would keep the replaced HTTP protocol alive until it fired."""
    server = long_deadline_server
    client = await Client.connect(server.ws_url)
    await client.send(type="ping")
    await client.expect("pong")
    http_protocols = [
        o
        for o in gc.get_objects()
        if type(o).__qualname__.startswith("HeaderDeadline")
        and getattr(o, "server", None) == (server.host, server.port)
    ]
    await client.close()
    assert http_protocols == []


def test_an_unknown_uvicorn_protocol_is_reported_at_start() -> None:
    class NotUvicorn:
        pass

    with pytest.raises(RuntimeError, match=r"on_response_complete.*chatguard\.header_deadline"):
        header_deadline_protocol(1.0, lambda: None, NotUvicorn)  # type: ignore[arg-type]


@pytest.mark.slow
def test_chatguard_serve_has_the_deadline(tmp_path: Path) -> None:
    """The command an operator runs applies ``limits.header_timeout_s`` as well."""
    with chatguard_serve(tmp_path, f"[limits]\nheader_timeout_s = {DEADLINE_S}\n") as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(HALF_A_HEAD)
            elapsed, received = closed_after(sock)
    assert elapsed < DEADLINE_S + MARGIN_S
    assert received.startswith(b"HTTP/1.1 408 ")
