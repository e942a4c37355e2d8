"""The control protocol between signaling and relay workers: typed messages, nothing else.

A relay worker dials the signaling service (WebSocket ``/relay``), introduces itself, reports
its load every second, and carries out what signaling asks: open a leg (a WebRTC connection with
one client, from the client's SDP offer), link two legs (forward media between them), unlink,
close. Workers dial in, rather than being dialled, so that a relay on another machine needs to
know only the signaling URL, and a worker that dies is noticed by its socket closing.

Both sides validate every message against these structs (msgspec), as the client protocol does.
"""

from __future__ import annotations

import bisect
from typing import Annotated, Literal

import msgspec

CONTROL_VERSION = 1

LegId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Sdp = Annotated[str, msgspec.Meta(min_length=1, max_length=60_000)]
MAX_FRAME_BYTES = 2**20
"""Largest control message either side accepts (``/relay``'s own WebSocket frame limit): an
``OpenLeg`` carries a client's offer of up to 60,000 characters, which JSON may escape to
several times that; a client's own frames (``/ws``) are held to far less."""


class _Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: int = CONTROL_VERSION


# -- worker -> signaling --------------------------------------------------------------------


class Hello(_Message, tag="hello"):
    """First message of a worker; signaling closes the socket if `token` is wrong."""

    worker_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    token: str
    pid: int
    max_sessions: int
    """Legs this worker accepts at most; signaling places none beyond it."""


class ModerationLoad(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The strict route on one worker over the last interval (metadata only, no media)."""

    streams: int
    classified_per_s: float
    released_per_s: float
    withheld_per_s: float
    no_verdict: int
    gate_p50_ms: float | None
    """A released frame's wait for its verdict (last packet in -> forwarded), frames that
    waited for a cut to settle aside; None: none."""
    gate_p99_ms: float | None
    settle_p99_ms: float | None = None
    """The same for frames that waited for a cut to settle (``GateConfig.settle_s``)."""


GATE_LATENCY_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)
"""Buckets of the strict route's gate latency (a released frame's wait for its verdict)."""
SETTLE_LATENCY_BOUNDS_S = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
"""Buckets of the wait of frames held while a cut settled (about ``settle_s``, 1 s, by
design)."""
MODEL_INFERENCE_BOUNDS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)
"""Buckets of one model run on a worker (tens of ms per image on one core, more per stack)."""
SENDER_ESTIMATE_BOUNDS_BPS = (
    100e3, 200e3, 300e3, 500e3, 750e3, 1e6, 1.5e6, 2.5e6, 5e6, 10e6
)  # fmt: skip
"""Buckets of the relay's own estimates of its senders' uplinks (``Load.sender_estimates``)."""


class Histogram(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Observations (seconds; bits per second for senders' estimates) counted per bucket, as
    plain numbers, so that a worker's latency
    travels in its load reports and signaling keeps its own the same way; both become
    Prometheus histograms when scraped. ``counts[i]`` holds values up to ``bounds[i]`` (above
    the previous bound), the last count those above every bound."""

    bounds: tuple[float, ...]
    counts: list[int]
    sum: float = 0.0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(bounds=bounds, counts=[0] * (len(bounds) + 1))

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class ModerationTotals(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The strict route on one worker since it started (metadata only)."""

    classified: int = 0
    no_verdict: int = 0
    frames_released: int = 0
    frames_withheld: int = 0
    gate_latency: Histogram = msgspec.field(
        default_factory=lambda: Histogram.empty(GATE_LATENCY_BOUNDS_S)
    )
    """Released frames' waits for their verdicts."""
    settle_latency: Histogram = msgspec.field(
        default_factory=lambda: Histogram.empty(SETTLE_LATENCY_BOUNDS_S)
    )
    """Released frames' waits for a cut to settle: kept apart, or a settling second would
    hide a slow classifier."""
    inference: Histogram = msgspec.field(
        default_factory=lambda: Histogram.empty(MODEL_INFERENCE_BOUNDS_S)
    )
    """Each model run's duration (``models.batching.BatchStats.run_s``)."""


class RelayTotals(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What one worker did since it started: counters that only grow, which signaling turns
    into Prometheus counters per worker (a worker that restarts starts again from zero, as a
    Prometheus counter may)."""

    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    """RTP payload and header bytes sent on to partners (SRTP overhead not included)."""
    dropped: dict[str, int] = msgspec.field(default_factory=dict)
    """Packets not forwarded, by reason (``unpaired``, ``awaiting_keyframe``, ``late``...)."""
    nacks_received: int = 0
    retransmitted: int = 0
    """Packets resent from the relay's own buffer in answer to NACKs."""
    nacks_sent: int = 0
    """NACKs the relay sent upstream for what it never received."""
    plis_received: int = 0
    """Keyframe requests (PLI and FIR) from receivers."""
    plis_sent: int = 0
    keyframe_requests: dict[str, int] = msgspec.field(default_factory=dict)
    """Keyframe requests by who needed one and whether a PLI went out
    (``relay.forwarding_hub.ForwardingHub.keyframe_requests``: ``gate_sent``, ``gate_throttled``,
    ``receiver_sent``, ``receiver_throttled``, ``switch_sent``)."""
    keyframes_replayed: int = 0
    rembs_sent: dict[str, int] = msgspec.field(default_factory=dict)
    """REMBs sent to senders by the figure that bound them
    (``relay.forwarding_hub.ForwardingHub.rembs_sent``: ``relay.sender_bitrate.Bound``)."""
    cpu_seconds: float = 0.0
    defences: dict[str, int] = msgspec.field(default_factory=dict)
    """Legs refused, candidates ignored, faults caught and retransmissions withheld, by kind
    (``relay.admission``, ``relay.worker``, ``ForwardingHub.nack_limits`` name them; policed
    packets are in ``dropped``)."""
    moderation: ModerationTotals | None = None


LOAD_INTERVAL_S = 1.0
"""How often a worker sends `Load`; signaling (every node of a shared pool) expects it."""


class Load(_Message, tag="load"):
    """Sent every `LOAD_INTERVAL_S`; the least-loaded live worker gets the next pair."""

    legs: int
    cpu_percent: float
    """CPU used by the worker process over the last interval, in % of one core."""
    rss_bytes: int
    draining: bool = False
    moderation: ModerationLoad | None = None
    """Once the worker has moderated a stream."""
    moderation_ready: bool | None = None
    """Whether this worker can moderate (strict legs): True once it has loaded the model and
    run it once, False if that failed (then `moderation_error` says why); None while loading,
    or when signaling runs no strict route (`Configure.strict`) and the model is not loaded."""
    moderation_error: Annotated[str, msgspec.Meta(max_length=500)] = ""
    totals: RelayTotals | None = None
    """Counters since the worker started, for signaling's metrics."""
    sender_estimates: Histogram | None = None
    """The relay's own estimate of each sender's uplink now (bits per second; senders whose
    estimate is ready), for signaling's metrics."""


class Answer(_Message, tag="answer"):
    """The relay's SDP answer for a leg (all relay candidates included: no trickle)."""

    leg: LegId
    sdp: Sdp


class LegState(_Message, tag="leg_state"):
    """A leg's media connection changed: `connected`, `failed` or `closed`."""

    leg: LegId
    state: Literal["connected", "failed", "closed"]
    detail: Annotated[str, msgspec.Meta(max_length=500)] = ""


class Refused(_Message, tag="refused"):
    """The worker could not do what was asked (bad SDP, unknown leg, full); says why."""

    leg: LegId
    reason: Annotated[str, msgspec.Meta(max_length=500)]


class Moderation(_Message, tag="moderation"):
    """Strict route: video from `leg` was blocked (an unsafe verdict) or resumed (a fresh safe
    verdict and a keyframe). Metadata only: never pixels. Signaling counts strikes and bans."""

    leg: LegId
    state: Literal["blocked", "resumed"]
    label: Annotated[str, msgspec.Meta(max_length=64)] = ""
    score: float = 0.0
    threshold: float | None = None
    """The policy's threshold for `label` (what the score was held against), for the audit."""


WorkerMessage = Hello | Load | Answer | LegState | Refused | Moderation


# -- signaling -> worker --------------------------------------------------------------------


class Configure(_Message, tag="configure"):
    """Sent right after a worker's hello: the operator's moderation policy for strict legs and
    the worker's ICE settings, so workers on other machines need no copy of signaling's
    config."""

    block: dict[str, float] | None
    """Label -> threshold; None: the model's default list."""
    verdict_ttl_s: float
    min_classifications_per_s: float
    mute_audio_while_blocked: bool
    reference_margin: float = 0.75
    """The strict route's decision rules (signaling's `[moderation]`; see its keys)."""
    resume_after_safe: int = 2
    alert_s: float = 2.0
    alert_classifications_per_s: float = 5.0
    scene_peak_cells: int = 16
    scene_peak_threshold: float = 40.0
    detail_growth: float = 0.1
    settle_s: float = 1.0
    max_decoded_pixels: int = 1920 * 1088
    decode_budget: float = 0.25
    decision_log: bool = False
    """Log every moderation decision (``relay.strict.decision_log``)."""
    stun_url: str = ""
    """STUN server for the worker's own ICE candidates (public address behind NAT)."""
    strict: bool = False
    """A route in force is strict: load the model now and report `Load.moderation_ready`,
    rather than at the first strict leg; a worker that cannot moderate gets no strict calls."""


class OpenLeg(_Message, tag="open_leg"):
    """Start a WebRTC connection with one client from its offer; answer with `Answer`."""

    leg: LegId
    offer: Sdp
    moderated: bool = False
    """Strict route: video from this leg is gated by the classifier before it is forwarded."""


class AddCandidate(_Message, tag="add_candidate"):
    """A trickled ICE candidate from the client of `leg` (the browser's candidate line)."""

    leg: LegId
    candidate: Annotated[str, msgspec.Meta(max_length=1024)]
    sdp_mid: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    sdp_mline_index: int | None = None


class Link(_Message, tag="link"):
    """Forward media between two legs of this worker, both ways."""

    first: LegId
    second: LegId


class Unlink(_Message, tag="unlink"):
    """Stop forwarding to and from `leg`; the leg stays open for a next partner."""

    leg: LegId


class CloseLeg(_Message, tag="close_leg"):
    leg: LegId


class Drain(_Message, tag="drain"):
    """Take no new legs; existing ones run until they end."""


SignalingMessage = Configure | OpenLeg | AddCandidate | Link | Unlink | CloseLeg | Drain

_worker_decoder: msgspec.json.Decoder[WorkerMessage] = msgspec.json.Decoder(WorkerMessage)
_signaling_decoder: msgspec.json.Decoder[SignalingMessage] = msgspec.json.Decoder(SignalingMessage)
_encoder = msgspec.json.Encoder()


class ControlError(Exception):
    """A control message that cannot be parsed or validated; the text says what was wrong."""


def decode_worker_message(raw: str | bytes) -> WorkerMessage:
    try:
        return _worker_decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ControlError(f"invalid worker message: {exc}") from None


def decode_signaling_message(raw: str | bytes) -> SignalingMessage:
    try:
        return _signaling_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ControlError(f"invalid signaling message: {exc}") from None


def encode(message: WorkerMessage | SignalingMessage) -> str:
    return _encoder.encode(message).decode()
