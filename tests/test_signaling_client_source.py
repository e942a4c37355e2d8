"""Where a client is from: believed from headers only when a trusted proxy delivered them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
import websockets
from starlette.datastructures import Headers

from signaling.app import create_app
from signaling.client_source import ClientLocator, TrustedProxies, parse_ip
from signaling.config import config_from_mapping
from signaling.route_policy import RoutePolicy
from signaling.strikes import Person
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import Client

REGIONS = {"trusted_header": "x-country", "routes": {"DE": "strict"}}


def test_addresses_are_read_as_proxies_write_them() -> None:
    assert parse_ip("192.0.2.1") == "192.0.2.1"
    assert parse_ip(" 192.0.2.1:4711 ") == "192.0.2.1"
    assert parse_ip('"[2001:db8::1]:80"') == "2001:db8::1"
    assert parse_ip("2001:DB8::1") == "2001:db8::1"
    assert parse_ip("::ffff:192.0.2.9") == "192.0.2.9"
    for junk in ("unknown", "_hidden", "", "[2001:db8::1", "1.2.3.4.5", "evil.example"):
        assert parse_ip(junk) is None, junk


def test_the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() -> None:
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    # the client forged a hop on the left; our two proxies appended on the right
    chain = ["6.6.6.6, 198.51.100.7, 10.1.2.3"]
    assert proxies.client_address("127.0.0.1", chain) == "198.51.100.7"
    # several header lines are one list
    assert proxies.client_address("127.0.0.1", ["6.6.6.6", "198.51.100.7"]) == "198.51.100.7"
    # everyone in the chain is ours: the leftmost is as far as anyone knows
    assert proxies.client_address("127.0.0.1", ["10.0.0.5, 10.0.0.6"]) == "10.0.0.5"
    # no header: the proxy's own address
    assert proxies.client_address("10.9.9.9", []) == "10.9.9.9"
    # a hop that is not an address stops the walk at the proxy that wrote it
    assert proxies.client_address("127.0.0.1", ["198.51.100.7, unknown"]) == "127.0.0.1"


def test_a_peer_that_is_not_a_trusted_proxy_is_the_client_whatever_it_writes() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_address("203.0.113.4", ["10.0.0.1, 198.51.100.7"]) == "203.0.113.4"
    assert not TrustedProxies([]).trusts("127.0.0.1")
    assert not proxies.trusts("not an address")


def test_forwarded_rfc7239_is_read_when_named() -> None:
    proxies = TrustedProxies(["127.0.0.1"], "forwarded")
    header = ['for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=127.0.0.1']
    assert proxies.client_address("127.0.0.1", header) == "2001:db8:cafe::17"
    assert proxies.client_address("127.0.0.1", ["For=192.0.2.60;proto=http"]) == "192.0.2.60"


def test_the_header_the_proxies_do_not_write_is_ignored() -> None:
    """A proxy appending to X-Forwarded-For passes a client's own Forwarded on untouched."""
    config = make_config(server={"trusted_proxies": ["127.0.0.1"]}, regions=REGIONS)
    locator = ClientLocator.from_config(config, RoutePolicy(config.regions))
    headers = Headers({"forwarded": "for=6.6.6.6", "x-forwarded-for": "198.51.100.7"})
    assert locator.locate("127.0.0.1", headers).address == "198.51.100.7"
    assert locator.locate("127.0.0.1", Headers({"forwarded": "for=6.6.6.6"})).address == (
        "127.0.0.1"
    )


def test_the_region_header_counts_only_from_a_trusted_proxy() -> None:
    config = make_config(server={"trusted_proxies": ["10.0.0.0/8"]}, regions=REGIONS)
    locator = ClientLocator.from_config(config, RoutePolicy(config.regions))
    headers = Headers({"x-country": "de"})
    assert locator.locate("10.0.0.1", headers).region == "DE"
    assert locator.locate("203.0.113.4", headers).region == "default"


@pytest.fixture
def untrusting() -> Iterator[RunningServer]:
    """The default: no trusted proxies, a region header named and a strict region."""
    yield from run_server(make_config(regions=REGIONS))


@pytest.fixture
def behind_proxy() -> Iterator[RunningServer]:
    """127.0.0.1 (the test) is the operator's proxy."""
    yield from run_server(make_config(server={"trusted_proxies": ["127.0.0.1"]}, regions=REGIONS))


async def test_a_direct_client_cannot_pick_its_region(untrusting: RunningServer) -> None:
    forged = {"X-Country": "DE", "X-Forwarded-For": "198.51.100.7"}
    client = await Client.connect(untrusting.ws_url, headers=forged)
    assert client.welcome["region"] == "default"
    await client.close()


async def test_a_trusted_proxy_sets_the_region_and_the_address(
    behind_proxy: RunningServer,
) -> None:
    service = behind_proxy.app_state.service  # type: ignore[attr-defined]
    headers = {"X-Country": "DE", "X-Forwarded-For": "6.6.6.6, 198.51.100.7"}
    client = await Client.connect(behind_proxy.ws_url, headers=headers)
    assert client.welcome["region"] == "DE"
    await client.close()
    # bans key on the forwarded address: a ban on it refuses that client, not the proxy
    service.hub.strikes.ban(Person.of("198.51.100.7", ""), time.monotonic() + 60, "test")
    forwarded = {"X-Forwarded-For": "198.51.100.7"}
    async with websockets.connect(behind_proxy.ws_url, additional_headers=forwarded) as ws:
        assert json.loads(await ws.recv())["type"] == "banned"
    other = await Client.connect(behind_proxy.ws_url, headers={"X-Forwarded-For": "198.51.100.8"})
    assert other.welcome["type"] == "welcome"
    await other.close()


def test_a_region_header_without_trusted_proxies_is_warned_about_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "chatguard.signaling"):
        create_app(config_from_mapping({"regions": REGIONS, "relay": {"workers": 0}}))
    assert "trusted_header = 'x-country' is ignored" in caplog.text
    assert "trusted_proxies is empty" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "chatguard.signaling"):
        trusted = {"trusted_proxies": ["127.0.0.1"]}
        create_app(config_from_mapping({"regions": REGIONS, "server": trusted}))
    assert "trusted_header" not in caplog.text
