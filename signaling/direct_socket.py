"""The client WebSocket handed straight to its handler, past Starlette's stack.

Why: a client's handler runs for as long as it stays connected, and Starlette awaits it
through the application, two error middlewares, the security-headers middleware, the router,
the route and two exception wrappers. That is 10 coroutines and about 40 other objects per
connected client (``python -m bench.signaling_gc``), which every full collection of the
garbage collector walks, and two wrappers that every message sent goes through. None of them
does anything for this socket: the security headers are for HTTP responses, and an error in
the handler ends its connection either way (uvicorn logs it and closes with 1011, as it does
when Starlette re-raises it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

SocketHandler = Callable[[WebSocket], Awaitable[None]]


class DirectSocketApp(Starlette):
    """Starlette, except that a WebSocket at ``path`` goes to ``handler`` directly."""

    def __init__(self, path: str, handler: SocketHandler, **starlette: Any) -> None:
        super().__init__(**starlette)
        self._path = path
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self._path:
            scope["app"] = self
            await self._handler(WebSocket(scope, receive, send))
        else:
            await super().__call__(scope, receive, send)
