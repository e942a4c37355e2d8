"""Match what the two legs negotiated: payload types by codec, extension ids by URI.

Why: each leg of a relayed pair runs its own offer/answer, so the same codec may carry a
different payload type and the same header extension a different id on each side. These
pure functions turn the two negotiated parameter sets into the lookup tables the
per-packet path uses (``dict`` for PT, a 256-entry list for extension ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

from relay.codecs import h264_is_keyframe_start, vp8_is_keyframe_start
from relay.forwarder import KeyframeCheck

ABS_SEND_TIME: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
FORWARDED_EXTENSIONS: Final = frozenset(
    {
        ABS_SEND_TIME,
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "urn:ietf:params:rtp-hdrext:toffset",
        "urn:3gpp:video-orientation",
    }
)
"""Extensions whose value stays true after forwarding. Deliberately absent: ``sdes:mid`` and
the RID extensions (they name the *sending* leg's transceiver; the receiving leg routes by
the SSRC the relay announced) and transport-wide-cc (its sequence space is per transport,
and the relay does not produce transport-cc feedback). abs-send-time is forwarded only to be
moved by the time the relay held the packet (:func:`relay.rtp.delay_abs_send_time`)."""


def codec_key(codec: RTCRtpCodecParameters) -> tuple[str, int, int, str, str]:
    """What must be equal for a payload to be understood on the other leg as is."""
    params = codec.parameters
    return (
        codec.mimeType.lower(),
        codec.clockRate,
        codec.channels or 1,
        str(params.get("packetization-mode", "0")) if "h264" in codec.mimeType.lower() else "",
        str(params.get("profile-level-id", ""))[:2].lower()
        if "h264" in codec.mimeType.lower()
        else "",
    )


def is_rtx(codec: RTCRtpCodecParameters) -> bool:
    """RTX (RFC 4588) payload types are not forwarded as media."""
    return codec.mimeType.lower().endswith("/rtx")


def map_payload_types(
    incoming: Iterable[RTCRtpCodecParameters], outgoing: Iterable[RTCRtpCodecParameters]
) -> dict[int, int]:
    """Incoming PT -> outgoing PT for every media codec both legs negotiated.

    When the outgoing leg lists a codec twice (e.g. two H.264 profiles), the first,
    i.e. the most preferred, wins.
    """
    out_by_key: dict[tuple[str, int, int, str, str], int] = {}
    for c in outgoing:
        if not is_rtx(c) and c.payloadType is not None:
            out_by_key.setdefault(codec_key(c), c.payloadType)
    result: dict[int, int] = {}
    for c in incoming:
        if is_rtx(c) or c.payloadType is None:
            continue
        out = out_by_key.get(codec_key(c))
        if out is not None:
            result[c.payloadType] = out
    return result


def keyframe_checks(incoming: Iterable[RTCRtpCodecParameters]) -> dict[int, KeyframeCheck]:
    """Incoming video PT -> keyframe detector, for the codecs the relay can inspect."""
    checks: dict[int, KeyframeCheck] = {}
    for c in incoming:
        name = c.mimeType.lower()
        if c.payloadType is None:
            continue
        if name == "video/vp8":
            checks[c.payloadType] = vp8_is_keyframe_start
        elif name == "video/h264":
            checks[c.payloadType] = h264_is_keyframe_start
    return checks


def map_extension_ids(
    incoming: Iterable[RTCRtpHeaderExtensionParameters],
    outgoing: Iterable[RTCRtpHeaderExtensionParameters],
    forwarded: Iterable[str] = FORWARDED_EXTENSIONS,
) -> list[int]:
    """256-entry table: incoming extension id -> outgoing id, 0 where it must be erased."""
    keep = set(forwarded)
    out_ids: Mapping[str, int] = {e.uri: e.id for e in outgoing}
    table = [0] * 256
    for e in incoming:
        if e.uri in keep and e.uri in out_ids and 0 < e.id < 256:
            table[e.id] = out_ids[e.uri]
    return table


def extension_id(extensions: Iterable[RTCRtpHeaderExtensionParameters], uri: str) -> int:
    """The id a leg negotiated for ``uri`` (0: not negotiated, or not one-byte/two-byte)."""
    return next((e.id for e in extensions if e.uri == uri and 0 < e.id < 256), 0)


def rtx_payload_types(codecs: Iterable[RTCRtpCodecParameters]) -> dict[int, int]:
    """RTX payload type -> the media payload type it repairs (its ``apt``)."""
    out: dict[int, int] = {}
    for c in codecs:
        apt = c.parameters.get("apt")
        if is_rtx(c) and c.payloadType is not None and isinstance(apt, int):
            out[c.payloadType] = apt
    return out
