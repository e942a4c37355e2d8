"""What the forwarding hub needs of a client leg, and nothing of how the leg gets its packets.

Why an interface: ``forwarding_hub`` decides where packets go and which RTCP to answer; it must
not depend on aiortc's internals (``aiortc_adapter`` is the only module that touches them), and
its tests and the micro-benchmark drive it with stand-in legs. Anything with these members is a
leg: :class:`relay.aiortc_adapter.AiortcLeg` in a worker, a few lines of test code elsewhere.
Legs are told apart by identity (the hub keys its per-leg records by the leg object).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What one leg negotiated for one media kind, as the forwarding tables need it."""

    kind: str
    codecs: tuple[RTCRtpCodecParameters, ...]
    header_extensions: tuple[RTCRtpHeaderExtensionParameters, ...]
    out_ssrc: int
    """SSRC of the relay's sender on this leg (announced in the relay's SDP)."""


class Leg(Protocol):
    """One client's media connection as the hub sees it: negotiated streams and a way out.

    Packets come *in* by the leg calling the hub (``ForwardingHub.on_rtp`` / ``on_rtcp`` with
    itself as the first argument), so that direction needs no member here.
    """

    @property
    def media(self) -> Mapping[str, NegotiatedMedia]:
        """Negotiated media by kind (``"audio"``, ``"video"``)."""
        ...

    @property
    def kind_by_pt(self) -> Mapping[int, str]:
        """Incoming payload type -> kind, over every negotiated codec (RTX included)."""
        ...

    def send(self, data: bytes) -> bool:
        """Send one RTP or RTCP packet to the client (RTCP told apart by its packet type),
        synchronously; False if the leg is not connected (yet, or any more)."""
        ...
