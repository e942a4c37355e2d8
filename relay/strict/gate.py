"""The moderation gate of one moderated video stream: which frames may be forwarded, sans-I/O.

What lives here: the decision only. Frames (an id, keyframe or not, a scene signature or
"undecodable") and verdicts (safe/unsafe for one frame id) go in with the time; decisions come
out as :data:`Action` s. No pixels, no packets, no clock, no tasks: ``relay.strict.moderation``
does the decoding, the classifying and the forwarding, and this file can be tested exhaustively.

The invariant (fail closed): a frame is released only if it was classified safe (or a near miss)
itself, or it comes after a frame classified safe (the *reference*) in the same stream, shows the
same scene (signature distance below ``scene_threshold`` and its most-changed cells below
``scene_peak_threshold``, once a change of lighting over the whole picture is taken out) in no
more detail (``detail_growth``), and arrived at most ``verdict_ttl_s`` after it, with nothing
unsafe and no near miss since. A *near miss* (a score
under its threshold but within ``reference_margin`` of it, :class:`Finding`) is released alone and
never covers another frame: where the model's scores hover at a threshold, one frame scoring just
under must not open the gate for a second. After a block, forwarding resumes at a keyframe only
once ``resume_after_safe`` safe verdicts in a row (the keyframe's own included) came on frames
after it; for ``alert_s`` after a block, a resume or a near miss the periodic check runs at
``alert_classifications_per_s``. Frames are released in arrival order, so one frame waiting for its
verdict holds back the ones behind it. And after any frame was dropped, the receiver's decoder
lacks a reference, so nothing but a keyframe may follow.

The code is this table (:data:`TRANSITIONS`, row for row): an input is first named
(:class:`Input`; the guards in ``ModerationGate._frame_input``, ``_verdict_input`` and
``_head_input``, first match wins), then the row for (state, input) says what to do and the next
state (``-``: stay). An ``ANY`` row applies in every state:

============== ================== ================================================ =========
state          input              decision                                         next
============== ================== ================================================ =========
OPEN           UNDECODABLE        drop all held and the frame, lose the reference, AWAIT
                                  request a keyframe
AWAIT_KEYFRAME UNDECODABLE        drop all held and the frame, request a keyframe  -
BLOCKED        UNDECODABLE        drop all held and the frame; request a keyframe  -
                                  if enough safe verdicts came [1]
OPEN           COVERED            release (+ classify if the periodic check is     -
                                  due)
OPEN           KEYFRAME           hold, classify                                   -
OPEN           DELTA_BEHIND_HELD  hold; classify if a new scene (or the reference  -
                                  expired), or a settling cut's watch is due [4]
OPEN           DELTA              the same                                         -
AWAIT_KEYFRAME DELTA              drop, request a keyframe                         -
AWAIT_KEYFRAME KEYFRAME           hold, classify (released on its own verdict:     OPEN
                                  the drop cleared the reference)
BLOCKED        DELTA              classify if the periodic check is due (and       -
                                  request a keyframe if it shows a new scene [6]),
                                  drop, request a keyframe [1]
BLOCKED        DELTA_BEHIND_HELD  hold; classify if a new scene (or sharper) [5]   -
BLOCKED        KEYFRAME           hold, classify                                   -
OPEN           OVERDUE            drop all held, lose the reference, request a     AWAIT
                                  keyframe
BLOCKED        OVERDUE            drop all held, request a keyframe [1]            -
OPEN           UNSAFE             forget every verdict, drop all held, strike:     BLOCKED
                                  emit ``Blocked``
AWAIT_KEYFRAME UNSAFE             the same                                         BLOCKED
BLOCKED        UNSAFE             forget every verdict, drop all held (no second   -
                                  strike)
OPEN           NEAR_MISS_ON_HELD  distrust [2], mark the frame releasable alone,   -
                                  drain
BLOCKED        NEAR_MISS_ON_HELD  distrust [2], drain (it drops the frame)         -
ANY            NEAR_MISS          distrust [2], drain                              -
ANY            LATE               nothing: what it could cover was decided         -
ANY            NO_VERDICT         forget the request, drain                        -
ANY            TIMED_OUT          forget the request (then one drain for all)      -
OPEN           SAFE_ON_HELD       count it [3], mark the frame safe, settle the    -
                                  cut if it came settle_s after it [4], drain
BLOCKED        SAFE_ON_HELD       count it [3], mark the frame safe, drain         -
OPEN           SAFE_ON_PASSED     count it [3]; it becomes the reference if newer  -
                                  and after the last drop (a periodic check
                                  confirmed), drain
AWAIT_KEYFRAME SAFE_ON_PASSED     the same (it is from before the drop: nothing)   -
BLOCKED        SAFE_ON_PASSED     count it [3], request a keyframe if enough safe  -
                                  verdicts came [1] (the caller throttles), drain
OPEN           HEAD_SAFE_KEYFRAME release it; it becomes the reference if after the -
                                  last drop or near miss
OPEN           HEAD_SAFE          the same                                         -
OPEN           HEAD_NEAR_MISS     release it (not a reference)                     -
OPEN           HEAD_COVERED       release it                                       -
OPEN           HEAD_SETTLING      wait: from a cut not settled yet [4]             -
OPEN           HEAD_AWAITED       wait for its verdict                             -
OPEN           HEAD_MAYBE_COVERED wait: an earlier frame's verdict may become the  -
                                  reference
OPEN           HEAD_UNASKED       classify it [7]                                  -
OPEN           HEAD_UNCOVERED     drop all held, lose the reference, request a     AWAIT
                                  keyframe
BLOCKED        HEAD_SAFE_KEYFRAME emit ``Resumed``, new reference, release it      OPEN
BLOCKED        HEAD_SAFE          drop all held (safe, but too few safe verdicts   -
                                  in a row yet), request a keyframe [1]
BLOCKED        HEAD_NEAR_MISS     drop all held, request a keyframe [1]            -
BLOCKED        HEAD_AWAITED       wait for its verdict                             -
BLOCKED        HEAD_MAYBE_COVERED drop all held, request a keyframe [1]            -
BLOCKED        HEAD_UNCOVERED     drop all held, request a keyframe [1]            -
============== ================== ================================================ =========

[1] Blocked, a keyframe is requested only once ``resume_after_safe - 1`` safe verdicts in a row
(at least one) came since the block, so that the keyframe's own can complete the run: an
earlier one would not resume, and every keyframe costs the sender bitrate.

[2] Distrust: lose the reference and what a new frame is compared with (so the next frame is
classified, held until its own verdict), no verdict from before counts any more (a held frame
found safe before it is held as if unclassified: measured, a cut's coarse first frame, found
safe, went out once two later safe verdicts settled the cut although a near miss, 0.28 against
0.3, had come between), the run of safe verdicts starts again, and the periodic check runs at
the alert rate for ``alert_s``.

[3] A safe verdict on a frame after the last drop or block lengthens the run of safe verdicts
that lifts a block (``resume_after_safe``).

[4] Settling: a keyframe, or a frame that shows a new scene, is a *cut* (not while blocked, nor
when it shows the scene of a settled frame found safe). The encoder sends a cut coarse and draws
the detail in over the next frames, so a verdict on the cut says little. Frames from the cut on,
whatever else would release them, wait until ``settle_verdicts`` frames that arrived ``settle_s``
or more after the cut are found safe, with no near miss between; then they go on their own
verdicts or coverage as usual. A change of the whole picture meanwhile (the scene rule's mean,
lighting aside) that comes coarse (less detail than the frame before it, by ``detail_growth``)
or abrupt (changed by ``cut_change`` or more from the frame just before it) is a cut of its
own, next in line: once the one before it settled, frames from it on wait until frames that
came ``settle_s`` after it are found safe. Measured: a cut to the ``camera`` scene 0.1 s before
the previous cut settled went out on its own coarse verdicts, 10 frames of it; and one that
came sharp 0.1 s after frames could settle the previous cut, whose own first verdicts (0.0)
then settled it, 51 frames. Other cuts meanwhile do not put settling off: a moving picture is
a cut at every classification, and a camera that pans changes the whole picture but draws
nothing in coarse and little from one frame to the next.
Such a frame is classified when none that could settle the cut is in flight; waiting to settle
does not count against ``max_hold_s``. Before that, the cut is *watched*: its frames are
classified at ``alert_classifications_per_s`` (one slot kept free for the settling check), so
a face the encoder draws in is found as it shows and the scene blocked then. Measured
(decision log, 48 passes of the ``camera`` scene in capped Chromium calls): the face showed
0.25-1.0 s after the cut and scored 0.31-0.57 against 0.3 from then on; in 14 passes no frame
grew sharp enough to be classified between about 0.45 and 0.85 s, so the settling checks were
the first look at it, and two of them under the threshold (one verdict in 324 was) would have
let the whole scene go: one CI run of about 45 leaked 50 frames that way, it seems.

[5] Behind a held keyframe that may resume the stream: a keyframe after a block comes coarse,
and the frames after it are sharper than its verdict can cover. Unclassified, the first of
them was the head once the keyframe resumed, uncovered, and dropped everything (measured:
0.4 s of a safe scene lost each time, to a second keyframe).

[6] Blocked, a check on a frame that shows a new scene against the frame checked before it asks
for a keyframe at once: if the check finds the new scene safe, the keyframe that can lift the
block is already on its way, a round trip sooner than [1] would ask. A still picture never
asks; a moving one, at most as often as the caller's throttle lets it.

[7] A frame that found both classification slots taken when it came (a sharper frame, the
encoder refining a keyframe) waits for an earlier frame's verdict. Once it heads the queue and
none is outstanding, it is classified then, if a slot is free and it shows the reference's
scene (only sharper), instead of dropping everything held. Measured, after each resume: the
frames after a coarse keyframe grow sharper faster than two slots keep up with; the first that
found none was the head when the verdict before it came, and everything held was dropped for
a keyframe, 0.3-0.5 s of a safe scene each time. A frame already submitted (its request failed
or timed out, or a near miss voided its safe verdict) is dropped as before (fail closed); so is
one of another scene: in a moving picture every frame is one, and classifying each late held
the stream until ``max_hold_s`` (the other direction of the Chromium calls fell from 1.2-2.7
to 0.4-0.5 fps). Its classification does not move what new frames are compared with.

"Drain" releases held frames from the head while a verdict covers them: it names the head's
situation (the ``HEAD_*`` inputs) and follows that row, again while rows release. "Classify" is
bounded by ``max_in_flight`` outstanding requests; a frame that cannot be submitted is held and
may still be covered by a pending verdict on an earlier frame. Missing rows are inputs that
cannot occur in that state: only OPEN has a reference (COVERED); AWAIT_KEYFRAME never holds a
frame (every way into it drops all held, and a keyframe leaves it), so it has no ``HEAD_*``,
``DELTA_BEHIND_HELD``, ``SAFE_ON_HELD``, ``NEAR_MISS_ON_HELD`` or ``OVERDUE`` rows; a held
frame's own verdict in BLOCKED is on a keyframe (``HEAD_SAFE`` there is a keyframe whose run of
safe verdicts is still too short), and in BLOCKED no reference covers anything (nor makes a
head ``HEAD_UNASKED``, [7]).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from fastpath.scene import peak_change, signature_distance

Signature = NDArray[np.float32]


class Finding(enum.Enum):
    """What a classification found, as the gate needs it (``relay.strict.block_policy``)."""

    SAFE = "safe"
    """Every blocked label's score is under its threshold by more than the margin."""
    NEAR_MISS = "near_miss"
    """Under every threshold, but within the margin of one: the frame may go, nothing else."""
    UNSAFE = "unsafe"


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
    scene_peak_cells: int = 16
    """How many of the most-changed signature cells :attr:`scene_peak_threshold` averages."""
    scene_peak_threshold: float = 40.0
    """Mean change of the ``scene_peak_cells`` most-changed cells (0-255) at or above which a
    frame shows a new scene even when the mean over the grid barely moved: a change confined
    to part of the picture."""
    detail_growth: float = 0.1
    """A frame whose detail (``fastpath.scene.luma_detail``) exceeds the reference's by more
    than this fraction is not covered by it, and is classified itself: after a cut, a
    keyframe or a drop, a real-time encoder refines a coarse picture over about a second, and a
    verdict on the coarse frame (the model found no face in Chromium's first frames of a
    scene) must not vouch for the sharper frames after it."""
    settle_s: float = 1.0
    """After a cut (a keyframe, or a frame that shows a new scene), no frame from the cut on
    is forwarded until ``settle_verdicts`` frames that arrived at least this long after it
    were found safe; meanwhile frames wait (``max_hold_s`` plus this, and a frame cap grown in
    proportion). Why: the encoder sends a cut coarse and draws the detail in over the next
    frames, and a verdict on a coarse frame says nothing (Chromium: the model scored the first
    frames of an unsafe scene 0.0, then 0.25-0.28, and only 8-10 frames after the cut above
    the threshold). How long the drawing takes depends on the encoder's bitrate: 0.3 s held
    in quiet calls, but in a call's first seconds (the encoder still ramping up) the model
    scored the unsafe scene 0.0 on sharp-looking frames until 0.93 s after the cut, and 28-58
    frames leaked. 0: off."""
    cut_change: float = 20.0
    """A frame whose mean change from the frame just before it (the scene rule's mean, lighting
    aside) is at least this is a cut of its own even while another cut settles, however much
    detail it shows (module docstring, [4]). Measured on photographs: a pan of up to 12 px a
    frame changes consecutive frames by at most 10.3, a cut between two photographs by 28-71.
    Why: a 40 s Chromium call leaked 51 frames, the whole first pass of its ``camera`` scene,
    which came sharp (detail 3.0 against 2.7) 0.1 s after the previous cut could settle; two
    verdicts on the new scene's first, coarse frames (0.0) settled the old cut, and the new
    scene went out on them until a re-check 1.1 s later scored 0.36."""
    settle_verdicts: int = 2
    """Safe verdicts, on as many frames that came ``settle_s`` after the cut, that settle it:
    the model missed the face on single sharp frames (0.0 where the next scored 0.59)."""
    detail_noise: float = 0.25
    """Detail changes up to this much (absolute) are noise, whatever ``detail_growth`` says: a
    flat, dark picture measured 0.93-1.3 from one Chromium frame to the next, and every frame
    of it was classified."""
    verdict_ttl_s: float = 1.0
    """How much later than a safe frame another frame may arrive and still be covered by it."""
    min_classifications_per_s: float = 2.0
    """Classify at least this often even when the scene does not change."""
    max_hold_s: float = 0.5
    """A frame held longer than this is dropped with everything behind it."""
    max_held_frames: int = 30
    max_in_flight: int = 2
    """Classification requests outstanding at once (each needs its own tensor buffer); the
    periodic check takes one only while another stays free for a frame that waits."""
    verdict_timeout_s: float = 1.0
    """A request unanswered for this long counts as no verdict (if the caller did not say)."""
    resume_after_safe: int = 2
    """Safe verdicts in a row, on frames after the block, that lift it (the last one on the
    keyframe that resumes)."""
    alert_s: float = 2.0
    """How long after a block, a resume or a near miss the periodic check runs faster."""
    alert_classifications_per_s: float = 5.0
    """The periodic check's rate while alert (and while blocked)."""


@dataclass(frozen=True, slots=True)
class Release:
    """Forward this frame's packets now."""

    frame_id: int
    settling: bool = field(default=False, compare=False)
    """It came while a cut was unsettled (or was the cut), so it waited ``settle_s`` by design
    ([4]), not only for verdicts: operators and the benchmark keep this wait apart, or a
    settling second hides how long verdicts take (what CPU saturation lengthens)."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Never forward this frame (its packets can be discarded)."""

    frame_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Classify:
    """Submit this frame (the one just passed to :meth:`ModerationGate.on_frame`, or for
    ``late`` the held one at the head) to the classifier and report back with
    :meth:`ModerationGate.on_verdict` or ``on_no_verdict``."""

    frame_id: int
    reason: str = field(default="periodic", compare=False)
    """Why: ``keyframe``, ``scene`` (new scene, expired reference or sharper), ``settle``, ``watch``
    ([4]) or ``late`` ([7]) for a frame the gate holds until this verdict, ``periodic`` for the
    minimum rate on a frame already decided, ``resume`` for the check on a frame dropped while
    blocked. Held ones delay the stream, so the caller serves them first, and so it does a resume
    check: blocked, the stream forwards nothing until one finds the scene safe (measured in a
    Chromium call whose other direction kept the classifier busy, as routine requests these waited
    p50 362 ms and 11 of 36 timed out, so each safe scene after a blocked one started 0.5-1.6 s
    late). Not part of the identity."""


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


class Input(enum.Enum):
    """What happened, as the table tells inputs apart."""

    # a frame arrived (on_frame), first matching guard wins
    UNDECODABLE = "undecodable frame (lost packets, decoder error)"
    COVERED = "nothing held, and the reference covers the frame"
    KEYFRAME = "keyframe"
    DELTA_BEHIND_HELD = "delta frame behind a held one"
    DELTA = "delta frame, nothing held"
    # the held queue (after every frame, on_tick)
    OVERDUE = "the oldest held frame waited max_hold_s, or more than max_held_frames are held"
    # a classification request ended (on_verdict, on_no_verdict, time-outs)
    UNSAFE = "verdict unsafe (even after its time-out)"
    NEAR_MISS_ON_HELD = "verdict near miss on a frame still held"
    NEAR_MISS = "verdict near miss on a frame released, dropped or timed out"
    LATE = "verdict on a request that is no longer outstanding"
    NO_VERDICT = "the caller reports no verdict (error, time-out)"
    TIMED_OUT = "no verdict within verdict_timeout_s"
    SAFE_ON_HELD = "verdict safe on a frame still held"
    SAFE_ON_PASSED = "verdict safe on a frame already released or dropped"
    # the head of the held queue (drain)
    HEAD_SAFE_KEYFRAME = "its own safe verdict, a keyframe, and enough safe verdicts in a row"
    HEAD_SAFE = "its own safe verdict"
    HEAD_NEAR_MISS = "its own verdict, a near miss"
    HEAD_COVERED = "the reference covers it"
    HEAD_SETTLING = "one of the above, but from a cut that no later, settled frame confirmed"
    HEAD_AWAITED = "its own verdict is outstanding"
    HEAD_MAYBE_COVERED = "an earlier frame's verdict is outstanding"
    HEAD_UNASKED = "never submitted, the reference's scene, no cover outstanding, a slot free"
    HEAD_UNCOVERED = "nothing outstanding can cover it (nor [7] applies)"


class Op(enum.Enum):
    """The steps a row is made of (carried out by ``ModerationGate._do``)."""

    HOLD = enum.auto()
    RELEASE = enum.auto()
    """The frame that just arrived."""
    RELEASE_HEAD = enum.auto()
    DROP = enum.auto()
    DROP_HELD = enum.auto()
    CLASSIFY = enum.auto()
    CLASSIFY_LATE = enum.auto()
    """A held frame at the head, now that a slot is free ([7]); the comparison frame stays."""
    CLASSIFY_IF_DUE = enum.auto()
    """Periodic: at least ``min_classifications_per_s``."""
    CLASSIFY_IF_NEW_SCENE = enum.auto()
    """Unlike the last frame submitted or found safe (a cut: it also starts settling), later
    than its ``verdict_ttl_s``, or sharper; else the settling check if one is due."""
    REQUEST_KEYFRAME = enum.auto()
    REQUEST_KEYFRAME_IF_SAFE_SEEN = enum.auto()
    """Blocked: only once enough safe verdicts came in a row for the keyframe's own to lift
    the block (a keyframe before that would not resume, and PLIs cost the sender bitrate)."""
    LOSE_REFERENCE = enum.auto()
    """After a drop: no verdict from before it covers anything any more."""
    FORGET_VERDICTS = enum.auto()
    """After an unsafe verdict: as ``DISTRUST``, and the verdict strikes."""
    DISTRUST = enum.auto()
    """After a near miss: as ``LOSE_REFERENCE``, no scene counts as classified, the run of
    safe verdicts starts again, the periodic check is alert."""
    MARK_NEAR_MISS = enum.auto()
    STRIKE = enum.auto()
    RESUME = enum.auto()
    MARK_SAFE = enum.auto()
    CONFIRM_REFERENCE = enum.auto()
    """A frame released by coverage (a periodic check) was found safe: it becomes the
    reference if it is newer than the current one and after the last drop."""
    SET_REFERENCE = enum.auto()
    """A held frame's own safe verdict: it becomes the reference if it is after the last drop,
    block or near miss."""
    COUNT_SAFE = enum.auto()
    CONFIRM_SETTLE = enum.auto()
    """A held frame found safe that arrived ``settle_s`` or more after the cut counts towards
    ``settle_verdicts``; with enough, the frames since the cut may go."""
    FORGET_REQUEST = enum.auto()
    DRAIN = enum.auto()


@dataclass(frozen=True, slots=True)
class Row:
    steps: tuple[tuple[Op, str], ...]
    """Each step with its reason (for drops and classifications), in order."""
    then: GateState | None = None
    """The next state; None: stay."""


def _row(*steps: Op | tuple[Op, str], then: GateState | None = None) -> Row:
    return Row(tuple(s if isinstance(s, tuple) else (s, "") for s in steps), then)


ANY: Final = None
"""A row for every state that has none of its own."""

_OPEN, _AWAIT, _BLOCKED = GateState.OPEN, GateState.AWAIT_KEYFRAME, GateState.BLOCKED
_I, _O = Input, Op
_RESTART_AT_KEYFRAME = (_O.LOSE_REFERENCE, _O.REQUEST_KEYFRAME)
"""What a drop costs a forwarding stream: its reference, and it starts again at a keyframe."""

TRANSITIONS: Final[Mapping[tuple[GateState | None, Input], Row]] = {
    # -- a frame arrives
    (_OPEN, _I.UNDECODABLE): _row(
        (_O.DROP_HELD, "undecodable"), (_O.DROP, "undecodable"), *_RESTART_AT_KEYFRAME,
        then=_AWAIT,
    ),
    (_AWAIT, _I.UNDECODABLE): _row(
        (_O.DROP_HELD, "undecodable"), (_O.DROP, "undecodable"), _O.REQUEST_KEYFRAME
    ),
    (_BLOCKED, _I.UNDECODABLE): _row(
        (_O.DROP_HELD, "undecodable"), (_O.DROP, "undecodable"), _O.REQUEST_KEYFRAME_IF_SAFE_SEEN
    ),
    (_OPEN, _I.COVERED): _row(_O.RELEASE, _O.CLASSIFY_IF_DUE),
    (_OPEN, _I.KEYFRAME): _row(_O.HOLD, (_O.CLASSIFY, "keyframe")),
    (_OPEN, _I.DELTA_BEHIND_HELD): _row(_O.HOLD, _O.CLASSIFY_IF_NEW_SCENE),
    (_OPEN, _I.DELTA): _row(_O.HOLD, _O.CLASSIFY_IF_NEW_SCENE),
    (_AWAIT, _I.DELTA): _row((_O.DROP, "awaiting_keyframe"), _O.REQUEST_KEYFRAME),
    (_AWAIT, _I.KEYFRAME): _row(_O.HOLD, (_O.CLASSIFY, "keyframe"), then=_OPEN),
    (_BLOCKED, _I.DELTA): _row(
        _O.CLASSIFY_IF_DUE, (_O.DROP, "blocked"), _O.REQUEST_KEYFRAME_IF_SAFE_SEEN
    ),
    (_BLOCKED, _I.DELTA_BEHIND_HELD): _row(_O.HOLD, _O.CLASSIFY_IF_NEW_SCENE),
    (_BLOCKED, _I.KEYFRAME): _row(_O.HOLD, (_O.CLASSIFY, "keyframe")),
    # -- the held queue is over its bounds
    (_OPEN, _I.OVERDUE): _row((_O.DROP_HELD, "held_too_long"), *_RESTART_AT_KEYFRAME, then=_AWAIT),
    (_BLOCKED, _I.OVERDUE): _row(
        (_O.DROP_HELD, "held_too_long"), _O.REQUEST_KEYFRAME_IF_SAFE_SEEN
    ),
    # -- a classification request ends
    (_OPEN, _I.UNSAFE): _row(
        _O.FORGET_VERDICTS, (_O.DROP_HELD, "unsafe"), _O.STRIKE, then=_BLOCKED
    ),
    (_AWAIT, _I.UNSAFE): _row(
        _O.FORGET_VERDICTS, (_O.DROP_HELD, "unsafe"), _O.STRIKE, then=_BLOCKED
    ),
    (_BLOCKED, _I.UNSAFE): _row(_O.FORGET_VERDICTS, (_O.DROP_HELD, "unsafe")),
    (_OPEN, _I.NEAR_MISS_ON_HELD): _row(_O.DISTRUST, _O.MARK_NEAR_MISS, _O.DRAIN),
    (_BLOCKED, _I.NEAR_MISS_ON_HELD): _row(_O.DISTRUST, _O.DRAIN),
    (ANY, _I.NEAR_MISS): _row(_O.DISTRUST, _O.DRAIN),
    (ANY, _I.LATE): _row(),
    (ANY, _I.NO_VERDICT): _row(_O.FORGET_REQUEST, _O.DRAIN),
    (ANY, _I.TIMED_OUT): _row(_O.FORGET_REQUEST),
    (_OPEN, _I.SAFE_ON_HELD): _row(_O.COUNT_SAFE, _O.MARK_SAFE, _O.CONFIRM_SETTLE, _O.DRAIN),
    (_BLOCKED, _I.SAFE_ON_HELD): _row(_O.COUNT_SAFE, _O.MARK_SAFE, _O.DRAIN),
    (_OPEN, _I.SAFE_ON_PASSED): _row(_O.COUNT_SAFE, _O.CONFIRM_REFERENCE, _O.DRAIN),
    (_AWAIT, _I.SAFE_ON_PASSED): _row(_O.COUNT_SAFE, _O.CONFIRM_REFERENCE, _O.DRAIN),
    (_BLOCKED, _I.SAFE_ON_PASSED): _row(
        _O.COUNT_SAFE, _O.REQUEST_KEYFRAME_IF_SAFE_SEEN, _O.DRAIN
    ),
    # -- drain: the head of the held queue
    (_OPEN, _I.HEAD_SAFE_KEYFRAME): _row(_O.SET_REFERENCE, _O.RELEASE_HEAD),
    (_OPEN, _I.HEAD_SAFE): _row(_O.SET_REFERENCE, _O.RELEASE_HEAD),
    (_OPEN, _I.HEAD_NEAR_MISS): _row(_O.RELEASE_HEAD),
    (_OPEN, _I.HEAD_COVERED): _row(_O.RELEASE_HEAD),
    (_OPEN, _I.HEAD_SETTLING): _row(),
    (_OPEN, _I.HEAD_AWAITED): _row(),
    (_OPEN, _I.HEAD_MAYBE_COVERED): _row(),
    (_OPEN, _I.HEAD_UNASKED): _row((_O.CLASSIFY_LATE, "late")),
    (_OPEN, _I.HEAD_UNCOVERED): _row(
        (_O.DROP_HELD, "unclassified"), *_RESTART_AT_KEYFRAME, then=_AWAIT
    ),
    (_BLOCKED, _I.HEAD_SAFE_KEYFRAME): _row(
        _O.RESUME, _O.SET_REFERENCE, _O.RELEASE_HEAD, then=_OPEN
    ),
    (_BLOCKED, _I.HEAD_SAFE): _row((_O.DROP_HELD, "blocked"), _O.REQUEST_KEYFRAME_IF_SAFE_SEEN),
    (_BLOCKED, _I.HEAD_NEAR_MISS): _row(
        (_O.DROP_HELD, "blocked"), _O.REQUEST_KEYFRAME_IF_SAFE_SEEN
    ),
    (_BLOCKED, _I.HEAD_AWAITED): _row(),
    (_BLOCKED, _I.HEAD_MAYBE_COVERED): _row(
        (_O.DROP_HELD, "blocked"), _O.REQUEST_KEYFRAME_IF_SAFE_SEEN
    ),
    (_BLOCKED, _I.HEAD_UNCOVERED): _row(
        (_O.DROP_HELD, "blocked"), _O.REQUEST_KEYFRAME_IF_SAFE_SEEN
    ),
}  # fmt: skip
"""The gate, row by row (the module docstring's table)."""


@dataclass(slots=True)
class _Frame:
    id: int
    keyframe: bool
    signature: Signature
    arrival: float
    detail: float = 0.0
    safe: bool = False
    """Its own safe verdict arrived (while it was held)."""
    near_miss: bool = False
    """Its own verdict, a near miss, arrived while it was held: it may go, alone."""
    asked: bool = False
    """It was submitted (a frame whose request failed, or whose verdict a near miss voided,
    is not asked again: fail closed)."""
    settling: bool = False
    """It came while a cut was unsettled, or was the cut (:attr:`Release.settling`)."""


_UNDECODABLE: Final = np.zeros(0, np.float32)
"""Stands in for the signature of a frame that could not be decoded: never compared (its
row drops it)."""


MAX_NEXT_CUTS: Final = 16
"""Cuts remembered in line while one settles (each holds its frames until it settles, so the
hold budget drops them long before this many come)."""


def _relit(f: Signature, g: Signature) -> Signature:
    """``f`` brightened or darkened by the median of what separates it from ``g``: what is
    left is content, not lighting. Why: a change of lighting over the whole picture (a lamp,
    the camera's exposure; Chromium's fake camera ramps its background by 1.2 grey levels a
    frame) moved the mean past ``scene_threshold`` and made a cut that waited ``settle_s``,
    although nothing new was in the picture. The median ignores a change confined to part of
    the picture (under half of it), which therefore still counts in full. ``np.partition``
    rather than ``np.median``: a fifth of the cost, on every frame's comparisons."""
    d = (g - f).ravel()
    k = d.size // 2
    relit: Signature = f + np.partition(d, k)[k]
    return relit


def _mean_change(f: Signature, g: Signature) -> float:
    """The scene rule's mean (``signature_distance``) between ``f`` and ``g``, lighting aside."""
    return signature_distance(_relit(f, g), g)


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
        self._safe_run = 0
        """Safe verdicts in a row on frames from ``_floor`` on (a block or a near miss ends
        the run)."""
        self._alert_until = float("-inf")
        self._cut: _Frame | None = None
        """The first frame of the cut being settled (None: none is): it and every frame
        after it wait for ``_settled``."""
        self._settle_after = float("-inf")
        """A safe verdict on a frame that arrived from then on settles the cut."""
        self._settled: _Frame | None = None
        """The frame whose safe verdict settled the cut."""
        self._settle_votes = 0
        """Safe verdicts so far on frames that came ``settle_s`` after the cut."""
        self._next_cuts: deque[_Frame] = deque()
        """Coarse or abrupt changes of the whole picture while the cut settled, oldest first:
        each settles in turn once the one before it has (module docstring, [4])."""
        self._previous: _Frame | None = None
        """The last decodable frame (an abrupt change from it is a cut of its own, [4])."""
        self._last_checked: _Frame | None = None
        """The frame submitted last, whatever its verdict (blocked, [6] compares with it)."""
        self._vouched: _Frame | None = None
        """The newest frame found safe outside a cut's settling: a keyframe re-sent after a
        drop that shows its scene is no cut. An unsafe verdict or a near miss forgets it."""
        self.strikes = 0
        self.released = 0
        self.dropped = 0
        self.trace: Callable[[Input], None] | None = None
        """Told every input the gate names, in order (``relay.strict.decision_log``): which
        rows let a frame through is what a leak's post-mortem needs."""

    @property
    def held(self) -> int:
        """Frames waiting for a verdict."""
        return len(self._held)

    @property
    def awaiting_cover(self) -> bool:
        """The oldest held frame waits for the verdict on an earlier frame (a periodic re-check
        still in flight) that may cover it: the caller then hurries that request. Not while a
        cut settles: frames then wait for verdicts of their own, and hurrying every re-check
        made the held frames of other streams wait behind them (measured in the in-process
        strict benchmark: verdicts p50 84 -> 388 ms, 832 frames dropped as held too long)."""
        return bool(self._held) and self._head_input(self._held[0]) is Input.HEAD_MAYBE_COVERED

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- inputs -----------------------------------------------------------------------

    def on_frame(
        self,
        frame_id: int,
        keyframe: bool,
        signature: Signature | None,
        now: float,
        detail: float = 0.0,
    ) -> list[Action]:
        """A frame arrived; ``signature`` None means it cannot be decoded (lost packets);
        ``detail``: its ``fastpath.scene.luma_detail`` (0 for callers that do not measure it:
        then detail never tells frames apart)."""
        out: list[Action] = []
        self._next_id = frame_id + 1
        self._expire(now, out)
        sig = _UNDECODABLE if signature is None else signature
        f = _Frame(frame_id, keyframe, sig, now, detail)
        self._step(self._frame_input(f, signature is None), f, now, out)
        f.settling = self._unsettled(f)
        if signature is not None:
            self._previous = f
        self._check_bounds(now, out)
        return out

    def on_verdict(
        self, frame_id: int, finding: Finding, label: str, score: float, now: float
    ) -> list[Action]:
        """The classifier's verdict on a frame submitted with :class:`Classify`.

        An unsafe verdict blocks, and a near miss distrusts, even when it comes after the
        time-out: frames may have been released on the strength of an earlier verdict on the
        same scene.
        """
        out: list[Action] = []
        entry = self._in_flight.pop(frame_id, None)
        f = None if entry is None else entry[0]
        self._step(self._verdict_input(f, finding), f, now, out, label, score)
        return out

    def on_no_verdict(self, frame_id: int, now: float) -> list[Action]:
        """Classification failed or timed out: the frame stays unclassified (fail closed)."""
        out: list[Action] = []
        entry = self._in_flight.get(frame_id)
        if entry is None:
            self._step(Input.LATE, None, now, out)
        else:
            self._step(Input.NO_VERDICT, entry[0], now, out)
        return out

    def on_tick(self, now: float) -> list[Action]:
        """Call periodically (e.g. every 100 ms): enforces hold and verdict time limits even
        when no frames arrive."""
        out: list[Action] = []
        self._expire(now, out)
        self._check_bounds(now, out)
        return out

    # -- naming the input (the guards, first match wins) ------------------------------

    def _frame_input(self, f: _Frame, undecodable: bool) -> Input:
        if undecodable:
            return Input.UNDECODABLE
        if not self._held and self._covered(f) and not self._unsettled(f):
            return Input.COVERED
        if f.keyframe:
            return Input.KEYFRAME
        return Input.DELTA_BEHIND_HELD if self._held else Input.DELTA

    def _verdict_input(self, f: _Frame | None, finding: Finding) -> Input:
        if finding is Finding.UNSAFE:
            return Input.UNSAFE
        # the held queue is contiguous from its head: a frame from there on is in it
        held = f is not None and bool(self._held) and f.id >= self._held[0].id
        if finding is Finding.NEAR_MISS:
            return Input.NEAR_MISS_ON_HELD if held else Input.NEAR_MISS
        if f is None:
            return Input.LATE
        return Input.SAFE_ON_HELD if held else Input.SAFE_ON_PASSED

    def _head_input(self, f: _Frame) -> Input:
        if (f.safe or f.near_miss or self._covered(f)) and self._unsettled(f):
            return Input.HEAD_SETTLING
        if f.safe:
            if f.keyframe and self._safe_run >= self.config.resume_after_safe:
                return Input.HEAD_SAFE_KEYFRAME
            return Input.HEAD_SAFE
        if f.near_miss:
            return Input.HEAD_NEAR_MISS
        if self._covered(f):
            return Input.HEAD_COVERED
        if f.id in self._in_flight:
            return Input.HEAD_AWAITED
        if any(i < f.id for i in self._in_flight):
            return Input.HEAD_MAYBE_COVERED
        if (
            not f.asked
            and len(self._in_flight) < self.config.max_in_flight
            and (ref := self._ref) is not None
            and not self._scene_change(f, ref)
        ):
            return Input.HEAD_UNASKED
        return Input.HEAD_UNCOVERED

    # -- following the table ----------------------------------------------------------

    def _step(
        self,
        event: Input,
        f: _Frame | None,
        now: float,
        out: list[Action],
        label: str = "",
        score: float = 0.0,
    ) -> None:
        """Carry out the row for (state, ``event``) about frame ``f``."""
        if self.trace is not None:
            self.trace(event)
        row = TRANSITIONS.get((self.state, event)) or TRANSITIONS[ANY, event]
        for op, reason in row.steps:
            self._do(op, reason, f, now, out, label, score)
        if row.then is not None:
            self.state = row.then

    def _do(
        self,
        op: Op,
        reason: str,
        f: _Frame | None,
        now: float,
        out: list[Action],
        label: str,
        score: float,
    ) -> None:
        """One step of a row; which steps, in which state, is the table's business."""
        match op:
            case Op.DROP_HELD:
                while self._held:
                    self._drop(self._held.popleft(), reason, out)
            case Op.REQUEST_KEYFRAME:
                out.append(RequestKeyframe())
            case Op.REQUEST_KEYFRAME_IF_SAFE_SEEN:
                if self._safe_run >= max(1, self.config.resume_after_safe - 1):
                    out.append(RequestKeyframe())
            case Op.LOSE_REFERENCE:
                self._ref = None
                self._floor = self._next_id
                self._cut = None  # every frame since the cut was dropped
                self._next_cuts.clear()
            case Op.FORGET_VERDICTS | Op.DISTRUST:
                if op is Op.FORGET_VERDICTS:
                    self._cut = None  # blocked: every frame held was dropped
                    self._next_cuts.clear()
                self._ref = self._anchor = self._vouched = None
                self._settle_votes = 0
                self._floor = self._next_id
                for held in self._held:  # a held frame's own safe verdict is from before too
                    held.safe = False
                self._safe_run = 0
                self._alert_until = now + self.config.alert_s
            case Op.STRIKE:
                self.strikes += 1
                out.append(Blocked(label, score))
            case Op.DRAIN:
                self._drain(now, out)
            case _:
                assert f is not None, op  # the remaining steps are about a frame
                self._do_on_frame(op, reason, f, now, out)

    def _do_on_frame(self, op: Op, reason: str, f: _Frame, now: float, out: list[Action]) -> None:
        match op:
            case Op.HOLD:
                self._held.append(f)
            case Op.RELEASE:
                self._release(f, out)
            case Op.RELEASE_HEAD:
                self._release(self._held.popleft(), out)
            case Op.DROP:
                self._drop(f, reason, out)
            case Op.CLASSIFY:
                self._start_settling(f)
                self._submit(f, now, out, reason)
            case Op.CLASSIFY_LATE:
                anchor = self._anchor
                self._submit(f, now, out, reason)
                if anchor is not None and anchor.id > f.id:
                    self._anchor = anchor
            case Op.CLASSIFY_IF_DUE:
                due = now - self._last_submit >= 1.0 / self._periodic_rate(now)
                # the last slot is kept for a frame that waits for its own verdict: a held
                # frame that found none free was dropped unclassified (measured in Chromium
                # calls: the first sharper frame after a cut, behind a periodic check)
                if due and len(self._in_flight) < max(1, self.config.max_in_flight - 1):
                    if self.state is GateState.BLOCKED:
                        last = self._last_checked
                        self._submit(f, now, out, "resume")
                        if last is not None and self._scene_change(f, last):
                            out.append(RequestKeyframe())  # [6]
                    else:
                        self._submit(f, now, out, "periodic")
            case Op.CLASSIFY_IF_NEW_SCENE:
                a = self._anchor
                if a is None or self._scene_change(f, a):
                    self._start_settling(f)
                    self._submit(f, now, out, "scene")
                elif f.arrival - a.arrival > self.config.verdict_ttl_s or self._sharper(f, a):
                    self._submit(f, now, out, "scene")
                elif self._settling_check_due(f):
                    self._submit(f, now, out, "settle")
                elif self._settling_watch_due(f, now):
                    self._submit(f, now, out, "watch")
            case Op.RESUME:
                self._alert_until = now + self.config.alert_s
                out.append(Resumed())
            case Op.MARK_SAFE:
                f.safe = True
            case Op.MARK_NEAR_MISS:
                f.near_miss = True
            case Op.CONFIRM_SETTLE:
                if self._settling and f.arrival >= self._settle_after:
                    self._settle_votes += 1
                    if self._settle_votes >= self.config.settle_verdicts:
                        self._settled = self._vouched = f
                        self._settle_next(f)
            case Op.COUNT_SAFE:
                if f.id >= self._floor:
                    self._safe_run += 1
            case Op.CONFIRM_REFERENCE:
                if f.id >= self._floor and (self._ref is None or f.id > self._ref.id):
                    self._ref = f
                    self._vouch(f)
            case Op.SET_REFERENCE:
                if f.id >= self._floor:  # a verdict from before a near miss vouches for no other
                    self._ref = f
                    self._vouch(f)
            case Op.FORGET_REQUEST:
                self._in_flight.pop(f.id, None)
                if self._anchor is f:
                    self._anchor = self._ref
            case _:
                raise AssertionError(f"unhandled step {op}")

    # -- helpers ----------------------------------------------------------------------

    def _vouch(self, f: _Frame) -> None:
        """``f`` was found safe and released: outside a cut's settling, it vouches for its
        scene."""
        if not self._unsettled(f) and (self._vouched is None or f.id > self._vouched.id):
            self._vouched = f

    def _start_settling(self, f: _Frame) -> None:
        """``f`` is a cut: frames from here on wait until ``settle_verdicts`` frames that
        arrived ``settle_s`` later are found safe. Not when it shows the scene of a settled
        frame found safe (a keyframe the relay asked for after a drop: coarse, but the scene
        was judged sharp). Another cut while one settles waits in line only when it changes
        the whole picture and comes coarse (module docstring, [4]): a moving picture is a cut
        at every classification, and must not wait for ever."""
        c = self.config
        if c.settle_s <= 0 or self.state is GateState.BLOCKED:
            return
        if self._vouched is not None and not self._scene_change(f, self._vouched):
            return
        if not self._settling:
            self._cut, self._settled, self._settle_votes = f, None, 0
            self._settle_after = f.arrival + c.settle_s
        elif len(self._next_cuts) < MAX_NEXT_CUTS and (
            (  # coarse: less detail than the frame classified before it, and the picture moved
                (a := self._anchor) is not None
                and a is not f
                and f.detail * (1.0 + c.detail_growth) < a.detail
                and _mean_change(f.signature, a.signature) >= c.scene_threshold
            )
            or (  # abrupt: the whole picture changed from the frame just before it
                (p := self._previous) is not None
                and _mean_change(f.signature, p.signature) >= c.cut_change
            )
        ):
            self._next_cuts.append(f)

    def _settle_next(self, f: _Frame) -> None:
        """The cut settled on ``f``'s verdict: the next one in line, if one came meanwhile,
        settles now, and ``f`` counts towards it if it came late enough."""
        c = self.config
        while self._next_cuts:
            cut = self._next_cuts.popleft()
            self._cut, self._settled, self._settle_votes = cut, None, 0
            self._settle_after = cut.arrival + c.settle_s
            if f.arrival < self._settle_after:
                return
            self._settle_votes = 1
            if self._settle_votes < c.settle_verdicts:
                return
            self._settled = f

    @property
    def _settling(self) -> bool:
        """A cut waits to settle."""
        return self._cut is not None and self._settled is None

    def _unsettled(self, f: _Frame) -> bool:
        """Whether ``f`` is from a cut not settled yet (once settled, frames go on their own
        verdicts or coverage, as before the cut)."""
        cut = self._cut
        return cut is not None and f.id >= cut.id and self._settled is None

    def _settling_check_due(self, f: _Frame) -> bool:
        """A cut is unsettled, ``f`` arrived late enough to settle it, and no frame that
        could is being classified."""
        return (
            self._settling
            and f.arrival >= self._settle_after
            and not any(g.arrival >= self._settle_after for g, _ in self._in_flight.values())
        )

    def _settling_watch_due(self, f: _Frame, now: float) -> bool:
        """A cut is unsettled, ``f`` arrived before it can settle, and the alert rate says a
        check is due; a slot stays free for the settling check ([4])."""
        c = self.config
        return (
            self._settling
            and f.arrival < self._settle_after
            and now - self._last_submit >= 1.0 / c.alert_classifications_per_s
            and len(self._in_flight) < max(1, c.max_in_flight - 1)
        )

    def _covered(self, f: _Frame) -> bool:
        ref = self._ref
        return (
            ref is not None
            and self.state is GateState.OPEN
            and ref.id < f.id
            and f.arrival - ref.arrival <= self.config.verdict_ttl_s
            and self._same_scene(f, ref)
        )

    def _same_scene(self, f: _Frame, g: _Frame) -> bool:
        """Whether ``g``'s verdict can speak for ``f``: the same scene, and ``f`` not much
        sharper."""
        return not self._sharper(f, g) and not self._scene_change(f, g)

    def _sharper(self, f: _Frame, g: _Frame) -> bool:
        """``f`` shows much more detail than ``g``: an encoder refining a coarse picture."""
        c = self.config
        return f.detail > max(g.detail * (1.0 + c.detail_growth), g.detail + c.detail_noise)

    def _scene_change(self, f: _Frame, g: _Frame) -> bool:
        """Far on average, or much changed somewhere: a change confined to part of the
        picture (someone entering one corner) is a new scene too."""
        c = self.config
        fg = _relit(f.signature, g.signature)
        return (
            signature_distance(fg, g.signature) >= c.scene_threshold
            or peak_change(fg, g.signature, c.scene_peak_cells) >= c.scene_peak_threshold
        )

    def _periodic_rate(self, now: float) -> float:
        """Classifications per second of frames already decided: faster while blocked and
        for a while after a block, a resume or a near miss, when the scene is in doubt."""
        c = self.config
        if self.state is GateState.BLOCKED or now < self._alert_until:
            return max(c.alert_classifications_per_s, c.min_classifications_per_s)
        return c.min_classifications_per_s

    def _submit(self, f: _Frame, now: float, out: list[Action], reason: str) -> None:
        if len(self._in_flight) >= self.config.max_in_flight:
            return
        self._in_flight[f.id] = (f, now)
        f.asked = True
        self._last_submit = now
        self._anchor = self._last_checked = f
        out.append(Classify(f.id, reason))

    def _release(self, f: _Frame, out: list[Action]) -> None:
        self.released += 1
        out.append(Release(f.id, f.settling))

    def _drop(self, f: _Frame, reason: str, out: list[Action]) -> None:
        self.dropped += 1
        out.append(Drop(f.id, reason))

    def _drain(self, now: float, out: list[Action]) -> None:
        """Follow the head's row while rows release it."""
        while self._held:
            head = self._held[0]
            self._step(self._head_input(head), head, now, out)
            if self._held and self._held[0] is head:
                return  # waiting for a verdict

    def _expire(self, now: float, out: list[Action]) -> None:
        timeout = self.config.verdict_timeout_s
        late = [f for f, t in self._in_flight.values() if now - t > timeout]
        for f in late:
            self._step(Input.TIMED_OUT, f, now, out)
        if late:
            self._drain(now, out)

    def _check_bounds(self, now: float, out: list[Action]) -> None:
        held, c = self._held, self.config
        if not held:
            return
        # waiting for a cut to settle does not count against the hold budget, in time or in
        # frames (the frame cap grows in proportion: at 30 fps a 1 s settling holds 30+)
        budget, cap = c.max_hold_s, c.max_held_frames
        if self._unsettled(held[0]):
            budget += c.settle_s
            cap = round(cap * budget / c.max_hold_s) if c.max_hold_s > 0 else cap
        if now - held[0].arrival > budget or len(held) > cap:
            self._step(Input.OVERDUE, held[0], now, out)
