"""Operator events: each moderation decision that matters, as metadata, for an audit trail.

Why: an operator in a strict-safety region must be able to show what was blocked or banned
and why, without keeping media. Each event carries what a statement of reasons under the EU
Digital Services Act asks for (Art. 17): a unique id, the time, the decision, whether it was
automated, its ground (the model's label, score and the policy threshold; or the users'
reports) and how long a ban lasts. Never pixels, SDP or text messages; and no network address
unless the operator asks for one (``[events] include_addresses``): the subject is the session
id, which means nothing outside this service's own logs.

The hub builds events (sans-I/O, time passed in); ``signaling.app`` hands them to the log and
to ``signaling.webhook``.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

Decision = Literal["blocked", "resumed", "strike", "ban", "report", "ban_refused"]
"""blocked/resumed: the relay stopped or resumed someone's video; strike: a block counted
against them; ban: their device and address are refused for `ban_s`; report: a user reported
their partner; ban_refused: a banned device or address was turned away at connect."""


class Ground(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why: the model's finding against the policy, or the users' reports."""

    label: str = ""
    score: float | None = None
    threshold: float | None = None
    """The operator's threshold for `label`: the score at or above which video is blocked."""
    strikes: int | None = None
    """Strikes within the window, counting this one (strike, moderation ban)."""
    report_reason: str = ""
    reporters: int | None = None
    """Distinct reporters within the window (report, report ban)."""


class OperatorEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    time: str
    """ISO 8601, UTC."""
    decision: Decision
    automated: bool
    """Taken by the service itself (the model, the strike or report rules), not by a person."""
    ground: Ground
    subject: str = ""
    """The session the decision concerns (pseudonymous; empty when refused at the door)."""
    call: str = ""
    """The pair id of the call, if the decision was taken during one."""
    ban_s: float | None = None
    """How long the ban lasts (ban, ban_refused: what remains of it)."""
    address: str = ""
    """The subject's IP address (ban_refused: the refused client's), only with ``[events]
    include_addresses``; empty otherwise, or when the subject is on another node."""


def iso_utc(unix: float) -> str:
    """``2026-12-06T04:20:26.123Z``."""
    whole = int(unix)
    millis = int((unix - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


_encoder = msgspec.json.Encoder()


def encode(event: OperatorEvent) -> bytes:
    return _encoder.encode(event)


def to_builtins(event: OperatorEvent) -> dict[str, object]:
    data: dict[str, object] = msgspec.to_builtins(event)
    return data
