"""The signaling wire protocol: every message a client may send or receive, as typed structs.

This module is the single source of truth for the protocol (``docs/protocol.md`` describes the
same messages for client authors). It only encodes and decodes: no state, no I/O. Decoding
validates against the schema with msgspec, so an invalid message is rejected with a reason that
names the field, and nothing downstream ever sees an unvalidated dict.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

PROTOCOL_VERSION = 1

CLOSE_TIMED_OUT = 4000
"""WebSocket close code: no message for the heartbeat time-out."""
CLOSE_TOO_SLOW = 4001
"""WebSocket close code: the client did not read its messages."""
CLOSE_BANNED = 4004
"""WebSocket close code: this device or address is banned for now."""
CLOSE_FLOODING = 4029
"""WebSocket close code: the client kept sending far past its budgets (``[limits]``) after
``rate_limited`` errors told it to wait (as HTTP's 429 Too Many Requests)."""
CLOSE_TOO_MANY_CONNECTIONS = 4030
"""WebSocket close code: a new connection refused at the door because its address has too
many open, or opened too many too fast (``[limits]``); no ``welcome`` was sent."""
CLOSE_RECONNECT = 1012
"""WebSocket close code (RFC 6455 "service restart"): after ``reconnect``, this process is
draining; connect again (a load balancer sends the new connection to another one)."""
CLOSE_DRAINING = 1013
"""WebSocket close code (RFC 6455 "try again later"): a new connection refused at the door
because this process is draining; retry with back-off."""

SUBPROTOCOL = "chatguard"
"""The WebSocket subprotocol the server selects when a client offers it. A browser that offers
subprotocols fails the connection unless the server selects one of them, so a client that
sends its device id (below) offers this one too."""
DEVICE_SUBPROTOCOL_PREFIX = "chatguard.device."
"""A client's device id travels as the offered subprotocol ``chatguard.device.<id>``, in the
handshake's ``Sec-WebSocket-Protocol`` header: strikes and bans key on it, and the door must
know it before it admits anyone. A header, not the URL, because URLs end up in proxies'
access logs and browser history, and the id is a tracking key."""
MAX_DEVICE_CHARS = 64


def device_from_subprotocols(offered: list[str]) -> str:
    """The device id offered as a subprotocol, or "" (none, or not one the web client could
    have made: letters, digits, "-" and "_", at most ``MAX_DEVICE_CHARS``)."""
    for name in offered:
        if name.startswith(DEVICE_SUBPROTOCOL_PREFIX):
            device = name.removeprefix(DEVICE_SUBPROTOCOL_PREFIX)
            plain = device.replace("-", "").replace("_", "")
            if len(device) <= MAX_DEVICE_CHARS and plain.isascii() and plain.isalnum():
                return device
    return ""


RouteName = Literal["direct", "relay", "strict"]
Sdp = Annotated[str, msgspec.Meta(min_length=1, max_length=60_000)]
PairId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Interest = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
ShortText = Annotated[str, msgspec.Meta(max_length=200)]
CHAT_MAX_CHARS = 500
"""Longest chat message; a chat line, not a document (``[chat] max_chars`` may lower it)."""
ChatText = Annotated[str, msgspec.Meta(min_length=1, max_length=CHAT_MAX_CHARS)]


class _ClientMessage(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: int = PROTOCOL_VERSION
    """Protocol version the client speaks; optional so hand-written clients stay short."""


class Join(_ClientMessage, tag="join"):
    """Start looking for a partner (the Start button)."""

    interests: Annotated[list[Interest], msgspec.Meta(max_length=16)] = []
    hide_address: bool = False
    """Never show this user's address to a partner: their calls take the relay route even
    where the region's route is direct (the relay is each member's only ICE peer)."""


class Next(_ClientMessage, tag="next"):
    """Drop the current partner and look for another."""


class Leave(_ClientMessage, tag="leave"):
    """Stop: leave the pair or the queue, stay connected."""


class Report(_ClientMessage, tag="report"):
    """Report the current partner; ends the call and looks for someone new."""

    reason: ShortText = ""


class Chat(_ClientMessage, tag="chat"):
    """A text message for the current partner of `pair`: relayed, never stored or logged."""

    pair: PairId
    text: ChatText


class Offer(_ClientMessage, tag="offer"):
    pair: PairId
    sdp: Sdp


class Answer(_ClientMessage, tag="answer"):
    pair: PairId
    sdp: Sdp


class IceCandidate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Mirrors the browser's RTCIceCandidateInit; an empty candidate means end-of-candidates."""

    candidate: Annotated[str, msgspec.Meta(max_length=1024)]
    sdpMid: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    sdpMLineIndex: Annotated[int, msgspec.Meta(ge=0, le=64)] | None = None
    usernameFragment: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class Candidate(_ClientMessage, tag="candidate"):
    pair: PairId
    candidate: IceCandidate


class CallState(_ClientMessage, tag="call_state"):
    """The client's view of its media connection, so the server can log it and re-route."""

    pair: PairId
    state: Literal["connected", "failed", "reconnecting"]
    """"reconnecting": the media dropped mid-call and the client is restoring it; the partner
    is told (partner_state) instead of seeing the call end."""
    route: RouteName | None = None
    """The route the client was using, so a late report about an old route is not taken as
    news about the new one."""


class Ping(_ClientMessage, tag="ping"):
    """Heartbeat; the server answers with pong."""


ClientMessage = Join | Next | Leave | Report | Chat | Offer | Answer | Candidate | CallState | Ping
PartnerSignal = Offer | Answer | Candidate


class _ServerMessage(msgspec.Struct, tag_field="type", omit_defaults=False, kw_only=True):
    v: int = PROTOCOL_VERSION


class IceServer(msgspec.Struct, omit_defaults=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Welcome(_ServerMessage, tag="welcome"):
    id: str
    region: str
    ice_servers: list[IceServer]
    """STUN only: TURN credentials come with ``paired`` and ``reroute`` (``signaling.ice``)."""
    heartbeat_interval_s: float
    connect_timeout_s: float
    fallback_after_s: float
    """A direct call not connected by then is reported failed, and moves to the relay."""
    repair_cooldown_s: float = 0.0
    """After Next, the two are not paired again for this long (so a page can say why it waits)."""
    chat_max_chars: int = CHAT_MAX_CHARS


class Waiting(_ServerMessage, tag="waiting"):
    """Queued for a partner."""


class Idle(_ServerMessage, tag="idle"):
    """Out of the queue (after leave)."""


class Paired(_ServerMessage, tag="paired"):
    pair: str
    role: Literal["offerer", "answerer"]
    route: RouteName
    reuse: bool = False
    """Relayed routes: keep the connection to the relay from the previous call (no offer)."""
    ice_servers: list[IceServer] = []
    """For this call's connection: STUN, and TURN with credentials minted now (none when
    `reuse`: the kept connection needs none)."""


class PartnerLeft(_ServerMessage, tag="partner_left"):
    pair: str
    reason: str


class RelayedChat(_ServerMessage, tag="chat"):
    """A chat message from the partner of `pair`."""

    pair: str
    text: str


class RelayedOffer(_ServerMessage, tag="offer"):
    pair: str
    sdp: str


class RelayedAnswer(_ServerMessage, tag="answer"):
    pair: str
    sdp: str


class RelayedCandidate(_ServerMessage, tag="candidate"):
    pair: str
    candidate: IceCandidate


class Reroute(_ServerMessage, tag="reroute"):
    """Same partner, new media path: close the current connection and offer again."""

    pair: str
    route: RouteName
    reason: str
    ice_servers: list[IceServer] = []
    """As ``paired``'s: for the new connection, TURN credentials minted now."""


class IceServers(_ServerMessage, tag="ice_servers"):
    """Fresh ICE servers for the connection of `pair`, in answer to the client's
    ``call_state: reconnecting``: restoring the media allocates anew on TURN, and the
    credentials that came with the pairing may have expired by then."""

    pair: str
    ice_servers: list[IceServer] = []


class PartnerState(_ServerMessage, tag="partner_state"):
    """The partner's media connection is being restored, or is back."""

    pair: str
    state: Literal["reconnecting", "connected"]


class CallEnded(_ServerMessage, tag="call_ended"):
    """The call cannot go on (no relay, relay failure); the partner is kept until Next."""

    pair: str
    reason: str


class ModerationNotice(_ServerMessage, tag="moderation"):
    """Strict route: whose video the relay stopped (or let through again), and why."""

    pair: str
    state: Literal["blocked", "resumed"]
    who: Literal["you", "partner"]
    label: str
    strikes: int
    """The offender's strikes so far (only told to the offender; 0 for the partner)."""


class Banned(_ServerMessage, tag="banned"):
    """Too many strikes: the session ends and this device and address are refused until
    `until_unix`."""

    reason: str
    until_unix: float


class Reconnect(_ServerMessage, tag="reconnect"):
    """This process is going away (a rolling restart): connect again after `after_s`, then
    resume (join again, or keep a call whose media flows). The socket closes with 1012."""

    reason: str
    after_s: float
    """Spread over the clients so they do not all arrive at the next process at once."""


class Pong(_ServerMessage, tag="pong"):
    pass


class Error(_ServerMessage, tag="error"):
    code: str
    message: str
    kind: str | None = None
    """``rate_limited`` only: the budget that ran out (``signaling.budgets.KINDS``)."""
    retry_after_s: float | None = None
    """``rate_limited`` only: when a message of that kind would be taken again."""


ServerMessage = (
    Welcome
    | Waiting
    | Idle
    | Paired
    | PartnerLeft
    | RelayedChat
    | RelayedOffer
    | RelayedAnswer
    | RelayedCandidate
    | Reroute
    | IceServers
    | PartnerState
    | CallEnded
    | ModerationNotice
    | Banned
    | Reconnect
    | Pong
    | Error
)


class ProtocolError(Exception):
    """A message that cannot be accepted; `code` is machine-readable, the text human-readable."""

    def __init__(
        self, code: str, message: str, kind: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = kind
        self.retry_after_s = retry_after_s


_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
_encoder = msgspec.json.Encoder()


def decode_client_message(raw: bytes | str, max_bytes: int) -> ClientMessage:
    """Parse and validate one client message, or raise ProtocolError saying what was wrong."""
    size = len(raw)
    if size > max_bytes:
        raise ProtocolError("too_large", f"message is {size} bytes; the limit is {max_bytes}")
    try:
        message = _decoder.decode(raw)
    except msgspec.ValidationError as exc:  # a DecodeError subclass: must come first
        raise ProtocolError("invalid", f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("malformed", f"not valid JSON: {exc}") from None
    if message.v != PROTOCOL_VERSION:
        raise ProtocolError(
            "unsupported_version",
            f"protocol version {message.v} is not supported; this server speaks {PROTOCOL_VERSION}",
        )
    return message


def encode_server_message(message: ServerMessage) -> str:
    return _encoder.encode(message).decode()
