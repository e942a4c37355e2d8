"""The strict route end to end: real signaling, a real relay worker process with the real
model, and two aiortc peers, one of whom shows a photograph the test policy blocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from aiortc import MediaStreamTrack

from signaling.route_policy import Route
from tests.support.rtcclient import ChatPeer
from tests.support.server import RunningServer, make_config, run_server, wait_for_workers
from tests.support.strict_support import SAFE, UNSAFE, PhotoTrack, shows

pytestmark = pytest.mark.slow  # a real service with relay worker processes, or the real model


@pytest.fixture
def strict_server() -> Iterator[RunningServer]:
    config = make_config(
        relay={"workers": 1},
        moderation={"block": {"FACE_FEMALE": 0.5}, "strikes_to_ban": 5},
    )
    yield from run_server(config, Route.STRICT)


def photo(name: str) -> MediaStreamTrack:
    return PhotoTrack(name)


async def wait_for_moderation(peer: ChatPeer, state: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        for event in peer.events:
            if event["type"] == "moderation" and event["state"] == state:
                return event
        assert time.monotonic() < deadline, f"no moderation {state} among {peer.events}"
        await asyncio.sleep(0.1)


async def test_blocked_photo_never_reaches_the_partner_and_both_are_told(
    strict_server: RunningServer,
) -> None:
    await wait_for_workers(strict_server, 1)
    shown = PhotoTrack(SAFE)
    alice = await ChatPeer.join(
        strict_server.ws_url, 0, 440, video=lambda: photo(SAFE), recognise=shows
    )
    bob = await ChatPeer.join(strict_server.ws_url, 0, 1000, video=lambda: shown, recognise=shows)
    try:
        await alice.wait_for_frames(15, timeout=30)  # bob's safe rocket gets through
        assert alice.route == bob.route == "strict"
        assert set(alice.frames) <= {SAFE, "mixed"} and SAFE in alice.frames
        shown.name = UNSAFE  # bob's camera now shows the blocked photograph, mid-stream
        told_alice = await wait_for_moderation(alice, "blocked")
        told_bob = await wait_for_moderation(bob, "blocked")
        assert told_alice["who"] == "partner" and told_alice["state"] == "blocked"
        assert told_bob["who"] == "you" and told_bob["label"] == "FACE_FEMALE"
        assert told_bob["strikes"] == 1
        await asyncio.sleep(2.0)
        assert UNSAFE not in alice.frames  # not a single frame of it reached alice
        shown.name = SAFE
        resumed = await wait_for_moderation(alice, "resumed")
        assert resumed["who"] == "partner"
        before = len(alice.frames)
        await alice.wait_for_frames(before + 10, timeout=20)
        assert UNSAFE not in alice.frames
    finally:
        await alice.close()
        await bob.close()
