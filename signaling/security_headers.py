"""Security headers on every HTTP response of the public port (the page, static files, health).

Why: the page shows what strangers type and holds a camera; if anything ever slipped a script
into it, the Content-Security-Policy keeps that script from running (only our own files run:
no inline code, no other hosts), from sending data anywhere but this server, and the page from
being framed by another site (clickjacking a Start button). The client loads only its own
``/static`` files and opens only its own WebSocket, so the policy costs it nothing.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
"""A Host header safe to repeat inside the policy (no spaces, quotes or semicolons)."""

FIXED_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(self), microphone=(self), geolocation=(), payment=()",
    "cross-origin-opener-policy": "same-origin",
}


def content_security_policy(host: str | None) -> str:
    """The policy for a request to `host`: WebSocket URLs are not covered by 'self' in every
    browser, so the page's own ws:// and wss:// are named (when the Host header is sane)."""
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob:; connect-src 'self'{sockets}; frame-ancestors 'none'; "
        "object-src 'none'; base-uri 'none'; form-action 'none'"
    )


class SecurityHeaders:
    """ASGI middleware: adds the headers above to HTTP responses (WebSockets pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = content_security_policy(Headers(scope=scope).get("host"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (*FIXED_HEADERS.items(), ("content-security-policy", policy)):
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
