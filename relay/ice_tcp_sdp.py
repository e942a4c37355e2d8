"""The relay's passive ICE-TCP candidates (RFC 6544) and their place in an answer.

Why a text edit: aiortc writes the answer from aioice's gathered candidates, which are UDP
only; the TCP listener is ours and outside aioice's gathering, so its candidates are added
to the SDP the worker sends, beside the UDP ones, in every media section (with BUNDLE every
section repeats the same transport's candidates). Sans-I/O, so the lines can be checked alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from aioice.candidate import Candidate, candidate_foundation

TCP_HOST_TYPE_PREFERENCE: Final = 90
"""Below UDP host (126), prflx (110) and srflx (100), so any UDP path that works is chosen
first; the value Chromium gives its own TCP host candidates."""
PASSIVE_DIRECTION_PREFERENCE: Final = 4
"""RFC 6544 section 4.2: 6 active, 4 passive, 2 simultaneous-open."""


def passive_tcp_priority(component: int = 1) -> int:
    """RFC 6544 section 4.2 priority: ``local-pref = 2**13 * direction-pref + other-pref``."""
    local_pref = (1 << 13) * PASSIVE_DIRECTION_PREFERENCE + 8191
    return (1 << 24) * TCP_HOST_TYPE_PREFERENCE + (1 << 8) * local_pref + (256 - component)


class PassiveTcpCandidate(Candidate):
    """A ``tcptype passive`` host candidate that never forms candidate pairs itself.

    Why: a passive candidate only accepts connections (RFC 6544 section 6.2); its pairs are
    the ones an incoming connection's checks create (aioice's triggered checks on a learned
    peer-reflexive candidate). Without this, aioice would pair it with the browser's
    ``tcptype active`` candidates (port 9) and send checks nobody can answer.
    """

    def __init__(self, host: str, port: int, component: int = 1) -> None:
        super().__init__(
            foundation=candidate_foundation("host", "tcp", host),
            component=component,
            transport="tcp",
            priority=passive_tcp_priority(component),
            host=host,
            port=port,
            type="host",
            tcptype="passive",
        )

    def can_pair_with(self, other: Candidate) -> bool:
        """Never: see the class docstring."""
        return False


def passive_candidates(local: Iterable[Candidate], port: int) -> list[PassiveTcpCandidate]:
    """One passive TCP candidate on ``port`` per address the leg offers UDP host candidates on
    (the listener accepts on every address, so each is reachable where its UDP twin is)."""
    hosts = dict.fromkeys(c.host for c in local if c.type == "host" and c.transport == "udp")
    return [PassiveTcpCandidate(host, port) for host in hosts]


def add_candidates(sdp: str, candidates: Sequence[Candidate]) -> str:
    """``sdp`` with ``a=candidate`` lines for ``candidates`` after each section's last one.

    Sections without candidates (none in aiortc's answers) are left alone.
    """
    if not candidates:
        return sdp
    extra = [f"a=candidate:{c.to_sdp()}" for c in candidates]
    lines = sdp.split("\r\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith("a=candidate:") and not following.startswith("a=candidate:"):
            out.extend(extra)
    return "\r\n".join(out)
