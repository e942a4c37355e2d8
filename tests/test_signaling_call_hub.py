"""The signaling hub without any socket: relay placement, leg lifecycle, moderation, bans.

Inputs are method calls with explicit times; outputs are read from the hub's outboxes.
"""

from __future__ import annotations

import itertools
import logging
import random

import pytest

from relay import control as rc
from signaling import events
from signaling import protocol as p
from signaling.call_hub import SignalingHub
from signaling.config import config_from_mapping
from signaling.matchmaking import Matchmaker
from signaling.route_policy import Route, RoutePolicy
from signaling.strikes import Person, StrikeBook, network_of


def make_hub(
    route: Route = Route.STRICT, events: dict[str, object] | None = None, **moderation: object
) -> SignalingHub:
    config = config_from_mapping({"moderation": moderation, "events": events or {}})
    counter = itertools.count()
    return SignalingHub(
        config,
        RoutePolicy(config.regions, route),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
        new_id=lambda: f"id{next(counter)}",
    )


def messages_for(hub: SignalingHub, user: str) -> list[p.ServerMessage]:
    return [message for to, message in hub.drain_outbox() if to == user]


def worker_joins(hub: SignalingHub, worker: str, moderation_ready: bool | None = True) -> None:
    """A worker says hello and reports its first load (by default, able to moderate)."""
    hub.worker_joined(rc.Hello(worker_id=worker, token="t", pid=1, max_sessions=10))
    load = rc.Load(legs=0, cpu_percent=0, rss_bytes=0, moderation_ready=moderation_ready)
    hub.worker_message(worker, load, 0, 0)


def relayed_call(hub: SignalingHub, moderated: bool = True) -> tuple[str, str, str, dict[str, str]]:
    """Two users paired on a relayed route, both legs answered; returns their leg ids."""
    worker_joins(hub, "w1")
    a = hub.connect("default", 0, 0, address="10.0.0.1", device="dev-a")
    b = hub.connect("default", 0, 0, address="10.0.0.2", device="dev-b")
    hub.receive(a, p.Join(), 0, 0)
    hub.receive(b, p.Join(), 0, 0)
    outbox = hub.drain_outbox()
    (pair,) = {m.pair for _, m in outbox if isinstance(m, p.Paired)}
    assert {to for to, m in outbox if isinstance(m, p.Paired) and m.role == "offerer"} == {a, b}
    legs = {}
    for user in (a, b):
        hub.receive(user, p.Offer(pair=pair, sdp=f"offer-{user}"), 0, 0)
        ((worker, open_leg),) = hub.drain_worker_outbox()
        assert worker == "w1" and isinstance(open_leg, rc.OpenLeg)
        assert open_leg.offer == f"offer-{user}" and open_leg.moderated == moderated
        legs[user] = open_leg.leg
    for user in (a, b):
        hub.worker_message("w1", rc.Answer(leg=legs[user], sdp=f"answer-{user}"), 0, 0)
        hub.worker_message("w1", rc.LegState(leg=legs[user], state="connected"), 0, 0)
    answers = hub.drain_outbox()
    assert {(to, m.sdp) for to, m in answers if isinstance(m, p.RelayedAnswer)} == {
        (a, f"answer-{a}"),
        (b, f"answer-{b}"),
    }
    ((worker, link),) = hub.drain_worker_outbox()
    assert worker == "w1" and isinstance(link, rc.Link)
    assert {link.first, link.second} == {legs[a], legs[b]}
    return a, b, pair, legs


def test_relayed_call_opens_legs_answers_and_links() -> None:
    hub = make_hub()
    relayed_call(hub)
    assert hub.relays.snapshot()[0]["legs"] == 2


def test_next_parks_both_legs_and_leave_closes_them() -> None:
    hub = make_hub()
    a, b, _, legs = relayed_call(hub)
    hub.receive(a, p.Next(), 1, 1)
    sent = hub.drain_worker_outbox()
    assert ("w1", rc.Unlink(leg=legs[a])) in sent and ("w1", rc.Unlink(leg=legs[b])) in sent
    assert hub.snapshot()["relay_legs_parked"] == 2
    hub.receive(a, p.Leave(), 2, 2)
    assert ("w1", rc.CloseLeg(leg=legs[a])) in hub.drain_worker_outbox()
    assert hub.snapshot()["relay_legs_parked"] == 1
    hub.disconnect(b, 3)
    assert ("w1", rc.CloseLeg(leg=legs[b])) in hub.drain_worker_outbox()
    assert hub.relays.snapshot()[0]["legs"] == 0


def test_blocked_video_tells_both_and_repeat_offender_is_banned() -> None:
    hub = make_hub(strikes_to_ban=2, strike_window_s=60, ban_s=100)
    a, b, pair, legs = relayed_call(hub)
    blocked = rc.Moderation(leg=legs[a], state="blocked", label="FACE_FEMALE", score=0.8)
    hub.worker_message("w1", blocked, 10, 1000)
    outbox = hub.drain_outbox()
    assert (a, p.ModerationNotice(pair=pair, state="blocked", who="you", label="FACE_FEMALE",
                                  strikes=1)) in outbox  # fmt: skip
    assert (b, p.ModerationNotice(pair=pair, state="blocked", who="partner",
                                  label="FACE_FEMALE", strikes=0)) in outbox  # fmt: skip
    resumed = rc.Moderation(leg=legs[a], state="resumed")
    hub.worker_message("w1", resumed, 11, 1001)
    assert {m.state for _, m in hub.drain_outbox() if isinstance(m, p.ModerationNotice)} == {
        "resumed"
    }
    assert hub.drain_closes() == []
    hub.worker_message("w1", blocked, 12, 1002)
    outbox = hub.drain_outbox()
    (banned,) = [m for to, m in outbox if to == a and isinstance(m, p.Banned)]
    assert banned.until_unix == 1002 + 100
    assert hub.drain_closes() == [(a, p.CLOSE_BANNED)]
    # the device is refused from any address until the ban runs out; its address is not
    assert hub.banned_until("10.0.0.9", "dev-a", 50) == 112
    assert hub.banned_until("10.0.0.1", "dev-innocent", 50) is None
    assert hub.banned_until("10.0.0.1", "dev-a", 113) is None


def test_strikes_expire_after_the_window() -> None:
    book = StrikeBook(strikes_to_ban=2, window_s=10, ban_s=5, devices_to_ban_network=3)
    x = Person.of("10.0.0.1", "x")
    assert book.strike(x, 0).strikes == 1
    assert book.strike(x, 11).strikes == 1  # the first one aged out
    result = book.strike(x, 12)
    assert result.strikes == 2 and result.banned_until == 17


def test_an_address_is_banned_only_with_several_banned_devices_behind_it() -> None:
    book = StrikeBook(strikes_to_ban=1, window_s=10, ban_s=100, devices_to_ban_network=3)
    for n, device in enumerate(["a", "b"]):
        book.strike(Person.of("198.51.100.7", device), n)
    innocent = Person.of("198.51.100.7", "innocent")
    assert book.banned_until(innocent, 5) is None  # two banned devices: the address stands
    book.strike(Person.of("198.51.100.7", "c"), 10)
    # the third: the address is refused until the third-latest of its devices' bans ends
    assert book.banned_until(innocent, 11) == 100
    assert book.banned_until(Person.of("198.51.100.8", "innocent"), 11) is None
    assert book.banned_until(innocent, 100.5) is None


def test_ipv6_addresses_count_by_their_64_and_networks_can_be_left_alone() -> None:
    assert network_of("2001:db8:1:2:aaaa::1") == network_of("2001:db8:1:2:bbbb::9")
    assert network_of("2001:db8:1:2::1") != network_of("2001:db8:1:3::1")
    assert network_of("::ffff:198.51.100.7") == "198.51.100.7"
    book = StrikeBook(strikes_to_ban=1, window_s=10, ban_s=100, devices_to_ban_network=2)
    book.strike(Person.of("2001:db8:1:2::1", "a"), 0)
    book.strike(Person.of("2001:db8:1:2::2", "b"), 0)
    assert book.banned_until(Person.of("2001:db8:1:2::3", "c"), 1) == 100
    never = StrikeBook(strikes_to_ban=1, window_s=10, ban_s=100, devices_to_ban_network=0)
    for device in "abcd":
        never.strike(Person.of("198.51.100.7", device), 0)
    assert never.banned_until(Person.of("198.51.100.7", "e"), 1) is None


def test_a_client_without_a_device_id_is_known_by_its_address() -> None:
    book = StrikeBook(strikes_to_ban=1, window_s=10, ban_s=100, devices_to_ban_network=3)
    book.strike(Person.of("198.51.100.7", ""), 0)
    assert book.banned_until(Person.of("198.51.100.7", ""), 1) == 100
    assert book.banned_until(Person.of("198.51.100.7", "tab-1"), 1) is None


def test_failed_direct_call_falls_back_to_a_relay() -> None:
    hub = make_hub(Route.DIRECT)
    worker_joins(hub, "w1")
    a = hub.connect("default", 0, 0)
    b = hub.connect("default", 0, 0)
    hub.receive(a, p.Join(), 0, 0)
    hub.receive(b, p.Join(), 0, 0)
    (pair,) = {m.pair for _, m in hub.drain_outbox() if isinstance(m, p.Paired)}
    hub.receive(a, p.CallState(pair=pair, state="failed", route="direct"), 5, 5)
    reroutes = [(to, m) for to, m in hub.drain_outbox() if isinstance(m, p.Reroute)]
    assert {to for to, _ in reroutes} == {a, b}
    assert all(m.route == "relay" for _, m in reroutes)
    # b's own late report about the direct attempt changes nothing
    hub.receive(b, p.CallState(pair=pair, state="failed", route="direct"), 5.1, 5.1)
    assert hub.drain_outbox() == []
    hub.receive(a, p.Offer(pair=pair, sdp="v=0"), 6, 6)
    ((_, open_leg),) = hub.drain_worker_outbox()
    assert isinstance(open_leg, rc.OpenLeg) and not open_leg.moderated


def test_worker_loss_reroutes_its_calls_to_a_live_worker() -> None:
    hub = make_hub(Route.RELAY)
    a, b, pair, _ = relayed_call(hub, moderated=False)
    hub.worker_joined(rc.Hello(worker_id="w2", token="t", pid=2, max_sessions=10))
    hub.worker_lost("w1")
    reroutes = [(to, m) for to, m in hub.drain_outbox() if isinstance(m, p.Reroute)]
    assert {to for to, _ in reroutes} == {a, b} and reroutes[0][1].pair == pair
    hub.receive(a, p.Offer(pair=pair, sdp="again"), 1, 1)
    ((worker, _),) = hub.drain_worker_outbox()
    assert worker == "w2"


def test_workers_are_configured_from_signaling_config() -> None:
    config = config_from_mapping(
        {
            "relay": {"stun_url": "stun:stun.example.org:3478"},
            "moderation": {"block": {"FACE_FEMALE": 0.6}, "mute_audio_while_blocked": True},
        }
    )
    hub = SignalingHub(
        config,
        RoutePolicy(config.regions),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
    )
    configure = hub.worker_configuration()
    assert configure.stun_url == "stun:stun.example.org:3478"
    assert configure.block == {"FACE_FEMALE": 0.6} and configure.mute_audio_while_blocked
    assert rc.decode_signaling_message(rc.encode(configure)) == configure
    assert not configure.strict  # no strict route in force: workers need not load the model
    assert make_hub(Route.STRICT).worker_configuration().strict


def test_a_worker_that_cannot_moderate_gets_no_strict_calls() -> None:
    hub = make_hub(Route.STRICT)
    worker_joins(hub, "w1", moderation_ready=False)
    a = hub.connect("default", 0, 0)
    b = hub.connect("default", 0, 0)
    hub.receive(a, p.Join(), 0, 0)
    hub.receive(b, p.Join(), 0, 0)
    ended = [m for _, m in hub.drain_outbox() if isinstance(m, p.CallEnded)]
    assert [m.reason for m in ended] == ["no relay is available"] * 2
    assert hub.drain_worker_outbox() == []
    worker_joins(hub, "w2")  # able to moderate
    hub.receive(a, p.Next(), 1, 1)
    c = hub.connect("default", 1, 1)
    hub.receive(c, p.Join(), 1, 1)
    (paired,) = [m for to, m in hub.drain_outbox() if to == c and isinstance(m, p.Paired)]
    hub.receive(c, p.Offer(pair=paired.pair, sdp="v=0"), 1, 1)
    ((worker, open_leg),) = hub.drain_worker_outbox()
    assert worker == "w2" and isinstance(open_leg, rc.OpenLeg) and open_leg.moderated


def test_a_second_answer_for_a_leg_is_ignored() -> None:
    hub = make_hub()
    a, _b, _pair, legs = relayed_call(hub)
    hub.worker_message("w1", rc.Answer(leg=legs[a], sdp="again"), 1, 1)
    assert hub.drain_outbox() == [] and hub.drain_worker_outbox() == []


def test_a_strict_call_never_adopts_an_unmoderated_parked_leg() -> None:
    """The worker decides at open_leg whether a leg is moderated, so reusing a relay-route leg
    for a strict call would carry unmoderated video."""
    config = config_from_mapping(
        {"regions": {"default_route": "relay", "routes": {"DE": "strict"}}}
    )
    counter = itertools.count()
    hub = SignalingHub(
        config,
        RoutePolicy(config.regions),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
        new_id=lambda: f"id{next(counter)}",
    )
    a, _b, _pair, legs = relayed_call(hub, moderated=False)
    hub.receive(a, p.Next(), 1, 1)
    assert hub.snapshot()["relay_legs_parked"] == 2
    hub.drain_outbox()
    hub.drain_worker_outbox()
    c = hub.connect("DE", 2, 2)
    hub.receive(c, p.Join(), 2, 2)
    paired = {to: m for to, m in hub.drain_outbox() if isinstance(m, p.Paired)}
    (partner,) = set(paired) - {c}
    assert paired[partner].route == "strict" and not paired[partner].reuse
    assert ("w1", rc.CloseLeg(leg=legs[partner])) in hub.drain_worker_outbox()
    assert hub.snapshot()["relay_legs_parked"] == 1


def test_one_info_line_per_call_event_with_metadata_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatguard.signaling")
    hub = make_hub(Route.DIRECT)
    worker_joins(hub, "w1")
    a = hub.connect("default", 0, 0, address="10.0.0.1", device="dev-a")
    b = hub.connect("default", 0, 0, address="10.0.0.2", device="dev-b")
    hub.receive(a, p.Join(), 0, 0)
    hub.receive(b, p.Join(), 1, 1)
    (pair,) = {m.pair for _, m in hub.drain_outbox() if isinstance(m, p.Paired)}
    hub.receive(b, p.Offer(pair=pair, sdp="v=0 secret-sdp"), 2, 2)
    hub.receive(a, p.CallState(pair=pair, state="failed", route="direct"), 6, 6)
    hub.receive(a, p.CallState(pair=pair, state="connected", route="relay"), 8, 8)
    hub.receive(b, p.CallState(pair=pair, state="connected", route="relay"), 8.5, 8.5)
    hub.receive(a, p.Next(), 21, 21)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("call ")]
    assert lines == [
        f"call {pair}: paired {b} with {a}, route direct",
        f"call {pair}: direct connection failed 5.0 s after pairing; moving to the relay",
        f"call {pair}: connected, route relay, 7.0 s after pairing",
        f"call {pair}: ended (next) 20.0 s after pairing, route relay, connected 13.0 s",
    ]
    hub.receive(b, p.Join(), 22, 22)  # alone: no call, no line
    everything = caplog.text
    assert "10.0.0." not in everything and "secret-sdp" not in everything


def test_a_failed_call_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chatguard.signaling")
    hub = make_hub(Route.RELAY)
    a = hub.connect("default", 0, 0)
    b = hub.connect("default", 0, 0)
    hub.receive(a, p.Join(), 0, 0)
    hub.receive(b, p.Join(), 0, 0)
    (pair,) = {m.pair for _, m in hub.drain_outbox() if isinstance(m, p.Paired)}
    assert f"call {pair}: failed, route relay: no relay is available" in caplog.text


def test_a_second_offer_replaces_the_members_leg() -> None:
    """As docs/protocol.md says: the old leg is closed, the new one answered and linked."""
    hub = make_hub()
    a, b, pair, legs = relayed_call(hub)
    hub.receive(a, p.Offer(pair=pair, sdp="v=0 again"), 1, 1)
    close, (_, open_leg) = hub.drain_worker_outbox()
    assert close == ("w1", rc.CloseLeg(leg=legs[a])) and isinstance(open_leg, rc.OpenLeg)
    hub.worker_message("w1", rc.Answer(leg=open_leg.leg, sdp="answer again"), 1, 1)
    assert (a, p.RelayedAnswer(pair=pair, sdp="answer again")) in hub.drain_outbox()
    ((worker, link),) = hub.drain_worker_outbox()
    assert worker == "w1" and isinstance(link, rc.Link)
    assert {link.first, link.second} == {open_leg.leg, legs[b]}


@pytest.mark.parametrize("include", [False, True])
def test_events_carry_the_subjects_address_only_when_the_operator_opts_in(include: bool) -> None:
    hub = make_hub(events={"include_addresses": include}, strikes_to_ban=2)
    a, b, _, legs = relayed_call(hub)  # a from 10.0.0.1
    blocked = rc.Moderation(
        leg=legs[a], state="blocked", label="FACE_FEMALE", score=0.8, threshold=0.5
    )
    hub.worker_message("w1", blocked, 10, 1000)
    hub.receive(b, p.Report(reason="rude"), 11, 1001)
    hub.refuse_banned(100, 50, 1040, address="10.0.0.9")
    got = hub.drain_events()
    assert [e.decision for e in got] == ["blocked", "strike", "report", "ban_refused"]
    if include:
        assert [e.address for e in got] == ["10.0.0.1"] * 3 + ["10.0.0.9"]
    else:  # not even in the encoded event's keys
        assert all(b"address" not in events.encode(e) and "10.0.0" not in str(e) for e in got)


def test_moderation_decisions_become_operator_events_with_their_grounds() -> None:
    hub = make_hub(strikes_to_ban=2, strike_window_s=60, ban_s=100)
    a, _, pair, legs = relayed_call(hub)
    blocked = rc.Moderation(
        leg=legs[a], state="blocked", label="FACE_FEMALE", score=0.8, threshold=0.5
    )
    hub.worker_message("w1", blocked, 10, 1000.25)
    hub.worker_message("w1", rc.Moderation(leg=legs[a], state="resumed"), 11, 1001)
    hub.worker_message("w1", blocked, 12, 1002)
    hub.refuse_banned(hub.banned_until("", "dev-a", 50) or 0, 50, 1040)
    got = hub.drain_events()
    assert [(e.decision, e.subject, e.call) for e in got] == [
        ("blocked", a, pair), ("strike", a, pair), ("resumed", a, pair),
        ("blocked", a, pair), ("strike", a, pair), ("ban", a, pair), ("ban_refused", "", ""),
    ]  # fmt: skip
    assert len({e.id for e in got}) == len(got) and all(e.automated for e in got)
    first = got[0]
    assert first.time == "1970-01-01T00:16:40.250Z"
    assert (first.ground.label, first.ground.score, first.ground.threshold) == (
        "FACE_FEMALE", 0.8, 0.5,
    )  # fmt: skip
    assert got[4].ground.strikes == 2 and got[5].ban_s == 100 and got[6].ban_s == 62
    assert hub.drain_events() == []
    assert hub.stats.refused_banned == 1 and hub.stats.bans["moderation"] == 1
