"""Only chatguard's own pages (and the origins the operator lists) may open /ws."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import websockets

from signaling.origin_check import OriginPolicy, host_authority, origin_authority
from tests.support.browser import chromium, requires_chromium, wait_for_state
from tests.support.other_site import other_site
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import Client


def test_origins_and_hosts_compare_without_default_ports() -> None:
    assert origin_authority("https://Chat.Example.org") == ("https", "chat.example.org")
    assert origin_authority("https://chat.example.org:443") == ("https", "chat.example.org")
    assert origin_authority("http://[::1]:8080") == ("http", "[::1]:8080")
    for junk in ("null", "chat.example.org", "ftp://x", "http://x:99999", ""):
        assert origin_authority(junk) is None, junk
    assert host_authority("chat.example.org:443", "https") == "chat.example.org"
    assert host_authority("chat.example.org:443", "http") == "chat.example.org:443"
    assert host_authority("[::1]:8080", "http") == "[::1]:8080"
    assert host_authority("[::1]", "http") == "[::1]"


def test_the_same_site_passes_and_another_does_not() -> None:
    policy = OriginPolicy([])
    assert policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080")
    # behind a TLS proxy the request is plain HTTP for an https page: same host, same site
    assert policy.allows("https://chat.example.org", "chat.example.org")
    assert not policy.allows("http://127.0.0.1:9999", "127.0.0.1:8080")
    assert not policy.allows("https://evil.example", "chat.example.org")
    assert not policy.allows("null", "chat.example.org")  # a sandboxed frame, a file
    assert not policy.allows("https://chat.example.org", None)
    assert policy.allows(None, "chat.example.org")  # not a browser: see the module


def test_listed_origins_pass_beside_the_same_site_and_star_passes_all() -> None:
    listed = OriginPolicy(["https://www.example.org"])
    assert listed.allows("https://www.example.org", "api.example.org")
    assert not listed.allows("http://www.example.org", "api.example.org")  # scheme counts
    assert listed.allows("https://api.example.org", "api.example.org")
    assert OriginPolicy(["*"]).allows("https://evil.example", "chat.example.org")


@pytest.fixture
def served() -> Iterator[RunningServer]:
    yield from run_server(make_config())


def refused_count(server: RunningServer) -> int:
    stats = httpx.get(server.admin_url + "/stats", timeout=5).json()
    return int(stats["refused"].get("origin", 0))


async def test_a_socket_from_another_origin_is_refused_with_403_and_counted(
    served: RunningServer,
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(served.ws_url, origin=websockets.Origin("https://evil.example"))
    assert refused.value.response.status_code == 403
    assert b"may not connect" in refused.value.response.body
    assert refused_count(served) == 1
    metrics = httpx.get(served.admin_url + "/metrics", timeout=5).text
    assert 'chatguard_refused_connections_total{reason="origin"} 1.0' in metrics
    own = websockets.Origin(served.http_url)
    async with websockets.connect(served.ws_url, origin=own) as ws:
        assert '"welcome"' in str(await ws.recv())
    no_origin = await Client.connect(served.ws_url)  # a program, not a browser
    await no_origin.close()
    assert refused_count(served) == 1


async def test_an_origin_the_operator_lists_may_connect() -> None:
    listed = "https://www.example.org"
    with contextmanager(run_server)(make_config(server={"allowed_origins": [listed]})) as server:
        async with websockets.connect(server.ws_url, origin=websockets.Origin(listed)) as ws:
            assert '"welcome"' in str(await ws.recv())


OTHER_PAGE = """<!doctype html><title>elsewhere</title><script>
window.outcome = new Promise((resolve) => {
  const ws = new WebSocket("WS_URL");
  ws.onmessage = (event) => resolve("message " + JSON.parse(event.data).type);
  ws.onclose = (event) => resolve("closed " + event.code);
});
</script>"""

OPEN_SOCKET_JS = """(url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.onmessage = (event) => resolve("message " + JSON.parse(event.data).type);
  ws.onclose = (event) => resolve("closed " + event.code);
})"""


@pytest.mark.browser
@requires_chromium
async def test_a_page_of_another_site_cannot_open_a_socket_but_ours_can(
    served: RunningServer,
) -> None:
    with other_site(OTHER_PAGE.replace("WS_URL", served.ws_url)) as elsewhere:
        async with chromium() as browser:
            context = await browser.new_context()
            stranger = await context.new_page()
            await stranger.goto(elsewhere)
            assert await stranger.evaluate("window.outcome") == "closed 1006"
            assert refused_count(served) == 1
            ours = await context.new_page()
            await ours.goto(served.http_url)
            assert await ours.evaluate(OPEN_SOCKET_JS, served.ws_url) == "message welcome"
            await ours.click("#start")  # and the page itself works
            await wait_for_state(ours, "waiting")
    assert refused_count(served) == 1
