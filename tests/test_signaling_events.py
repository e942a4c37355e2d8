"""Operator events leave the service signed, retried and without media: the webhook sender
against a real HTTP receiver on loopback, then a real strict call whose sender shows a blocked
picture, seen in the log and at the receiver."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from signaling.route_policy import Route
from signaling.webhook import WebhookSender, signature
from tests.support.rtcclient import ChatPeer
from tests.support.server import RunningServer, make_config, run_server, wait_for_workers
from tests.support.strict_support import SAFE, UNSAFE, PhotoTrack, shows
from tests.support.webhook import Receiver, webhook_receiver

SECRET = "s3cret-for-tests"


def verified(receiver: Receiver) -> list[dict[str, object]]:
    """The bodies the receiver got, each after checking its signature as a receiver would."""
    bodies = []
    for request in receiver.requests:
        timestamp = request.headers["X-Chatguard-Timestamp"]
        expected = signature(SECRET, timestamp, request.body)
        assert hmac.compare_digest(request.headers["X-Chatguard-Signature"], expected)
        assert abs(int(timestamp) - time.time()) < 60
        assert request.headers["Content-Type"] == "application/json"
        bodies.append(json.loads(request.body))
    return bodies


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_a_refused_delivery_is_retried_until_the_receiver_takes_it() -> None:
    with webhook_receiver() as receiver:
        receiver.statuses = [503, 500]
        sender = WebhookSender(receiver.url, SECRET, retry_delays_s=(0.05, 0.05, 0.05))
        await sender.start()
        try:
            sender.submit(b'{"decision":"blocked"}')
            await until(lambda: sender.delivered == 1)
        finally:
            await sender.stop()
        assert [r.body for r in receiver.requests] == [b'{"decision":"blocked"}'] * 3
        assert verified(receiver) == [{"decision": "blocked"}] * 3
        assert sender.dropped == 0


async def test_a_full_queue_drops_the_oldest_and_never_blocks() -> None:
    with webhook_receiver() as receiver:
        sender = WebhookSender(receiver.url, SECRET, queue_limit=2, retry_delays_s=())
        for n in range(5):  # not started yet: nothing is sent, the queue fills
            sender.submit(f'{{"n":{n}}}'.encode())
        assert sender.dropped == 3
        await sender.start()
        try:
            await until(lambda: sender.delivered == 2)
        finally:
            await sender.stop()
        assert verified(receiver) == [{"n": 3}, {"n": 4}]


async def test_a_receiver_that_stays_down_costs_the_event_not_the_sender() -> None:
    with webhook_receiver() as receiver:
        receiver.statuses = [500, 500, 500]
        sender = WebhookSender(receiver.url, SECRET, retry_delays_s=(0.01,))
        await sender.start()
        try:
            sender.submit(b'{"n":1}')
            sender.submit(b'{"n":2}')
            await until(lambda: sender.dropped == 1 and sender.delivered == 1)
        finally:
            await sender.stop()
        assert [r.body for r in receiver.requests] == [
            b'{"n":1}',
            b'{"n":1}',
            b'{"n":2}',
            b'{"n":2}',
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def strict_server(receiver: Receiver) -> Iterator[RunningServer]:
    config = make_config(
        relay={"workers": 1},
        moderation={"block": {"FACE_FEMALE": 0.5}, "strikes_to_ban": 5},
        events={"webhook_url": receiver.url, "webhook_secret": SECRET},
    )
    yield from run_server(config, Route.STRICT)


@pytest.mark.slow
async def test_a_blocked_picture_makes_one_event_in_the_log_and_at_the_webhook(
    strict_server: RunningServer, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatguard.events")
    await wait_for_workers(strict_server, 1)
    shown = PhotoTrack(SAFE)
    alice = await ChatPeer.join(
        strict_server.ws_url, 0, 440, video=lambda: PhotoTrack(SAFE), recognise=shows
    )
    bob = await ChatPeer.join(strict_server.ws_url, 0, 1000, video=lambda: shown, recognise=shows)
    try:
        await alice.wait_for_frames(10, timeout=30)
        assert receiver.requests == []  # safe video decides nothing worth an event
        shown.name = UNSAFE
        await until(lambda: any(b"blocked" in r.body for r in receiver.requests), 20)
        await asyncio.sleep(1.0)  # a second event for the same block would have come by now
    finally:
        await alice.close()
        await bob.close()
    blocked = [body for body in verified(receiver) if body["decision"] == "blocked"]
    assert len(blocked) == 1, verified(receiver)
    (event,) = blocked
    assert set(event) == {"id", "time", "decision", "automated", "ground", "subject", "call"}
    assert event["automated"] is True and str(event["time"]).endswith("Z")
    ground = event["ground"]
    assert isinstance(ground, dict) and set(ground) == {"label", "score", "threshold"}
    assert ground["label"] == "FACE_FEMALE" and ground["threshold"] == 0.5
    assert isinstance(ground["score"], float) and ground["score"] >= 0.5
    (body,) = [r.body for r in receiver.requests if json.loads(r.body)["id"] == event["id"]]
    assert len(body) < 400  # metadata only: no picture, no SDP, no address fits in this
    assert b"127.0.0.1" not in body and b"v=0" not in body
    events = [getattr(record, "event", None) for record in caplog.records]
    assert [e for e in events if e is not None and e["decision"] == "blocked"] == [event]
    strikes = [body for body in verified(receiver) if body["decision"] == "strike"]
    assert len(strikes) == 1 and strikes[0]["ground"] == {**ground, "strikes": 1}
    recent = httpx.get(strict_server.admin_url + "/events").json()
    assert [e for e in recent if e["decision"] == "blocked"] == [event]
    assert httpx.get(strict_server.http_url + "/events").status_code == 404
    metrics = httpx.get(strict_server.admin_url + "/metrics").text
    assert f"chatguard_events_webhook_delivered_total {float(len(receiver.requests))}" in metrics
