"""Strict route end to end: two real aiortc clients through the relay, real VP8, the real model.

A sends a photograph that is safe under the test policy, then (without a keyframe: aiortc's
VP8 encoder makes keyframes only when asked) one that is not, then the safe one again. B must
never decode the unsafe picture, and must see the safe one before and after.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection

from models.batching import AsyncBatcher
from models.inference import ModelRunner
from models.letterbox import Letterbox
from relay import rtp
from relay.aiortc_adapter import AiortcLeg
from relay.codecs import vp8_is_keyframe_start
from relay.forwarding_hub import ForwardingHub
from relay.strict.moderation import Moderator
from tests.support.relay_peers import config, connect_client
from tests.support.strict_support import FACE_POLICY, SAFE, UNSAFE, PhotoTrack, shows
from tests.support.tracks import SolidTrack

pytestmark = pytest.mark.slow  # a real service with relay worker processes, or the real model


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await pc.close()


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    r = ModelRunner(intra_op_threads=1)
    r.infer_one(np.zeros((3, 320, 320), np.float32), Letterbox.identity(320))  # warm up
    return r


async def wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
@pytest.mark.exclusive  # "frozen within 0.5 s of the block": a busy neighbour delays decoding
async def test_unsafe_video_never_reaches_the_partner(
    pcs: list[RTCPeerConnection], runner: ModelRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str, float, float]] = []

    def on_moderation(leg: AiortcLeg, state: str, label: str, score: float) -> None:
        assert leg is legs["a"]
        events.append((state, label, score, time.monotonic()))

    hub = ForwardingHub(on_moderation=on_moderation)
    # aiortc's sender rebuilds its VP8 encoder (a spontaneous keyframe) whenever the REMB
    # estimate moves by >10%; without REMB it sends keyframes only on PLI, as this test needs
    # (neither the receiver's REMB nor the relay's own estimate reaches it).
    monkeypatch.setattr(hub, "_send_remb", lambda *args: None)
    keyframes_from_a: list[float] = []
    legs: dict[str, AiortcLeg] = {}

    def tap(leg: AiortcLeg, data: bytes, now: float) -> None:
        off = rtp.check_rtp(data)
        if (
            isinstance(off, int)
            and rtp.payload_type(data) in vp8_pts
            and vp8_is_keyframe_start(data, off, rtp.payload_end(data))
        ):
            keyframes_from_a.append(now)
        hub.on_rtp(leg, data, now)

    relay_pcs: list[RTCPeerConnection] = []
    a, b = RTCPeerConnection(config()), RTCPeerConnection(config())
    pcs.extend([a, b])
    track_a = PhotoTrack(SAFE)
    a.addTrack(track_a)
    b.addTrack(SolidTrack(40))
    at_b: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @b.on("track")
    def on_track(track: Any) -> None:
        if not at_b.done():
            at_b.set_result(track)

    legs["a"] = await connect_client(a, hub, relay_pcs, on_rtp=tap)
    vp8_pts = {c.payloadType for c in legs["a"].media["video"].codecs if c.mimeType == "video/VP8"}
    legs["b"] = await connect_client(b, hub, relay_pcs)
    pcs.extend(relay_pcs)
    moderator = Moderator(AsyncBatcher(runner))
    stream = hub.set_moderated(legs["a"], moderator, FACE_POLICY)
    hub.set_moderated(legs["b"], moderator, FACE_POLICY)  # a strict call is moderated both ways
    hub.pair(legs["a"], legs["b"])

    seen: list[tuple[float, str]] = []

    async def collect(track: Any) -> None:
        while True:
            frame = await track.recv()
            seen.append((time.monotonic(), shows(frame.to_ndarray(format="rgb24"))))

    collector = asyncio.create_task(collect(await asyncio.wait_for(at_b, 20)))
    try:
        await wait_until(lambda: len(seen) >= 15, 20)  # the safe photograph flows

        track_a.name = UNSAFE  # mid-stream, in delta frames
        switched = time.monotonic()
        await wait_until(lambda: events, 10)
        blocked_at = events[0][3]
        await asyncio.sleep(1.0)  # the astronaut stays on screen a while
        received_while_blocked = len(seen)

        track_a.name = SAFE
        await wait_until(lambda: len(events) >= 2, 15)
        resumed_at = events[1][3]
        await wait_until(lambda: len([t for t, _ in seen if t > resumed_at]) >= 15, 15)
    finally:
        collector.cancel()
        await moderator.aclose()

    assert [e[:2] for e in events] == [("blocked", "FACE_FEMALE"), ("resumed", "")], events
    assert 0.6 < events[0][2] < 1.0
    assert stream.gate.strikes == 1
    # no keyframe from A between the switch and the block: the astronaut came in deltas
    assert not [t for t in keyframes_from_a if switched < t < blocked_at], (
        keyframes_from_a,
        switched,
        blocked_at,
    )
    # B decoded only the safe photograph: before, nothing while blocked, and after
    labels = [s for _, s in seen]
    assert set(labels) == {SAFE}, labels
    assert not [t for t, _ in seen if blocked_at + 0.5 < t < resumed_at]  # frozen meanwhile
    assert received_while_blocked >= 15
    # the forwarded stream to B stayed one clean RTP stream (a new epoch, no gap)
    to_b = hub.forwarder(legs["b"], "video")
    assert to_b.rewriter.epochs >= 2 and to_b.dropped["late"] == 0
    assert hub.pli_sent >= 1


@pytest.mark.timeout(120)
def test_a_strict_call_writes_no_media_anywhere(tmp_path: Path) -> None:
    """The moderated relay in a child process under an audit hook (``strict_privacy_child``).

    Allowed: opening /dev/null, and the ``.ses`` file onnxruntime's telemetry component writes
    into $TMPDIR when it is imported (a timestamp and a random session id, no media).
    """
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    tests = Path(__file__).resolve().parent
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tests.parent), str(tests)])
    proc = subprocess.run(
        [sys.executable, str(tests / "support" / "strict_privacy_child.py")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["events"] == ["blocked", "resumed"], result
    assert result["seen"] == [SAFE] and result["frames"] >= 10, result
    assert [w for w in result["writes"] if not w.startswith("open '/dev/null'")] == []
    assert list(cwd.iterdir()) == []
    leftovers = {p.name: p.stat().st_size for p in tmp.iterdir()}
    assert set(leftovers) <= {".ses"} and all(n < 200 for n in leftovers.values()), leftovers
    assert result["suspicious_logs"] == [], result["suspicious_logs"]
    assert result["log_records"] > 0  # the handler did see the call's logging
    assert any("blocked" in m for m in result["our_log_records"]), result["our_log_records"]
