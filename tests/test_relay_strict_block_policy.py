"""Moderation policy: detections -> verdict."""

from __future__ import annotations

from models.detections import Detection
from relay.control import Moderation, decode_worker_message, encode
from relay.strict.block_policy import DEFAULT_THRESHOLDS, ModerationPolicy
from relay.strict.gate import Finding

BOX = (0.0, 0.0, 10.0, 10.0)


def test_default_policy_blocks_exposed_labels_only_above_their_threshold() -> None:
    p = ModerationPolicy()
    assert p.verdict([]).safe
    # what harmless photographs score (coffee: BUTTOCKS_EXPOSED 0.30; faces, covered labels)
    harmless = [
        Detection("BUTTOCKS_EXPOSED", 0.30, BOX),
        Detection("FACE_FEMALE", 0.95, BOX),
        Detection("FEMALE_BREAST_COVERED", 0.9, BOX),
    ]
    assert p.verdict(harmless).safe
    v = p.verdict([*harmless, Detection("FEMALE_BREAST_EXPOSED", 0.6, BOX)])
    assert (v.safe, v.label, v.score) == (False, "FEMALE_BREAST_EXPOSED", 0.6)
    assert all(label.endswith("_EXPOSED") for label in DEFAULT_THRESHOLDS)


def test_the_worst_offending_label_is_reported_and_fits_the_control_message() -> None:
    p = ModerationPolicy(thresholds={"FACE_FEMALE": 0.5, "ANUS_EXPOSED": 0.4})
    v = p.verdict(
        [
            Detection("FACE_FEMALE", 0.7, BOX),
            Detection("ANUS_EXPOSED", 0.9, BOX),
            Detection("FACE_MALE", 0.99, BOX),
        ]
    )
    assert (v.safe, v.label, v.score) == (False, "ANUS_EXPOSED", 0.9)
    msg = Moderation(leg="a", state="blocked", label=v.label, score=v.score)
    assert decode_worker_message(encode(msg)) == msg  # passes the protocol's validation


def test_a_score_within_the_margin_of_its_threshold_is_a_near_miss() -> None:
    p = ModerationPolicy(thresholds={"FACE_FEMALE": 0.5, "ANUS_EXPOSED": 0.4}, reference_margin=0.8)
    assert p.verdict([Detection("FACE_FEMALE", 0.39, BOX)]).finding is Finding.SAFE
    v = p.verdict([Detection("FACE_FEMALE", 0.42, BOX), Detection("ANUS_EXPOSED", 0.38, BOX)])
    # the label nearest its threshold (0.95 of it), and still safe for this frame alone
    assert (v.finding, v.label, v.score, v.safe) == (Finding.NEAR_MISS, "ANUS_EXPOSED", 0.38, True)
    off = ModerationPolicy(thresholds={"FACE_FEMALE": 0.5}, reference_margin=1.0)
    assert off.verdict([Detection("FACE_FEMALE", 0.49, BOX)]).finding is Finding.SAFE
