"""What the hub passes between partners besides SDP, without sockets: text chat (the token
bucket, delivery only to the partner) and the state of a call's media (reconnecting)."""

from __future__ import annotations

import itertools
import random

from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.chat import ChatGate
from signaling.config import config_from_mapping
from signaling.matchmaking import Matchmaker
from signaling.route_policy import Route, RoutePolicy


def make_hub(**chat: object) -> SignalingHub:
    config = config_from_mapping({"chat": chat} if chat else {})
    counter = itertools.count()
    return SignalingHub(
        config,
        RoutePolicy(config.regions, Route.DIRECT),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
        new_id=lambda: f"id{next(counter)}",
    )


def paired(hub: SignalingHub, now: float = 0) -> tuple[str, str, str]:
    a = hub.connect("default", now, now, device="dev-a")
    b = hub.connect("default", now, now, device="dev-b")
    hub.receive(a, p.Join(), now, now)
    hub.receive(b, p.Join(), now, now)
    (pair,) = {m.pair for _, m in hub.drain_outbox() if isinstance(m, p.Paired)}
    return a, b, pair


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    limiter = ChatGate(max_chars=500, burst=3, per_s=2.0)
    assert [limiter.allow("u", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.retry_after_s("u", 0.0) == 0.5
    assert not limiter.allow("u", 0.25)  # half a token
    assert limiter.allow("u", 0.5)
    assert limiter.allow("v", 0.5)  # buckets are per client
    assert [limiter.allow("u", 100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_chat_reaches_only_the_partner_and_a_third_gets_nothing() -> None:
    hub = make_hub()
    a, b, pair = paired(hub)
    c = hub.connect("default", 0, 0, device="dev-c")
    hub.receive(c, p.Join(), 0, 0)
    hub.drain_outbox()
    hub.receive(a, p.Chat(pair=pair, text="<b>hi</b>"), 1, 1)
    assert hub.drain_outbox() == [(b, p.RelayedChat(pair=pair, text="<b>hi</b>"))]
    hub.receive(c, p.Chat(pair=pair, text="let me in"), 1, 1)  # not a member of the pair
    ((to, error),) = hub.drain_outbox()
    assert to == c and isinstance(error, p.Error) and error.code == "not_paired"


def test_chat_under_an_old_pair_is_refused() -> None:
    hub = make_hub()
    a, _, pair = paired(hub)
    hub.receive(a, p.Next(), 1, 1)
    hub.drain_outbox()
    hub.receive(a, p.Chat(pair=pair, text="still there?"), 2, 2)
    ((to, error),) = hub.drain_outbox()
    assert to == a and isinstance(error, p.Error) and error.code == "not_paired"


def test_flooding_is_refused_with_a_clear_error_and_nothing_is_relayed() -> None:
    hub = make_hub(burst=2, per_s=1.0)
    a, b, pair = paired(hub)
    for _ in range(3):
        hub.receive(a, p.Chat(pair=pair, text="spam"), 1, 1)
    sent = hub.drain_outbox()
    assert [to for to, m in sent if isinstance(m, p.RelayedChat)] == [b, b]
    (error,) = [m for _, m in sent if isinstance(m, p.Error)]
    assert error.code == "rate_limited" and "too fast" in error.message
    assert (error.kind, error.retry_after_s) == ("chat", 1.0)
    hub.receive(a, p.Chat(pair=pair, text="later"), 2.1, 2.1)
    assert hub.drain_outbox() == [(b, p.RelayedChat(pair=pair, text="later"))]


def test_configured_length_limit_and_protocol_ceiling() -> None:
    hub = make_hub(max_chars=10)
    a, _, pair = paired(hub)
    hub.receive(a, p.Chat(pair=pair, text="x" * 11), 1, 1)
    ((_, error),) = hub.drain_outbox()
    assert isinstance(error, p.Error) and error.code == "too_long"
    raw = '{"type": "chat", "pair": "p", "text": "%s"}'
    for text in ("", "x" * (p.CHAT_MAX_CHARS + 1)):
        try:
            p.decode_client_message(raw % text, 65536)
        except p.ProtocolError as exc:
            assert exc.code == "invalid" and "$.text" in exc.message
        else:
            raise AssertionError(f"a chat of {len(text)} characters was accepted")


def test_welcome_tells_the_page_the_limits_and_the_cooldown() -> None:
    hub = make_hub(max_chars=100)
    hub.connect("default", 0, 0)
    ((_, welcome),) = hub.drain_outbox()
    assert isinstance(welcome, p.Welcome)
    assert welcome.chat_max_chars == 100 and welcome.repair_cooldown_s == 60.0


def test_a_client_that_leaves_takes_its_bucket_along() -> None:
    hub = make_hub(burst=1)
    a, _, pair = paired(hub)
    hub.receive(a, p.Chat(pair=pair, text="bye"), 1, 1)
    hub.disconnect(a, 1)
    assert hub.chat.retry_after_s(a, 1) == 0.0  # its bucket, had it stayed, is empty


def test_a_reconnecting_member_is_announced_to_its_partner_only() -> None:
    hub = make_hub()
    a, b, pair = paired(hub)
    hub.connect("default", 0, 0, device="dev-c")  # a bystander, who must hear nothing
    hub.drain_outbox()
    hub.receive(a, p.CallState(pair=pair, state="reconnecting", route="direct"), 1, 1)
    # a gets fresh ICE servers for its restart (signaling.ice), b hears of it, c nothing
    assert hub.drain_outbox() == [
        (a, p.IceServers(pair=pair, ice_servers=[])),
        (b, p.PartnerState(pair=pair, state="reconnecting")),
    ]
    hub.receive(a, p.CallState(pair=pair, state="connected", route="direct"), 2, 2)
    assert hub.drain_outbox() == [(b, p.PartnerState(pair=pair, state="connected"))]
    assert hub.stats.calls_connected == 1 and hub.stats.calls_failed == 0
