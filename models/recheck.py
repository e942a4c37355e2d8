"""Which approximate (bf16) results must be computed again in fp32 before anyone acts on them.

Why a pure function apart from the runners: the margin is the model layer's knowledge (how far
bf16 strays from fp32), the thresholds are the operator's policy (per stream); the batcher,
which holds both for each request, asks this function and keeps the runners free of policy.

The rule, for a result whose every score lies within ``margin`` of fp32's:

* **certainly unsafe**: a detection of a blocked label scores at least its threshold plus the
  margin: fp32 scores that box over the threshold too. (fp32 could still lose the box through
  arg-max or NMS ties with a neighbour; then it errs towards blocking, never towards a leak.)
* **certainly safe**: every blocked label's *peak* (its highest score anywhere in the raw
  output, before arg-max, candidate threshold and NMS) lies below its threshold minus the
  margin: no fp32 box of that label can reach the threshold, whatever NMS keeps.
* anything else (a peak within the margin of a threshold, or above it without a detection to
  show for it) is re-computed in fp32.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from models.detections import Detection

__all__ = ["needs_recheck"]


def needs_recheck(
    labels: Sequence[str],
    peaks: NDArray[np.float32],
    detections: Iterable[Detection],
    thresholds: Mapping[str, float],
    margin: float,
) -> bool:
    """True when fp32 might decide differently at ``thresholds`` (label -> block threshold).

    ``peaks``: per-label highest raw score (index i = ``labels[i]``); ``detections``: the
    approximate result's decoded detections.
    """
    for d in detections:
        limit = thresholds.get(d.label)
        if limit is not None and d.score >= limit + margin:
            return False
    for label, peak in zip(labels, peaks.tolist(), strict=True):
        limit = thresholds.get(label)
        if limit is not None and peak >= limit - margin:
            return True
    return False
