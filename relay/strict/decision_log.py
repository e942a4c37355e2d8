"""Every decision of one moderated stream as a log line: what a leak's post-mortem reads.

Why: a frame of an unsafe scene that reaches a page was let through by some row of the gate's
table (``relay.strict.gate``), on some verdict. Which one cannot be read back from counters,
and the leaks left are rare (one call in tens), so the evidence has to be on record when one
happens, not rebuilt afterwards. Off by default (``[moderation] decision_log``): about three
lines per frame, 60-100 a second per stream.

Metadata only, as everywhere in moderation: frame ids, keyframe flags, detail and change
figures, the gate's named inputs, actions, labels and scores; never pixels or signatures.
Lines go to the logger ``relay.strict.decisions`` at info, whatever the process's log level
(``enable`` sets that logger's own level), each with an ``event`` mapping that the JSON log
format keeps as data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from fastpath.scene import peak_change, signature_distance
from relay.strict.gate import (
    Action,
    Blocked,
    Classify,
    Drop,
    Finding,
    Input,
    ModerationGate,
    Release,
    RequestKeyframe,
    Resumed,
    Signature,
)

log = logging.getLogger(__name__.rsplit(".", 1)[0] + ".decisions")

PEAK_CELLS: Final = 16


def enable() -> None:
    """Let decision lines through below the process's own level (``--log-level warning``)."""
    log.setLevel(logging.INFO)


def describe(actions: Sequence[Action]) -> list[str]:
    """Actions in a few characters each: ``release 12``, ``drop 13 blocked``, ``classify 14
    scene``, ``keyframe``, ``blocked FACE_MALE 0.41``, ``resumed``."""
    out = []
    for a in actions:
        match a:
            case Release(frame_id=fid):
                out.append(f"release {fid}")
            case Drop(frame_id=fid, reason=why):
                out.append(f"drop {fid} {why}")
            case Classify(frame_id=fid, reason=why):
                out.append(f"classify {fid} {why}")
            case RequestKeyframe():
                out.append("keyframe")
            case Blocked(label=label, score=score):
                out.append(f"blocked {label} {score:.2f}")
            case Resumed():
                out.append("resumed")
    return out


class DecisionLog:
    """The decision lines of one stream's ``gate``; the stream calls it after each gate call
    with the actions that call returned."""

    def __init__(self, stream: str, gate: ModerationGate) -> None:
        self.stream = stream
        self._gate = gate
        gate.trace = self.on_input
        self._inputs: list[str] = []
        self._previous: Signature | None = None

    def on_input(self, event: Input) -> None:
        """The gate's trace hook: the inputs one call named, in order."""
        self._inputs.append(event.name)

    def frame(
        self,
        fid: int,
        keyframe: bool,
        signature: Signature | None,
        detail: float,
        actions: Sequence[Action],
    ) -> None:
        """A frame went through the gate; ``change``/``peak``: from the last decodable frame
        (mean over the signature grid, and its ``PEAK_CELLS`` most-changed cells)."""
        fields: dict[str, Any] = {"frame": fid, "keyframe": keyframe}
        if signature is None:
            fields["undecodable"] = True
        else:
            fields["detail"] = round(detail, 3)
            if self._previous is not None:
                fields["change"] = round(signature_distance(signature, self._previous), 1)
                fields["peak"] = round(peak_change(signature, self._previous, PEAK_CELLS), 1)
            self._previous = signature
        self._emit("frame", fields, actions)

    def verdict(
        self,
        fid: int,
        finding: Finding,
        label: str,
        score: float,
        actions: Sequence[Action],
    ) -> None:
        self._emit(
            "verdict",
            {"frame": fid, "finding": finding.value, "label": label, "score": round(score, 3)},
            actions,
        )

    def no_verdict(self, fid: int, actions: Sequence[Action]) -> None:
        self._emit("no_verdict", {"frame": fid}, actions)

    def tick(self, actions: Sequence[Action]) -> None:
        """Only when the tick decided something (time-outs, frames held too long)."""
        if actions or self._inputs:
            self._emit("tick", {}, actions)

    def _emit(self, kind: str, fields: dict[str, Any], actions: Sequence[Action]) -> None:
        """One line; ``state``: the gate's, after the call."""
        done = describe(actions)
        state = self._gate.state.value
        event = {
            "stream": self.stream,
            "kind": kind,
            **fields,
            "inputs": self._inputs,
            "state": state,
            "actions": done,
        }
        self._inputs = []
        figures = " ".join(f"{k} {v}" for k, v in fields.items() if k != "frame")
        log.info(
            "stream %s %s %s%s: %s -> %s [%s]",
            self.stream,
            kind,
            fields.get("frame", ""),
            f" ({figures})" if figures else "",
            ",".join(event["inputs"]),
            "; ".join(done) or "wait",
            state,
            extra={"event": event},
        )
