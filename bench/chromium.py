"""How the probes and the browser tests start Debian's headless Chromium (never a downloaded one).

Why here: ``bench.strict_browser_probe`` and ``tests/support/browser.py`` need the same flags
(fake camera and permission prompts, no mDNS hiding of host candidates, no background traffic),
and the product never imports the tests.
"""

from __future__ import annotations

from typing import Final

CHROMIUM: Final = "/usr/bin/chromium"
FLAGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
)
