"""Offers for testing what a relay worker admits: a real Chromium offer (saved as a fixture:
audio and video transceivers, Chromium's ``createOffer`` before any candidate was gathered) and
variants of it, such as the attacker's offer with 130 bundled m-lines.

To refresh the fixture: in Chromium, ``pc.addTransceiver('audio'); pc.addTransceiver('video');
(await pc.createOffer()).sdp``, saved with its CRLF line ends."""

from __future__ import annotations

import re
from pathlib import Path

from aiortc import RTCPeerConnection

from tests.support.tracks import SolidTrack

CHROMIUM_OFFER = (Path(__file__).parent / "chromium_offer.sdp").read_bytes().decode("ascii")
"""Chromium's offer (audio mid 0, video mid 1, BUNDLE)."""


def _split(sdp: str) -> tuple[list[str], list[list[str]]]:
    """Session lines and each m-section's lines."""
    session: list[str] = []
    sections: list[list[str]] = []
    for line in sdp.split("\r\n"):
        if not line:
            continue
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def _join(session: list[str], sections: list[list[str]]) -> str:
    return "\r\n".join(session + [line for s in sections for line in s]) + "\r\n"


def _opus_only(section: list[str]) -> list[str]:
    """Chromium's audio section with Opus alone (payload type 111), no SSRC, no extensions:
    about 300 characters."""
    other_pt = re.compile(r"a=(rtpmap:|fmtp:)(?!111 )|a=(ssrc|msid|extmap|rtcp-fb)")
    kept = [line for line in section[1:] if not other_pt.match(line)]
    return ["m=audio 9 UDP/TLS/RTP/SAVPF 111", *kept]


def many_media_offer(count: int) -> str:
    """A bundled offer of ``count`` Opus m-lines, as the attacker sent (130 of them)."""
    session, sections = _split(CHROMIUM_OFFER)
    audio = _opus_only(sections[0])
    mids = [str(i) for i in range(count)]
    session = [
        f"a=group:BUNDLE {' '.join(mids)}" if line.startswith("a=group:BUNDLE") else line
        for line in session
    ]
    media = [
        [f"a=mid:{mid}" if line.startswith("a=mid:") else line for line in audio] for mid in mids
    ]
    return _join(session, media)


def bundled_offer(candidates: list[str]) -> str:
    """Chromium's offer with ``candidates`` (``candidate:...`` lines) in its first section."""
    session, sections = _split(CHROMIUM_OFFER)
    sections[0] = sections[0] + [f"a={c}" for c in candidates]
    return _join(session, sections)


async def aiortc_offer() -> str:
    """A real offer from aiortc: one video track and one audio transceiver."""
    pc = RTCPeerConnection()
    try:
        pc.addTrack(SolidTrack(100))
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()
