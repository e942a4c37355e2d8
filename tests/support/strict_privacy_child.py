"""Child process of ``test_relay_strict_privacy``: a strict call under an audit hook.

Records every file opened for writing and every file-system mutation from the first line on,
then runs a moderated call (two aiortc clients through the relay; safe, unsafe, safe again)
and prints a JSON summary on its last line of stdout.
"""

from __future__ import annotations

import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
MUTATING = {"os.mkdir", "os.rename", "os.remove", "os.link", "os.symlink", "os.truncate"}
MUTATING |= {"shutil.copyfile", "shutil.move", "tempfile.mkstemp", "tempfile.mkdtemp"}
writes: list[str] = []


def audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS
        ):
            writes.append(f"open {path!r} {mode!r} {flags!r}")
    elif event in MUTATING:
        writes.append(f"{event} {args!r}")


sys.addaudithook(audit)

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


OURS = ("relay", "models", "fastpath")


def suspicious(record: logging.LogRecord) -> bool:
    """A record that could carry media: an array or more than a few bytes of binary data as
    an argument (any logger; PIL logs 4-byte PNG chunk names while the test loads photos), or
    a long message from chatguard's own code (aiortc's debug log prints SDP)."""
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    if any(isinstance(a, np.ndarray) for a in args):
        return True
    if any(isinstance(a, (bytes, bytearray, memoryview)) and len(a) > 64 for a in args):
        return True
    return record.name.startswith(OURS) and len(record.getMessage()) > 200


async def call() -> dict[str, Any]:
    from aiortc import RTCPeerConnection

    from relay.forwarding_hub import ForwardingHub
    from relay.strict.moderation import Moderator
    from tests.support.relay_peers import config, connect_client
    from tests.support.strict_support import FACE_POLICY, SAFE, UNSAFE, PhotoTrack, shows
    from tests.support.tracks import SolidTrack

    events: list[str] = []
    hub = ForwardingHub(on_moderation=lambda leg, state, label, score: events.append(state))
    pcs: list[RTCPeerConnection] = []
    a, b = RTCPeerConnection(config()), RTCPeerConnection(config())
    track = PhotoTrack(SAFE)
    a.addTrack(track)
    b.addTrack(SolidTrack(40))
    seen: list[str] = []

    async def collect(t: Any) -> None:
        while True:
            seen.append(shows((await t.recv()).to_ndarray(format="rgb24")))

    tasks: list[asyncio.Task[None]] = []
    b.on("track", lambda t: tasks.append(asyncio.ensure_future(collect(t))))
    leg_a = await connect_client(a, hub, pcs)
    leg_b = await connect_client(b, hub, pcs)
    moderator = Moderator.default()
    hub.set_moderated(leg_a, moderator, FACE_POLICY)
    hub.set_moderated(leg_b, moderator, FACE_POLICY)  # a strict call is moderated both ways
    hub.pair(leg_a, leg_b)
    deadline = time.monotonic() + 40
    for name, until in ((SAFE, lambda: len(seen) >= 10), (UNSAFE, lambda: bool(events))):
        track.name = name
        while not until() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    track.name = SAFE
    while len(events) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    for t in tasks:
        t.cancel()
    await moderator.aclose()
    for pc in (a, b, *pcs):
        await pc.close()
    return {"events": events, "seen": sorted(set(seen)), "frames": len(seen)}


def main() -> None:
    handler = Records()
    logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    result = asyncio.run(call())
    result["writes"] = writes
    result["log_records"] = len(handler.records)
    result["our_log_records"] = [r.getMessage() for r in handler.records if r.name.startswith(OURS)]
    result["suspicious_logs"] = [r.getMessage()[:200] for r in handler.records if suspicious(r)]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
