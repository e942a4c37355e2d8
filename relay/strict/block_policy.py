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
    safe: bool
    label: str = ""
    """The blocking label (the highest-scoring one over its threshold), empty when safe."""
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class ModerationPolicy:
    thresholds: Mapping[str, float] = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    """Label -> minimum score that makes a frame unsafe."""
    mute_audio_while_blocked: bool = False
    """Also withhold the leg's audio while its video is blocked."""

    def verdict(self, detections: Iterable[Detection]) -> Verdict:
        worst: Detection | None = None
        for d in detections:
            limit = self.thresholds.get(d.label)
            if limit is not None and d.score >= limit and (worst is None or d.score > worst.score):
                worst = d
        if worst is None:
            return Verdict(True)
        return Verdict(False, worst.label, worst.score)
