"""Abuse budgets per connection and per address, against a fake clock: no sockets."""

from __future__ import annotations

import typing

import pytest

from signaling import protocol as p
from signaling.budgets import INVALID, KIND_OF_TYPE, KINDS, SWEEP_EVERY_S, Budgets, kind_of
from signaling.config import Budget, LimitsConfig, config_from_mapping

SMALL = Budget(per_s=1.0, burst=2, address_per_s=1.0, address_burst=3)


def limits(**values: object) -> LimitsConfig:
    return config_from_mapping({"limits": values}).limits


def test_every_client_message_type_draws_on_a_budget() -> None:
    tags = {m.__struct_config__.tag for m in typing.get_args(p.ClientMessage)}
    assert set(KIND_OF_TYPE) == tags
    assert set(KINDS) == set(LimitsConfig().budgets()) and INVALID in KINDS


def test_a_message_that_could_not_be_read_draws_on_the_invalid_budget() -> None:
    assert kind_of(p.ProtocolError("malformed", "not valid JSON")) == INVALID
    assert kind_of(p.Next()) == "join"
    assert kind_of(p.Answer(pair="x", sdp="v=0")) == "sdp"


def test_a_connection_gets_its_burst_then_a_refusal_naming_kind_and_wait() -> None:
    budget = Budgets(limits(per_address=False, sdp=as_table(SMALL))).connection("a", 0.0)
    assert budget.take("sdp", 0.0) is None
    assert budget.take("sdp", 0.0) is None
    refused = budget.take("sdp", 0.0)
    assert refused is not None
    assert (refused.kind, refused.scope, refused.retry_after_s) == ("sdp", "connection", 1.0)
    assert not refused.disconnect
    assert "sdp" in refused.message and "1.0 s" in refused.message
    assert budget.take("candidate", 0.0) is None  # kinds do not share
    assert budget.take("sdp", 1.0) is None  # refilled


def test_connections_of_one_address_share_its_budget_and_others_do_not() -> None:
    budgets = Budgets(limits(sdp=as_table(SMALL)))
    budgets.admit("10.0.0.1", 0.0)
    budgets.admit("10.0.0.1", 0.0)
    budgets.admit("10.0.0.2", 0.0)
    first, second = (budgets.connection("10.0.0.1", 0.0) for _ in range(2))
    assert [first.take("sdp", 0.0), first.take("sdp", 0.0)] == [None, None]
    assert second.take("sdp", 0.0) is None  # the address's third token
    refused = second.take("sdp", 0.0)
    assert refused is not None and refused.scope == "address"
    assert budgets.connection("10.0.0.2", 0.0).take("sdp", 0.0) is None


def test_a_refused_message_takes_no_token_from_the_address() -> None:
    """A flooder over its own budget does not eat its neighbours' share of the address."""
    budgets = Budgets(limits(sdp=as_table(Budget(1.0, 1, 1.0, 2))))
    flooder, neighbour = (budgets.connection("10.0.0.1", 0.0) for _ in range(2))
    assert flooder.take("sdp", 0.0) is None
    for _ in range(10):
        assert flooder.take("sdp", 0.0) is not None
    assert neighbour.take("sdp", 0.0) is None


def test_refusals_past_their_budget_disconnect_and_are_counted() -> None:
    budgets = Budgets(limits(per_address=False, refused_to_disconnect=3, sdp=as_table(SMALL)))
    budget = budgets.connection("a", 0.0)
    verdicts = [budget.take("sdp", 0.0) for _ in range(6)]
    assert verdicts[:2] == [None, None]
    assert [v is not None and v.disconnect for v in verdicts[2:]] == [False, False, False, True]
    assert budgets.messages_refused == {"sdp": 4}
    assert budgets.disconnected == {"sdp": 1}


def test_an_occasional_refusal_is_forgiven() -> None:
    one = as_table(Budget(1.0, 1, 1.0, 1))
    budgets = Budgets(limits(per_address=False, refused_to_disconnect=1, sdp=one))
    budget = budgets.connection("a", 0.0)
    for second in range(100):  # two a second against a budget of one: a refusal a second
        assert budget.take("sdp", second) is None
        refused = budget.take("sdp", second + 0.5)
        assert refused is not None and not refused.disconnect
    assert budgets.messages_refused == {"sdp": 100} and budgets.disconnected == {}


def test_the_connection_cap_holds_per_address_and_frees_on_release() -> None:
    budgets = Budgets(limits(connections_per_address=2))
    assert [budgets.admit("10.0.0.1", 0.0) for _ in range(3)] == [None, None, "too_many_open"]
    assert budgets.admit("10.0.0.2", 0.0) is None
    budgets.release("10.0.0.1")
    assert budgets.admit("10.0.0.1", 0.0) is None
    assert budgets.connections_refused == {"too_many_open": 1}


def test_an_ipv6_address_counts_by_its_64() -> None:
    """One subscriber holds a whole /64 and can pick any address in it."""
    budgets = Budgets(limits(connections_per_address=2))
    assert budgets.admit("2001:db8:1:2::1", 0.0) is None
    assert budgets.admit("2001:db8:1:2:ffff::7", 0.0) is None
    assert budgets.admit("2001:db8:1:2::3", 0.0) == "too_many_open"
    assert budgets.admit("2001:db8:1:3::1", 0.0) is None  # another /64
    budgets.release("2001:db8:1:2::1")  # any address of the /64 frees its place
    assert budgets.admit("2001:db8:1:2::3", 0.0) is None


def test_connecting_too_fast_is_refused_until_the_bucket_refills() -> None:
    budgets = Budgets(limits(connect_burst=2, connects_per_s=1.0))
    for _ in range(2):
        assert budgets.admit("10.0.0.1", 0.0) is None
        budgets.release("10.0.0.1")
    assert budgets.admit("10.0.0.1", 0.5) == "too_fast"
    assert budgets.admit("10.0.0.1", 1.0) is None
    assert budgets.connections_refused == {"too_fast": 1}


def test_without_per_address_budgets_nothing_is_capped() -> None:
    budgets = Budgets(limits(per_address=False, connections_per_address=1))
    assert all(budgets.admit("10.0.0.1", 0.0) is None for _ in range(100))
    assert budgets.address_count() == 0


def test_idle_addresses_are_forgotten_but_not_before_their_buckets_refill() -> None:
    budgets = Budgets(limits(connect_burst=1, connects_per_s=0.01))
    budgets.admit("10.0.0.1", 0.0)
    budgets.release("10.0.0.1")
    budgets.admit("10.0.0.2", SWEEP_EVERY_S)  # a sweep: 10.0.0.1's connect bucket is not full
    assert budgets.address_count() == 2
    assert budgets.admit("10.0.0.1", SWEEP_EVERY_S) == "too_fast"  # no fresh start
    budgets.release("10.0.0.2")
    budgets.admit("10.0.0.3", 1000.0)
    assert budgets.address_count() == 1  # both refilled and closed: forgotten


def as_table(budget: Budget) -> dict[str, object]:
    """A budget as the TOML table an operator writes."""
    return {f: getattr(budget, f) for f in budget.__struct_fields__}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"connections_per_address": 0}, "limits.connections_per_address"),
        ({"header_timeout_s": 0}, "header_timeout_s must be positive"),
        ({"refused_to_disconnect": 0}, "limits.refused_to_disconnect"),
        ({"ping": {"per_s": 0, "burst": 1, "address_per_s": 1, "address_burst": 1}}, "limits.ping"),
        ({"chat": {"per_s": 1, "burst": 0, "address_per_s": 1, "address_burst": 1}}, "limits.chat"),
        ({"join": {"per_s": 1}}, "limits.join: Object missing required field `burst`"),
    ],
)
def test_bad_limits_are_named(values: dict[str, object], expected: str) -> None:
    with pytest.raises(Exception, match=expected.replace("`", ".")) as info:
        limits(**values)
    assert type(info.value).__name__ == "ConfigError"
