"""What a relay worker checks before aiortc sees a client's offer or ICE candidate.

Why: the offer and the candidates come from any client, through signaling, unchanged; aiortc
trusts them. One offer or candidate aiortc cannot handle must cost only its own leg, and
none may make the relay spend without bound: an answer too large for the control link, mDNS
look-ups that block the worker, STUN sent to addresses on the relay's own machine or network.
Pure functions on text (no I/O, nothing imported from aiortc), so each rule is tested alone.

Two outcomes: a :class:`LegRefused` (the offer or candidate breaks the protocol; the worker
closes the leg and answers ``Refused``), or a candidate *ignored* (a kind honest browsers send
too, such as an mDNS name: the leg goes on without it, connecting through its other
candidates or the peer-reflexive address its checks arrive from).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

MAX_MEDIA_SECTIONS: Final = 16
"""m-lines per offer (a browser offers 2 or 3: audio, video, maybe data)."""
MAX_ANSWER_CHARS: Final = 60_000
"""The largest answer the worker sends: the control protocol's SDP limit."""
MAX_CANDIDATES_PER_LEG: Final = 32
"""Remote candidates used per leg, in the offer and trickled together; later ones are ignored."""
MAX_MID_CHARS: Final = 32

_MID: Final = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
"""RFC 8843's ``identification-tag`` is an RFC 4566 token."""


class LegRefused(Exception):
    """The client's offer or candidate breaks the rules; ``code`` names the rule (a counter
    key), the message says what was wrong (for the ``Refused`` reason)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True, slots=True)
class CheckedOffer:
    sdp: str
    """The offer with its ignored candidate lines taken out."""
    candidates: int
    """Candidate lines kept (they count towards the leg's cap)."""
    ignored: tuple[str, ...]
    """Why each removed candidate line was ignored (counter keys)."""


def check_offer(sdp: str) -> CheckedOffer:
    """The offer as aiortc may see it, or :class:`LegRefused`.

    Rules: at most :data:`MAX_MEDIA_SECTIONS` m-lines; each has one ``a=mid`` (a token,
    unique); a session-level ``a=group:BUNDLE`` names every mid (the relay serves one
    transport per client). Candidate lines are screened as trickled ones are.
    """
    lines = sdp.splitlines()
    sections = sum(1 for line in lines if line.startswith("m="))
    if sections == 0:
        raise LegRefused("offer_no_media", "the offer has no m-line")
    if sections > MAX_MEDIA_SECTIONS:
        raise LegRefused(
            "offer_too_many_media", f"{sections} m-lines; the limit is {MAX_MEDIA_SECTIONS}"
        )
    bundle: list[str] | None = None
    mids: list[str] = []
    section_mids = 0
    in_media = False
    kept: list[str] = []
    ignored: list[str] = []
    candidates = 0
    for line in lines:
        if line.startswith("m="):
            if in_media and section_mids != 1:
                raise LegRefused("offer_mid", f"m-line {len(mids)} has {section_mids} a=mid lines")
            in_media, section_mids = True, 0
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :].strip()
            if not in_media or len(mid) > MAX_MID_CHARS or not _MID.fullmatch(mid) or mid in mids:
                raise LegRefused("offer_mid", f"bad a=mid line: {line[:80]!r}")
            mids.append(mid)
            section_mids += 1
        elif line.startswith("a=group:BUNDLE") and not in_media:
            bundle = line[len("a=group:BUNDLE") :].split()
        elif line.startswith("a=candidate:"):
            why = candidate_problem(line[len("a=") :], candidates)
            if why is not None:
                ignored.append(why)
                continue
            candidates += 1
        kept.append(line)
    if section_mids != 1:
        raise LegRefused("offer_mid", f"m-line {len(mids)} has {section_mids} a=mid lines")
    if bundle is None:
        raise LegRefused("offer_no_bundle", "the offer has no a=group:BUNDLE line")
    if sorted(bundle) != sorted(mids):
        raise LegRefused("offer_no_bundle", "a=group:BUNDLE must name every m-line's mid")
    if not ignored:
        return CheckedOffer(sdp, candidates, ())
    return CheckedOffer("\r\n".join(kept) + "\r\n", candidates, tuple(ignored))


def check_answer(sdp: str) -> None:
    """An answer the control link can carry (and signaling accepts), or :class:`LegRefused`."""
    if len(sdp) > MAX_ANSWER_CHARS:
        raise LegRefused(
            "answer_too_large", f"the answer is {len(sdp)} characters; the limit is "
            f"{MAX_ANSWER_CHARS}"
        )  # fmt: skip


def check_candidate_target(sdp_mid: str | None, sdp_mline_index: int | None) -> None:
    """A trickled candidate must say which m-line it belongs to (RFC 8839 section 4.1)."""
    if sdp_mid is None and sdp_mline_index is None:
        raise LegRefused("candidate_no_mid", "a candidate needs sdpMid or sdpMLineIndex")


def candidate_problem(line: str, used: int) -> str | None:
    """Why the relay must not use this candidate (a counter key), or None to use it.

    ``line``: ``candidate:...`` (the ``a=`` removed); ``used``: candidates the leg already
    has. A line the relay cannot read is ignored too: aiortc would raise on it.
    """
    if used >= MAX_CANDIDATES_PER_LEG:
        return "candidate_over_cap"
    bits = line.removeprefix("candidate:").split()
    if len(bits) < 8 or bits[6] != "typ" or not bits[1].isdigit() or not bits[3].isdigit():
        return "candidate_malformed"
    if not bits[5].isdigit() or not 0 < int(bits[5]) < 65536:
        return "candidate_bad_port"
    host = bits[4]
    if host.lower().endswith(".local"):
        return "candidate_mdns"  # a look-up would block the worker ~1 s
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "candidate_not_an_address"  # a DNS name: a blocking look-up too
    return address_problem(address)


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Addresses the relay never sends to: its own machine, the local link, nowhere, many."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "candidate_loopback"
    if address.is_link_local:
        return "candidate_link_local"
    if address.is_unspecified:
        return "candidate_unspecified"
    if address.is_multicast:
        return "candidate_multicast"
    if address.is_reserved:
        return "candidate_reserved"
    return None
