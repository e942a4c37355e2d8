"""Chromium pages in network namespaces call each other through a worker's shared UDP port.

The browsers' checks reach the worker from addresses it has not sent to yet (their own host
candidates, through the veths), so the shared port must learn them from authenticated checks
(relay/ice_udp_mux.py); the pages' selected pairs name the one port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page

from tests.support.browser import requires_chromium, status_of, wait_for_frames
from tests.support.netns import IsolatedHosts, chromium_in, open_client
from tests.support.ports import free_udp_range
from tests.support.server import chatguard_serve

pytestmark = [pytest.mark.netns, pytest.mark.browser, pytest.mark.slow, requires_chromium]

SELECTED_REMOTE_JS = """
async () => {
  const stats = await window.chatguard.pc.getStats();
  let found = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) {
      const pair = stats.get(r.selectedCandidatePairId);
      const remote = stats.get(pair.remoteCandidateId);
      found = {protocol: remote.protocol, port: remote.port};
    }
  });
  return found;
}
"""


async def selected_remote(page: Page) -> dict[str, Any]:
    return dict(await page.evaluate(SELECTED_REMOTE_JS))


async def test_browsers_reach_the_relay_on_its_one_shared_udp_port(
    netns_hosts: IsolatedHosts, tmp_path: Path
) -> None:
    a, b = netns_hosts.hosts
    port, _ = free_udp_range(1)
    config = (
        '[server]\nhost = "0.0.0.0"\n[regions]\ndefault_route = "relay"\n'
        f"[relay]\nworkers = 1\nice_tcp_port = 0\nudp_port = {port}\n"
        f'gather_from = ["{a.gateway}", "{b.gateway}"]\n'
    )
    with chatguard_serve(tmp_path, config) as url:
        http_port = urlsplit(url).port
        assert http_port is not None
        async with (
            chromium_in(a, a.url(http_port)) as browser_a,
            chromium_in(b, b.url(http_port)) as browser_b,
        ):
            pages = [
                await open_client(browser_a, a, http_port),
                await open_client(browser_b, b, http_port),
            ]
            for page in pages:
                await page.click("#start")
            for page in pages:
                await wait_for_frames(page, 10)
                assert await status_of(page) == ("connected", "relay")
                assert await selected_remote(page) == {"protocol": "udp", "port": port}
