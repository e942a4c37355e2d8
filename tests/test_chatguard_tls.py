"""TLS without a proxy: `chatguard serve --certfile --keyfile` serves the page and the WebSocket
over HTTPS/WSS, its local relay workers dial it over WSS trusting its certificate, and two real
Chromium pages call each other through it."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from relay.signaling_tls import client_context
from tests.support.browser import (
    chromium,
    requires_chromium,
    status_of,
    wait_for_frames,
    wait_for_state,
)
from tests.support.server import chatguard_serve
from tests.support.tls import self_signed


def test_a_worker_trusts_the_system_or_exactly_the_file_it_is_given(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    assert client_context("ws://signaling.example:8080/relay") is None
    system = client_context("wss://signaling.example/relay")
    assert system is not None and system.check_hostname
    remote = client_context("wss://signaling.example/relay", str(cert))
    assert remote is not None and remote.check_hostname  # a remote worker checks the name
    assert remote.verify_mode is ssl.CERT_REQUIRED
    assert [c["serialNumber"] for c in remote.get_ca_certs()] == [
        c["serialNumber"] for c in ssl.create_default_context(cafile=str(cert)).get_ca_certs()
    ]
    local = client_context("wss://127.0.0.1:8443/relay", str(cert))
    # the pinned certificate proves who answers; its name cannot be 127.0.0.1's
    assert local is not None and not local.check_hostname
    assert local.verify_mode is ssl.CERT_REQUIRED


@pytest.mark.slow
@pytest.mark.browser
@requires_chromium
async def test_two_pages_call_through_the_relay_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ("--certfile", str(cert), "--keyfile", str(key))
    # the relay route is ready only once the local worker has joined over wss://
    with chatguard_serve(tmp_path, "[relay]\nworkers = 1\n", "--route", "relay", *tls) as url:
        assert url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(cert))
        assert httpx.get(url + "/healthz", verify=trusted).json() == {"ok": True}
        plain = url.replace("https://", "http://")
        with pytest.raises(httpx.TransportError):
            httpx.get(plain + "/healthz", timeout=5)
        for path in ("/metrics", "/stats"):
            assert httpx.get(url + path, verify=trusted).status_code == 404
        async with chromium(["--ignore-certificate-errors"]) as browser:
            pages = []
            for _ in range(2):
                page = await (await browser.new_context()).new_page()
                await page.goto(url)
                pages.append(page)
            for page in pages:
                await page.click("#start")
            for page in pages:
                await wait_for_state(page, "connected", timeout_s=30)
                assert await status_of(page) == ("connected", "relay")
                await wait_for_frames(page, 10)
            assert await pages[0].evaluate("location.protocol") == "https:"
            stats = httpx.get(url.admin + "/stats").json()
            assert stats["calls_connected"] >= 2 and stats["relay_legs"] == 2
