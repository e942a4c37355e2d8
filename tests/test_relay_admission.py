"""relay/admission.py: the offers and candidates a worker hands to aiortc, and why not others.

Offers here are real: aiortc's own (made by a client ``RTCPeerConnection``) and a Chromium
offer saved as a fixture; each rule is shown on a copy with one thing changed."""

from __future__ import annotations

import pytest

from relay import admission
from relay.admission import LegRefused, candidate_problem, check_answer, check_offer
from tests.support.relay_offers import (
    CHROMIUM_OFFER,
    aiortc_offer,
    bundled_offer,
    many_media_offer,
)

HOST = "candidate:1 1 udp 2122260223 {} 54321 typ host generation 0"


async def test_real_offers_pass_unchanged() -> None:
    offer = await aiortc_offer()
    checked = check_offer(offer)
    assert checked.sdp == offer and checked.ignored == ()
    assert check_offer(CHROMIUM_OFFER).sdp == CHROMIUM_OFFER


def refusal(sdp: str) -> str:
    with pytest.raises(LegRefused) as caught:
        check_offer(sdp)
    return caught.value.code


def test_an_offer_with_a_mid_removed_is_refused() -> None:
    lines = CHROMIUM_OFFER.split("\r\n")
    (first_mid,) = [i for i, line in enumerate(lines) if line == "a=mid:0"]
    assert refusal("\r\n".join(lines[:first_mid] + lines[first_mid + 1 :])) == "offer_mid"


def test_a_duplicate_or_odd_mid_is_refused() -> None:
    assert refusal(CHROMIUM_OFFER.replace("a=mid:1", "a=mid:0")) == "offer_mid"
    assert refusal(CHROMIUM_OFFER.replace("a=mid:1", 'a=mid:"1"')) == "offer_mid"


def test_an_offer_without_bundle_is_refused() -> None:
    no_bundle = "\r\n".join(
        line for line in CHROMIUM_OFFER.split("\r\n") if not line.startswith("a=group:BUNDLE")
    )
    assert refusal(no_bundle) == "offer_no_bundle"
    assert refusal(CHROMIUM_OFFER.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0")) == (
        "offer_no_bundle"
    )


def test_the_130_m_line_offer_is_refused_and_16_pass() -> None:
    big = many_media_offer(130)
    assert len(big) < 60_000  # inside signaling's limit: only the relay can say no
    assert refusal(big) == "offer_too_many_media"
    check_offer(many_media_offer(admission.MAX_MEDIA_SECTIONS))
    assert refusal("v=0\r\n") == "offer_no_media"


def test_an_answer_over_the_control_limit_is_refused() -> None:
    check_answer("x" * admission.MAX_ANSWER_CHARS)
    with pytest.raises(LegRefused):
        check_answer("x" * (admission.MAX_ANSWER_CHARS + 1))


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("a1b2c3d4-0000-4000-8000-000000000000.local", "candidate_mdns"),
        ("relay.example.com", "candidate_not_an_address"),
        ("127.0.0.1", "candidate_loopback"),
        ("::1", "candidate_loopback"),
        ("::ffff:127.0.0.1", "candidate_loopback"),
        ("169.254.1.1", "candidate_link_local"),
        ("fe80::1", "candidate_link_local"),
        ("0.0.0.0", "candidate_unspecified"),
        ("224.0.0.251", "candidate_multicast"),
        ("255.255.255.255", "candidate_reserved"),
        ("203.0.113.7", None),
        ("192.168.1.20", None),
        ("2001:db8::7", None),
    ],
)
def test_candidates_the_relay_must_not_send_to(host: str, why: str | None) -> None:
    assert candidate_problem(HOST.format(host), 0) == why


@pytest.mark.parametrize(
    "line",
    [
        "candidate:1 1 udp 2122260223 203.0.113.7 54321",  # no type
        "candidate:1 x udp 2122260223 203.0.113.7 54321 typ host",
        "candidate:1 1 udp 2122260223 203.0.113.7 0 typ host",
        "candidate:1 1 udp 2122260223 203.0.113.7 99999 typ host",
        "candidate:",
    ],
)
def test_unreadable_candidates_are_ignored(line: str) -> None:
    assert candidate_problem(line, 0) in ("candidate_malformed", "candidate_bad_port")


def test_candidates_past_the_cap_are_ignored() -> None:
    line = HOST.format("203.0.113.7")
    assert candidate_problem(line, admission.MAX_CANDIDATES_PER_LEG - 1) is None
    assert candidate_problem(line, admission.MAX_CANDIDATES_PER_LEG) == "candidate_over_cap"


def test_bad_candidates_in_an_offer_are_taken_out_and_counted() -> None:
    offer = bundled_offer(
        candidates=[HOST.format("203.0.113.7"), HOST.format("x.local"), HOST.format("::1")]
    )
    checked = check_offer(offer)
    assert checked.candidates == 1
    assert checked.ignored == ("candidate_mdns", "candidate_loopback")
    assert "x.local" not in checked.sdp and "::1 " not in checked.sdp
    assert "203.0.113.7" in checked.sdp


def test_a_candidate_needs_a_mid_or_an_index() -> None:
    admission.check_candidate_target("0", None)
    admission.check_candidate_target(None, 0)
    with pytest.raises(LegRefused):
        admission.check_candidate_target(None, None)
