"""A deadline on HTTP request heads for uvicorn, which has none.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``), but the first byte of
a request cancels that timer, and h11 then waits for the rest of the head as long as the
client likes: a client that opens connections and sends half a request each (slowloris)
holds them, and the process's file descriptors, for ever. This wraps the HTTP protocol class
uvicorn would pick ("auto": httptools when installed, else h11): a connection whose request
head is not complete `timeout_s` after it opened, or after its previous response, is
answered 408 and closed. A WebSocket handshake is such a head; once upgraded, the WebSocket's
own time-outs (heartbeat) take over, and the deadline is disarmed: its timer would keep the
replaced HTTP protocol (and, once the socket closes, its transport) alive until it fired,
about a dozen objects per client for the garbage collector to walk (``bench.signaling_gc``).

It relies on what uvicorn's h11 and httptools protocols both have, checked when the class is
made so that an uvicorn upgrade that renames them fails at start-up, naming this module:
``transport`` and ``loop``; ``cycle``, the request/response cycle, replaced when a new head is
complete; ``on_response_complete``, called when a response has been sent;
``handle_websocket_upgrade``, which hands the connection to the WebSocket protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

REQUIRED = (
    "connection_made",
    "connection_lost",
    "on_response_complete",
    "handle_websocket_upgrade",
)
"""Methods of uvicorn's HTTP protocol classes this wrapper extends."""
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


def header_deadline_protocol(
    timeout_s: float,
    on_timeout: Callable[[], None],
    base: type[asyncio.Protocol] | None = None,
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (`base`, default the one "auto" picks) with a deadline on
    each request head; `on_timeout` is called for each connection closed by it (a counter)."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol
    missing = [name for name in REQUIRED if not hasattr(base, name)]
    if missing:
        raise RuntimeError(
            f"uvicorn's {base.__qualname__} has no {', '.join(missing)}: uvicorn changed, "
            "re-check chatguard.header_deadline against it"
        )

    class HeaderDeadline(base):  # type: ignore[valid-type, misc]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm(None)

        def on_response_complete(self) -> None:
            finished = self.cycle
            super().on_response_complete()  # may start a pipelined request's cycle at once
            self._arm(finished)

        def handle_websocket_upgrade(self, *event: Any) -> None:
            """(h11's passes the request, httptools' nothing.)"""
            self._disarm()
            super().handle_websocket_upgrade(*event)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self, cycle: Any) -> None:
            """Expect a new head in time: one whose cycle is not `cycle` (None: the first)."""
            self._disarm()
            if not self.transport.is_closing():
                self._deadline = self.loop.call_later(timeout_s, self._expire, cycle)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self, cycle: Any) -> None:
            self._deadline = None
            transport = self.transport
            if self.cycle is not cycle or transport.is_closing():
                return  # a new head arrived in time
            if transport.get_protocol() is not self:
                return  # upgraded to a WebSocket
            on_timeout()
            transport.write(REQUEST_TIMEOUT)
            transport.close()

    HeaderDeadline.__qualname__ = f"HeaderDeadline[{base.__qualname__}]"
    return HeaderDeadline
