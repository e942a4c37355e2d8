from signaling.config import RegionsConfig
from signaling.route_policy import Route, RoutePolicy

CONFIG = RegionsConfig(
    trusted_header="CF-IPCountry",
    default_region="ZZ",
    routes={"de": Route.STRICT, "FR": Route.RELAY},
)


def test_region_comes_only_from_the_trusted_header() -> None:
    policy = RoutePolicy(CONFIG)
    assert policy.region_from_headers({"cf-ipcountry": "de"}) == "DE"
    assert policy.region_from_headers({"x-country": "DE"}) == "ZZ"
    assert policy.region_from_headers({"cf-ipcountry": "<script>"}) == "ZZ"
    assert RoutePolicy(RegionsConfig()).region_from_headers({"cf-ipcountry": "DE"}) == "default"


def test_pair_gets_the_stricter_route() -> None:
    policy = RoutePolicy(CONFIG)
    assert policy.route_for_pair("US", "US") is Route.DIRECT
    assert policy.route_for_pair("US", "FR") is Route.RELAY
    assert policy.route_for_pair("FR", "DE") is Route.STRICT
    assert policy.route_for_pair("DE", "US") is Route.STRICT


def test_override_sets_every_region() -> None:
    policy = RoutePolicy(CONFIG, override=Route.RELAY)
    assert policy.route_for_pair("DE", "US") is Route.RELAY
