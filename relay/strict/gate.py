"""The moderation gate of one moderated video stream: which frames may be forwarded, sans-I/O.

What lives here: the decision only. Frames (an id, keyframe or not, a scene signature or
"undecodable") and verdicts (safe/unsafe for one frame id) go in with the time; decisions come
out as :data:`Action` s. No pixels, no packets, no clock, no tasks: ``relay.strict.moderation``
does the decoding, the classifying and the forwarding, and this file can be tested exhaustively.

The invariant (fail closed): a frame is released only if it was classified safe itself, or it
comes after a frame classified safe (the *reference*) in the same stream, shows the same scene
(signature distance below ``scene_threshold``) and arrived at most ``verdict_ttl_s`` after it,
with nothing unsafe since. Frames are released in arrival order, so one frame waiting for its
verdict holds back the ones behind it. And after any frame was dropped, the receiver's decoder
lacks a reference, so nothing but a keyframe may follow.

States and transitions, read top to bottom (first matching row wins):

============== ============================================ ====================================
state          input                                        decision
============== ============================================ ====================================
any            frame "undecodable" (lost packets, error)    drop it and all held -> AWAIT [1]
any            held too long / too many held                drop all held -> AWAIT [1]
any            verdict unsafe                               drop all held, strike, emit
                                                            ``Blocked`` (once) -> BLOCKED
any            no verdict (error, time-out)                 forget it; drop frames only it could
                                                            have covered -> AWAIT [1]
OPEN           frame, nothing held, covered by reference    release (+ classify if periodic due)
OPEN           frame, otherwise                             hold; classify if new scene,
                                                            keyframe or reference expired
OPEN           verdict safe                                 new reference; release what it
                                                            covers, in order
AWAIT_KEYFRAME delta frame                                  drop, request keyframe
AWAIT_KEYFRAME keyframe                                     hold, classify -> OPEN (released on
                                                            its own verdict: the reference was
                                                            cleared by the drop)
BLOCKED        delta frame, nothing held                    drop; classify if periodic due
BLOCKED        keyframe (or delta behind a held one)        hold (classify the keyframe)
BLOCKED        verdict safe on a dropped delta              request keyframe (caller throttles)
BLOCKED        verdict safe on the held keyframe            release it and what it covers, emit
                                                            ``Resumed`` -> OPEN
============== ============================================ ====================================

[1] AWAIT is AWAIT_KEYFRAME; BLOCKED stays BLOCKED. "Classify" is bounded by ``max_in_flight``
outstanding requests; a frame that cannot be submitted is held and may still be covered by a
pending verdict on an earlier frame.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from fastpath.scene import signature_distance

Signature = NDArray[np.float32]


class GateState(enum.Enum):
    OPEN = "open"
    """Forwarding frames covered by a safe verdict."""
    AWAIT_KEYFRAME = "await_keyframe"
    """Frames were dropped: the receiver's decoder needs a keyframe before anything else."""
    BLOCKED = "blocked"
    """An unsafe verdict: nothing is forwarded until a keyframe is itself classified safe."""


@dataclass(frozen=True, slots=True)
class GateConfig:
    scene_threshold: float = 8.0
    """Signature distance (mean absolute luma difference, 0-255) below which two frames show
    the same scene."""
    verdict_ttl_s: float = 1.0
    """How much later than a safe frame another frame may arrive and still be covered by it."""
    min_classifications_per_s: float = 2.0
    """Classify at least this often even when the scene does not change."""
    max_hold_s: float = 0.5
    """A frame held longer than this is dropped with everything behind it."""
    max_held_frames: int = 30
    max_in_flight: int = 2
    """Classification requests outstanding at once (each needs its own tensor buffer)."""
    verdict_timeout_s: float = 1.0
    """A request unanswered for this long counts as no verdict (if the caller did not say)."""


@dataclass(frozen=True, slots=True)
class Release:
    """Forward this frame's packets now."""

    frame_id: int


@dataclass(frozen=True, slots=True)
class Drop:
    """Never forward this frame (its packets can be discarded)."""

    frame_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Classify:
    """Submit this frame (the one just passed to :meth:`ModerationGate.on_frame`) to the
    classifier and report back with :meth:`ModerationGate.on_verdict` or ``on_no_verdict``."""

    frame_id: int
    reason: str = field(default="periodic", compare=False)
    """Why: ``keyframe`` or ``scene`` (new scene or expired reference) for a frame the gate
    holds until this verdict, ``periodic`` for the minimum rate on a frame already decided.
    Held ones delay the stream, so the caller serves them first; not part of the identity."""


@dataclass(frozen=True, slots=True)
class RequestKeyframe:
    """Ask the sender for a keyframe (the caller throttles PLIs)."""


@dataclass(frozen=True, slots=True)
class Blocked:
    """The stream went from forwarding to blocked (once per block, a strike)."""

    label: str
    score: float


@dataclass(frozen=True, slots=True)
class Resumed:
    """The stream forwards again, from a keyframe that was itself classified safe."""


Action = Release | Drop | Classify | RequestKeyframe | Blocked | Resumed


@dataclass(slots=True)
class _Frame:
    id: int
    keyframe: bool
    signature: Signature
    arrival: float
    safe: bool = False
    """Its own safe verdict arrived (while it was held)."""


class ModerationGate:
    """Decisions for one video stream; every method returns the actions to carry out, in order.

    Frame ids must increase in arrival order.
    """

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()
        self.state = GateState.AWAIT_KEYFRAME
        self._held: deque[_Frame] = deque()
        self._ref: _Frame | None = None
        self._anchor: _Frame | None = None
        """The newest frame submitted or safe: what a new frame is compared with."""
        self._in_flight: dict[int, tuple[_Frame, float]] = {}
        self._next_id = 0
        self._floor = 0
        """Verdicts on frames before this id never become the reference: after a drop or a
        block, forwarding resumes on a fresh verdict only."""
        self._last_submit = float("-inf")
        self._safe_since_block = False
        self.strikes = 0
        self.released = 0
        self.dropped = 0

    @property
    def held(self) -> int:
        """Frames waiting for a verdict."""
        return len(self._held)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- inputs -----------------------------------------------------------------------

    def on_frame(
        self, frame_id: int, keyframe: bool, signature: Signature | None, now: float
    ) -> list[Action]:
        """A frame arrived; ``signature`` None means it cannot be decoded (lost packets)."""
        out: list[Action] = []
        self._next_id = frame_id + 1
        self._expire(now, out)
        if signature is None:
            self._drop_held("undecodable", out)
            out.append(Drop(frame_id, "undecodable"))
            self.dropped += 1
            self._need_keyframe(out)
            return out
        f = _Frame(frame_id, keyframe, signature, now)
        if self.state is GateState.AWAIT_KEYFRAME:
            if not keyframe:
                self._drop(f, "awaiting_keyframe", out)
                out.append(RequestKeyframe())
                return out
            self.state = GateState.OPEN
            self._hold(f, now, out, "keyframe")
        elif self.state is GateState.BLOCKED:
            if keyframe or self._held:
                # a candidate keyframe for resuming, or a delta that depends on one
                self._hold(f, now, out, "keyframe" if keyframe else None)
            else:
                if self._periodic_due(now):  # not faster: a blocked sender sets the pace
                    self._submit(f, now, out)
                self._drop(f, "blocked", out)
                if self._safe_since_block:
                    out.append(RequestKeyframe())
        elif not self._held and self._covered(f):
            self._release(f, out)
            if self._periodic_due(now):
                self._submit(f, now, out)
        else:
            reason = "keyframe" if keyframe else "scene" if self._new_scene(f) else None
            self._hold(f, now, out, reason)
        self._check_bounds(now, out)
        return out

    def on_verdict(
        self, frame_id: int, safe: bool, label: str, score: float, now: float
    ) -> list[Action]:
        """The classifier's verdict on a frame submitted with :class:`Classify`.

        An unsafe verdict blocks even when it comes after the time-out: frames may have been
        released on the strength of an earlier verdict on the same scene.
        """
        out: list[Action] = []
        entry = self._in_flight.pop(frame_id, None)
        if not safe:
            self._ref = self._anchor = None
            self._floor = self._next_id
            self._safe_since_block = False
            self._drop_held("unsafe", out)
            if self.state is not GateState.BLOCKED:
                self.state = GateState.BLOCKED
                self.strikes += 1
                out.append(Blocked(label, score))
            return out
        if entry is None:
            return out  # timed out: frames behind it were already decided without it
        f = entry[0]
        if self._held and f.id >= self._held[0].id:
            f.safe = True  # the held queue is contiguous from its head: f is in it
        elif self.state is GateState.BLOCKED:
            self._safe_since_block = True  # on a dropped delta: now ask for a keyframe
            out.append(RequestKeyframe())
        elif f.id >= self._floor and (self._ref is None or f.id > self._ref.id):
            self._ref = f  # a frame released by coverage (periodic check), confirmed
        self._drain(now, out)
        return out

    def on_no_verdict(self, frame_id: int, now: float) -> list[Action]:
        """Classification failed or timed out: the frame stays unclassified (fail closed)."""
        out: list[Action] = []
        if self._forget(frame_id):
            self._drain(now, out)
        return out

    def on_tick(self, now: float) -> list[Action]:
        """Call periodically (e.g. every 100 ms): enforces hold and verdict time limits even
        when no frames arrive."""
        out: list[Action] = []
        self._expire(now, out)
        self._check_bounds(now, out)
        return out

    # -- helpers ----------------------------------------------------------------------

    def _covered(self, f: _Frame) -> bool:
        ref = self._ref
        return (
            ref is not None
            and self.state is GateState.OPEN
            and ref.id < f.id
            and f.arrival - ref.arrival <= self.config.verdict_ttl_s
            and signature_distance(f.signature, ref.signature) < self.config.scene_threshold
        )

    def _new_scene(self, f: _Frame) -> bool:
        a = self._anchor
        return (
            a is None
            or f.arrival - a.arrival > self.config.verdict_ttl_s
            or signature_distance(f.signature, a.signature) >= self.config.scene_threshold
        )

    def _periodic_due(self, now: float) -> bool:
        return now - self._last_submit >= 1.0 / self.config.min_classifications_per_s

    def _submit(self, f: _Frame, now: float, out: list[Action], reason: str = "periodic") -> None:
        if len(self._in_flight) >= self.config.max_in_flight:
            return
        self._in_flight[f.id] = (f, now)
        self._last_submit = now
        self._anchor = f
        out.append(Classify(f.id, reason))

    def _hold(self, f: _Frame, now: float, out: list[Action], classify: str | None) -> None:
        """Hold ``f``; submit it too if ``classify`` names a reason."""
        self._held.append(f)
        if classify is not None:
            self._submit(f, now, out, classify)

    def _release(self, f: _Frame, out: list[Action]) -> None:
        self.released += 1
        out.append(Release(f.id))

    def _drop(self, f: _Frame, reason: str, out: list[Action]) -> None:
        self.dropped += 1
        out.append(Drop(f.id, reason))

    def _drop_held(self, reason: str, out: list[Action]) -> None:
        while self._held:
            self._drop(self._held.popleft(), reason, out)

    def _need_keyframe(self, out: list[Action]) -> None:
        """Something was dropped: only a keyframe may be released next."""
        if self.state is GateState.OPEN:
            self.state = GateState.AWAIT_KEYFRAME
            self._ref = None
            self._floor = self._next_id
        if self.state is GateState.AWAIT_KEYFRAME or self._safe_since_block:
            out.append(RequestKeyframe())

    def _forget(self, frame_id: int) -> bool:
        """A request that will not be answered; True if it was outstanding."""
        entry = self._in_flight.pop(frame_id, None)
        if entry is None:
            return False
        if self._anchor is entry[0]:
            self._anchor = self._ref
        return True

    def _drain(self, now: float, out: list[Action]) -> None:
        """Release held frames from the head while a verdict covers them."""
        while self._held:
            f = self._held[0]
            if self.state is GateState.BLOCKED:
                if not (f.safe and f.keyframe):
                    if f.id not in self._in_flight:  # the keyframe will not be confirmed
                        self._drop_held("blocked", out)
                        self._need_keyframe(out)
                    return
                self.state = GateState.OPEN
                self._safe_since_block = False
                out.append(Resumed())
            if f.safe:
                self._ref = f
            elif not self._covered(f):
                if not any(i <= f.id for i in self._in_flight):
                    self._drop_held("unclassified", out)  # no pending verdict can cover it
                    self._need_keyframe(out)
                return
            self._held.popleft()
            self._release(f, out)

    def _expire(self, now: float, out: list[Action]) -> None:
        timeout = self.config.verdict_timeout_s
        late = [i for i, (_, t) in self._in_flight.items() if now - t > timeout]
        for i in late:
            self._forget(i)
        if late:
            self._drain(now, out)

    def _check_bounds(self, now: float, out: list[Action]) -> None:
        held = self._held
        if held and (
            now - held[0].arrival > self.config.max_hold_s
            or len(held) > self.config.max_held_frames
        ):
            self._drop_held("held_too_long", out)
            self._need_keyframe(out)
