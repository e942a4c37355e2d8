"""Moderation policy: which detections make a frame unsafe, and what else blocking implies.

Why separate from the model manifest: the manifest says how to run a model; what to block is an
operator's decision (per deployment, per region), so it lives here and is passed per leg.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from models.detections import Detection
from relay.strict.gate import Finding

DEFAULT_THRESHOLDS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "FEMALE_GENITALIA_EXPOSED": 0.4,
        "MALE_GENITALIA_EXPOSED": 0.4,
        "ANUS_EXPOSED": 0.4,
        "FEMALE_BREAST_EXPOSED": 0.5,
        "BUTTOCKS_EXPOSED": 0.5,
    }
)
"""NudeNet labels blocked by default. Covered labels, faces, feet, armpits, belly and male
chest are allowed. Thresholds sit above the scores seen on harmless photographs (a cup of
coffee scores BUTTOCKS_EXPOSED 0.30)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    finding: Finding
    label: str = ""
    """The blocking label (the highest-scoring one over its threshold), or for a near miss
    the label nearest its threshold; empty when safe."""
    score: float = 0.0

    @property
    def safe(self) -> bool:
        """Nothing at or over a threshold (a near miss is safe for this frame alone)."""
        return self.finding is not Finding.UNSAFE


@dataclass(frozen=True, slots=True)
class ModerationPolicy:
    thresholds: Mapping[str, float] = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    """Label -> minimum score that makes a frame unsafe."""
    mute_audio_while_blocked: bool = False
    """Also withhold the leg's audio while its video is blocked."""
    reference_margin: float = 0.75
    """A frame whose score for a blocked label reaches this fraction of the label's threshold,
    though under it, is a near miss: released alone, never the reference for later frames.
    Why: on a squeezed sender's video the model's scores for an unsafe scene hover at the
    threshold, and one frame just under it must not vouch for the frames after it. 1: off."""

    def verdict(self, detections: Iterable[Detection]) -> Verdict:
        worst: Detection | None = None
        nearest: tuple[float, Detection] | None = None
        for d in detections:
            limit = self.thresholds.get(d.label)
            if limit is None:
                continue
            if d.score >= limit and (worst is None or d.score > worst.score):
                worst = d
            ratio = d.score / limit
            if ratio >= self.reference_margin and (nearest is None or ratio > nearest[0]):
                nearest = (ratio, d)
        if worst is not None:
            return Verdict(Finding.UNSAFE, worst.label, worst.score)
        if nearest is not None:
            return Verdict(Finding.NEAR_MISS, nearest[1].label, nearest[1].score)
        return Verdict(Finding.SAFE)
