"""What a connected client costs the signaling process's cyclic garbage collector: the objects
it tracks per client, by type, and how long a full collection takes with them.

Run ``python -m bench.signaling_gc --clients 2000``. The service runs in this process, under
uvicorn as ``chatguard serve`` runs it (``chatguard.serve.uvicorn_config``, start-up objects
frozen as ``serve`` freezes them), and its clients in a child process; each state (connected
and idle, waiting for a partner, paired) is held by ``--clients`` clients in turn and the
collector's objects are counted against the count with nobody connected.

Why in this process: ``gc.get_objects()`` only sees the process it runs in, and counting on
the service's own loop needs a hook the product would not otherwise have. Why a full
collection's time: it walks every tracked object, so it is the longest pause the collector can
give a pairing, and it grows with clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

State = Literal["idle", "waiting", "paired"]
STATES: tuple[State, ...] = ("idle", "waiting", "paired")
EXPECTED: dict[State, str | None] = {"idle": None, "waiting": "waiting", "paired": "paired"}
"""The message each client waits for before its state is held (idle: only the welcome)."""


@dataclass(frozen=True)
class Census:
    """The collector's view of the service while ``clients`` clients are in ``state``."""

    state: str
    clients: int
    tracked: int
    """Objects the collector tracks, the frozen start-up ones apart."""
    garbage: int
    """Unreachable objects (cycles) the first full collection found: what connecting,
    joining and leaving left for the collector, since reference counting could not free it."""
    full_collection_s: float
    """A full collection's time with them (the second of two: the first also frees)."""
    by_type: Counter[str]


def type_name(obj: object) -> str:
    """A type's name, or for a coroutine the function it runs: 18 coroutines per client say
    little until they say whose they are."""
    if asyncio.iscoroutine(obj) and hasattr(obj, "cr_code"):
        return f"coroutine {obj.cr_code.co_qualname}"
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def census(state: str, clients: int) -> Census:
    garbage = gc.collect()
    started = time.perf_counter()
    gc.collect()
    pause = time.perf_counter() - started
    counts = Counter(type_name(obj) for obj in gc.get_objects())
    return Census(state, clients, sum(counts.values()), garbage, pause, counts)


def hold_clients(url: str, clients: int, state: State, pipe: Any) -> None:
    """A child process: ``clients`` clients in ``state``; says "ready" through ``pipe`` once
    all are there, closes them when told to."""
    import websockets

    from bench.signaling_load import connect

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            sockets: list[websockets.ClientConnection] = []
            for index in range(clients):
                ws = await stack.enter_async_context(connect(url, "browser"))
                await ws.recv()  # welcome
                if state != "idle":
                    interest = f"gc{index}" if state == "waiting" else f"gc{index // 2}"
                    await ws.send(json.dumps({"type": "join", "interests": [interest]}))
                sockets.append(ws)
            expected = EXPECTED[state]
            for ws in sockets if expected else ():
                while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] != expected:
                    pass
            pipe.send("ready")
            await asyncio.to_thread(pipe.recv)

    asyncio.run(main())


def service_config(port: int) -> Any:
    """Signaling alone, as ``chatguard bench signaling`` starts it: no relay workers, no admin
    listener, every client from this machine's one address, and nobody paired on a fallback
    (a waiting client keeps waiting)."""
    from signaling.config import config_from_mapping

    return config_from_mapping(
        {
            "server": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
            "admin": {"port": 0},
            "relay": {"workers": 0},
            "limits": {"per_address": False},
            "matchmaking": {"interest_fallback_s": 3600},
        }
    )


async def measure(clients: int, states: tuple[State, ...]) -> list[Census]:
    """The census with nobody connected, then with ``clients`` clients in each state."""
    import uvicorn

    from bench.service import free_port
    from chatguard.runtime import tune_gc_for_serving
    from chatguard.serve import create_serving_app, uvicorn_config

    config = service_config(free_port())
    app = create_serving_app(config)
    server = uvicorn.Server(uvicorn_config(app, config))
    tune_gc_for_serving()
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("the service stopped at start")
            await asyncio.sleep(0.05)
        url = f"ws://127.0.0.1:{config.server.port}/ws"
        found = [census("none", 0)]
        for state in states:
            async with _clients(url, clients, state) as ready:
                await asyncio.to_thread(ready)
                found.append(census(state, clients))
            hub = app.state.service.hub
            while hub.client_count():  # the next census counts none of these
                await asyncio.sleep(0.05)
        return found
    finally:
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def _clients(url: str, clients: int, state: State) -> AsyncIterator[Any]:
    """A child process holding the clients; yields a call that waits until they are there.
    Waited for off the loop: the service on it must answer their closing handshakes."""
    parent, child = mp.get_context("spawn").Pipe()
    process = mp.get_context("spawn").Process(
        target=hold_clients, args=(url, clients, state, child)
    )
    process.start()

    def ready() -> None:
        if parent.recv() != "ready":
            raise RuntimeError(f"the clients did not reach {state}")

    try:
        yield ready
    finally:
        parent.send("close")
        await asyncio.to_thread(process.join, 60)


def report(found: list[Census], top: int) -> str:
    """Objects per client and a full collection's time in each state, and the types that grew
    most per client against nobody connected."""
    base = found[0]
    lines = [
        f"{'state':>8} {'clients':>7} {'tracked':>9} {'per client':>10} {'full collection':>15} "
        f"{'garbage found':>13}",
    ]
    for c in found:
        per_client = (c.tracked - base.tracked) / c.clients if c.clients else 0.0
        lines.append(
            f"{c.state:>8} {c.clients:7d} {c.tracked:9d} {per_client:10.1f} "
            f"{1000 * c.full_collection_s:12.1f} ms {c.garbage:13d}"
        )
    for c in found[1:]:
        grown = Counter(c.by_type)
        grown.subtract(base.by_type)
        lines.append(f"\nper {c.state} client, the {top} types that grew most:")
        lines += [f"  {count / c.clients:6.2f} {name}" for name, count in grown.most_common(top)]
    return "\n".join(lines)


def _run(measuring: Coroutine[Any, Any, list[Census]]) -> list[Census]:
    """On uvloop when it is installed, as ``chatguard serve`` runs (uvicorn's ``loop="auto"``):
    its transports and timers are objects of their own, not asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(measuring)
    return uvloop.run(measuring)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.signaling_gc", description=__doc__)
    parser.add_argument("--clients", type=int, default=2000, help="clients per state (2000)")
    parser.add_argument(
        "--states",
        default=",".join(STATES),
        help=f"comma-separated states to hold, of {', '.join(STATES)} (default all)",
    )
    parser.add_argument("--top", type=int, default=25, help="types listed per state (25)")
    args = parser.parse_args(argv)
    chosen = {s for s in args.states.split(",") if s}
    if not chosen <= set(STATES) or args.clients < 2 or args.clients % 2:
        parser.error(f"need an even --clients >= 2 and --states of {', '.join(STATES)}")
    found = _run(measure(args.clients, tuple(s for s in STATES if s in chosen)))
    print(report(found, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
