"""Process plumbing shared by the benchmarks' load generators and the naive relay.

Why pipes and a thread: the orchestrator and its children exchange small messages (offers,
reports, ``stop``) while each child runs its own event loop; a daemon thread per pipe hands
messages to the loop without blocking it or keeping it alive at shutdown.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any


def pin_ice_address(address: str) -> None:
    """Make aioice gather host candidates on ``address`` only, in this process.

    Why: aioice offers every address of every interface. On a shared machine other work
    creates and deletes interfaces (network namespaces, veth pairs) during a run, and a pair
    nominated on one of them goes silent when it disappears; seen here as streams that
    connected and then never delivered a frame. Both ends live on this machine, so one
    stable address is what a benchmark wants.
    """
    import aioice.ice

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [address]

    setattr(aioice.ice, "get_host_addresses", host_addresses)  # noqa: B010


def run_loop(main: Coroutine[Any, Any, None], use_uvloop: bool) -> None:
    """Run ``main`` on uvloop or asyncio's default loop."""
    if use_uvloop:
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


# ---------------------------------------------------------------------- pipe messaging


def _read_pipe(
    conn: Connection, loop: asyncio.AbstractEventLoop, on: Callable[[Any], None]
) -> None:
    """Daemon thread: hand each message to the loop; stop when the other end closes.

    A thread rather than ``run_in_executor``: a blocked executor thread would keep
    ``asyncio.run`` from returning at shutdown.
    """
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            loop.call_soon_threadsafe(on, msg)
        except RuntimeError:  # loop closed
            return


def listen(conn: Connection, on: Callable[[Any], None]) -> None:
    """Start delivering ``conn``'s messages to ``on`` on the running loop."""
    loop = asyncio.get_running_loop()
    threading.Thread(target=_read_pipe, args=(conn, loop, on), daemon=True).start()


class PipeClient:
    """Request/response over a pipe: ``await call(kind, *args)``; requests may overlap."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        listen(conn, self._resolve)

    def _resolve(self, msg: tuple[int, Any]) -> None:
        fut = self._waiting.pop(msg[0], None)
        if fut is not None and not fut.done():
            fut.set_result(msg[1])

    async def call(self, *msg: Any) -> Any:
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self._conn.send((rid, *msg))
        return await fut


def call_sync(conn: Connection, *msg: Any, timeout: float = 60.0) -> Any:
    """Blocking request/response for the orchestrating process (one request at a time)."""
    conn.send((0, *msg))
    if not conn.poll(timeout):
        raise TimeoutError(f"no answer to {msg[0]!r} within {timeout} s")
    return conn.recv()[1]


# ---------------------------------------------------------------------- relay under test
