"""The strict workload's clip: every cut is a scene change for the gate, camera motion is not."""

from __future__ import annotations

import cv2
import numpy as np

from bench import strict_clip as sc
from fastpath.scene import luma_signature, signature_distance
from relay.strict.gate import GateConfig
from relay.strict.moderation import SIGNATURE_GRID


def test_cuts_change_the_scene_and_the_camera_motion_does_not() -> None:
    """Each cut must be a scene change for the gate, and a frame-to-frame step within a
    segment must not: otherwise the benchmark tests a different path than it claims."""
    threshold = GateConfig().scene_threshold
    assert all(d > 4 * threshold for d in sc.cut_distances())
    sig = [np.empty(SIGNATURE_GRID, np.float32) for _ in range(2)]
    for i in (1, 30, 112, 200):
        for k, j in enumerate((i, i + 1)):
            y = np.asarray(cv2.cvtColor(sc.draw(j), cv2.COLOR_RGB2GRAY), np.uint8)
            luma_signature(y, sig[k])
        assert signature_distance(sig[0], sig[1]) < threshold / 2
