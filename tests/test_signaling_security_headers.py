"""Security headers on the public port, and the web client working under its CSP."""

from __future__ import annotations

import httpx
import pytest

from signaling.security_headers import content_security_policy
from tests.support.browser import chromium, requires_chromium, wait_for_frames, wait_for_state
from tests.support.server import RunningServer


def test_the_policy_names_the_pages_own_sockets_and_nothing_a_host_header_could_smuggle() -> None:
    policy = content_security_policy("chat.example.org")
    assert "connect-src 'self' ws://chat.example.org wss://chat.example.org;" in policy
    assert "connect-src 'self' ws://[::1]:8080 wss://[::1]:8080;" in (
        content_security_policy("[::1]:8080")
    )
    for hostile in ("x; script-src *", "x'", "a b", None):
        assert "connect-src 'self';" in content_security_policy(hostile), hostile


def test_every_response_carries_the_headers(server: RunningServer) -> None:
    host = f"127.0.0.1:{server.port}"
    for path in ("/", "/static/client.js", "/static/style.css", "/healthz", "/missing"):
        headers = httpx.get(server.http_url + path, timeout=5).headers
        csp = headers["content-security-policy"]
        for directive in (
            "script-src 'self'",
            f"connect-src 'self' ws://{host} wss://{host}",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ):
            assert directive in csp, (path, directive)
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "camera=(self)" in headers["permissions-policy"]
        assert "microphone=(self)" in headers["permissions-policy"]


@pytest.mark.browser
@requires_chromium
async def test_the_web_client_calls_under_its_csp_without_a_violation(
    server: RunningServer,
) -> None:
    """Chromium reports every CSP violation on the console, from the first byte of the page."""
    async with chromium() as browser:
        pages, refusals = [], []
        for _ in range(2):
            page = await (await browser.new_context()).new_page()
            page.on(
                "console",
                lambda m: refusals.append(m.text) if "Security Policy" in m.text else None,
            )
            await page.goto(server.http_url)
            pages.append(page)
        alice, bob = pages
        await alice.click("#start")
        await wait_for_state(alice, "waiting")
        await bob.click("#start")
        for page in (alice, bob):
            await wait_for_state(page, "connected")
            await wait_for_frames(page, 10)
        await alice.fill("#chat-input", "hello")
        await alice.click("#chat-send")
        await bob.wait_for_selector("#chat-log li.stranger >> text=hello", timeout=5_000)
        assert refusals == []
        # and the policy is in force: an inline script does not run, and is reported
        ran = await alice.evaluate(
            """() => { const s = document.createElement("script");
              s.textContent = "window.inlineRan = true"; document.body.append(s);
              return window.inlineRan === true; }"""
        )
        assert not ran
        await alice.wait_for_timeout(200)
        assert len(refusals) == 1 and "script-src" in refusals[0], refusals
