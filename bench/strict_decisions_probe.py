"""Leaks against withheld safe frames, per decision rule: the figures of strict-decisions.md.

Run ``.venv/bin/python -m bench.strict_decisions_probe`` (needs the ``bench`` extra: skimage,
cv2). What it does, and why this way:

* The strict workload's clip (:mod:`bench.strict_clip`, one unsafe segment under a
  FACE_FEMALE policy) is made the way the strict route squeezed real Chromium senders:
  320x240, 10 fps, VP8 at 150 kbit/s, a keyframe every 6 frames (15-18 % keyframes). Three
  loops (24 s), each frame with its own sensor noise. A second scene set pastes the astronaut
  into one corner of the coffee photograph instead of cutting to it: a change confined to
  part of the picture.
* Every frame is decoded and classified once (onnxruntime fp32, one thread); then the real
  :class:`relay.strict.gate.ModerationGate` replays the stream under each rule set, verdicts
  arriving 30 ms after their request. So the rules are compared on exactly the same scores.
* The policy's threshold is set where the unsafe frames' scores hover: at their 25th and 50th
  percentile, so a quarter or half of the unsafe frames score under it (the real-Chromium
  situation). A frame that scores under the threshold and is released on its own verdict is
  a leak no gate rule can stop (only a lower threshold can); the figures count it apart.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.strict_clip import CLIP_FRAMES, UNSAFE, draw, photo
from fastpath.preprocess import letterboxer
from fastpath.scene import luma_signature, peak_change, signature_distance
from models.detections import Detection
from models.inference import ModelRunner
from models.letterbox import Letterbox
from relay.strict.block_policy import ModerationPolicy
from relay.strict.gate import Classify, Drop, GateConfig, ModerationGate, Release
from relay.strict.moderation import SIGNATURE_GRID, yuv_plane

W, H, FPS, STEP, LOOPS, GOP = 320, 240, 10, 3, 3, 6
BITRATES = (150_000, 300_000)
LATENCY_S = 0.03
LABEL = "FACE_FEMALE"
CORNER_W, CORNER_H = 280, 210


@dataclass
class Frame:
    keyframe: bool
    signature: np.ndarray
    detections: list[Detection]
    unsafe: bool


def corner(index: int) -> np.ndarray:
    """The coffee photograph with the astronaut's head in its top-left corner (a tenth of the
    picture): the mean over the signature grid moves less than the scene threshold."""
    import cv2

    img = draw(index).copy()
    if index % CLIP_FRAMES in UNSAFE:
        base = draw(55 + (index % CLIP_FRAMES - 110))  # coffee, same pan position
        face = cv2.resize(photo("astronaut")[:300, 100:400], (CORNER_W, CORNER_H))
        img = base.copy()
        img[:CORNER_H, :CORNER_W] = face
    return img


def frames(make: object, runner: ModelRunner, bitrate: int) -> list[Frame]:
    import cv2

    enc = av.CodecContext.create("libvpx", "w")
    assert isinstance(enc, av.VideoCodecContext)
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.bit_rate = bitrate
    enc.gop_size = GOP
    enc.thread_count = 1  # the same bitstream every run
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    dec = av.CodecContext.create("vp8", "r")
    out = []
    size = runner.input_size
    tensor = np.empty((3, size, size), np.float32)
    for k, index in enumerate(range(0, CLIP_FRAMES * LOOPS, STEP)):
        rgb = cv2.resize(make(index), (W, H), interpolation=cv2.INTER_AREA)  # type: ignore[operator]
        vf = av.VideoFrame.from_ndarray(np.asarray(rgb, np.uint8), format="rgb24")
        vf = vf.reformat(format="yuv420p")
        vf.pts = k
        for packet in enc.encode(vf):
            for pic in dec.decode(packet):
                sig = np.empty(SIGNATURE_GRID, np.float32)
                luma_signature(yuv_plane(pic, 0), sig)
                lb = letterboxer(W, H, size, False)
                lb.run(yuv_plane(pic, 0), yuv_plane(pic, 1), yuv_plane(pic, 2), tensor)
                dets = runner.infer_one(tensor, Letterbox.for_frame(W, H, size, "top-left"))
                out.append(Frame(packet.is_keyframe, sig, dets, index % CLIP_FRAMES in UNSAFE))
    return out


def replay(stream: list[Frame], policy: ModerationPolicy, cfg: GateConfig) -> dict[str, float]:
    g = ModerationGate(cfg)
    pending: list[tuple[float, int]] = []
    released: set[int] = set()
    dropped: set[int] = set()
    own: set[int] = set()
    classified = 0

    def take(actions: Sequence[object], now: float) -> None:
        nonlocal classified
        for a in actions:
            if isinstance(a, Classify):
                classified += 1
                pending.append((now + LATENCY_S, a.frame_id))
            elif isinstance(a, Release):
                released.add(a.frame_id)
            elif isinstance(a, Drop):
                dropped.add(a.frame_id)

    for i, f in enumerate(stream):
        now = i / FPS
        take(g.on_frame(i, f.keyframe, f.signature, now), now)
        while True:
            due = sorted(p for p in pending if p[0] < now + 1 / FPS)
            if not due:
                break
            t, fid = due[0]
            pending.remove(due[0])
            v = policy.verdict(stream[fid].detections)
            if v.safe:
                own.add(fid)
            take(g.on_verdict(fid, v.finding, v.label, v.score, t), t)
        take(g.on_tick(now + 0.09), now + 0.09)
    unsafe = [i for i, f in enumerate(stream) if f.unsafe]
    leaked = [i for i in unsafe if i in released]
    safe = [i for i, f in enumerate(stream) if not f.unsafe]
    return {
        "leaked": len(leaked),
        "leaked_covered": sum(i not in own for i in leaked),
        "safe_withheld_pct": round(100 * sum(i not in released for i in safe) / len(safe), 1),
        "classified_per_s": round(classified / (len(stream) / FPS), 2),
    }


OLD = GateConfig(resume_after_safe=1, alert_classifications_per_s=2.0, scene_peak_threshold=1e9)
ALL = GateConfig()
RULES: dict[str, tuple[float, GateConfig]] = {
    "before: mean only, no margin, 1 safe keyframe resumes": (1.0, OLD),
    "margin 0.8 only": (0.8, OLD),
    "hysteresis 3 + alert 10/s only": (
        1.0,
        replace(OLD, resume_after_safe=3, alert_classifications_per_s=10.0),
    ),
    "peak cells only (16 >= 40)": (1.0, replace(OLD, scene_peak_threshold=40.0)),
    "all, margin 0.7": (0.7, ALL),
    "all (defaults: margin 0.75, resume after 2, alert 5/s)": (0.75, ALL),
    "all, margin 0.8": (0.8, ALL),
    "all, margin 0.9": (0.9, ALL),
    "all, resume after 3": (0.75, replace(ALL, resume_after_safe=3)),
    "all, resume after 5": (0.75, replace(ALL, resume_after_safe=5)),
    "all, alert 10/s": (0.75, replace(ALL, alert_classifications_per_s=10.0)),
    "all, no alert (2/s)": (0.75, replace(ALL, alert_classifications_per_s=2.0)),
}


def scene_figures(stream: list[Frame]) -> None:
    """What the most-changed-cells rule sees: how often it calls a frame of the same scene new
    (pairs up to the verdict lifetime apart, within one photograph), and how a pasted region
    of each size moves the mean and the peak."""
    import cv2

    segment = [i % CLIP_FRAMES // 1 for i in range(0, CLIP_FRAMES * LOOPS, STEP)]
    starts = {0, 55, 110, 140, 190}
    seg_id = np.cumsum([i in starts for i in segment])
    pairs = [
        (stream[i].signature, stream[j].signature)
        for i in range(len(stream))
        for j in range(i + 1, min(i + 1 + FPS, len(stream)))
        if seg_id[i] == seg_id[j]
    ]
    print(f"\nsame-scene pairs up to 1 s apart: {len(pairs)}")
    print("| rule | called a new scene |\n|---|---|")
    print(
        f"| mean >= 8 | {100 * np.mean([signature_distance(a, b) >= 8 for a, b in pairs]):.1f} % |"
    )
    for t in (30, 40, 60):
        share = 100 * np.mean([peak_change(a, b, 16) >= t for a, b in pairs])
        print(f"| 16 most-changed cells >= {t} | {share:.1f} % |")
    print("\n| region pasted into the coffee photograph | mean change | 16 most-changed cells |")
    print("|---|---|---|")
    base = draw(60)
    for w, h in ((80, 60), (160, 120), (213, 160), (320, 240)):
        img = base.copy()
        img[:h, :w] = cv2.resize(photo("astronaut")[:300, 100:400], (w, h))
        sigs = []
        for pic in (base, img):
            y = cv2.cvtColor(
                cv2.resize(pic, (W, H), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
            )
            sig = np.empty(SIGNATURE_GRID, np.float32)
            luma_signature(np.ascontiguousarray(y), sig)
            sigs.append(sig)
        covered_pct = 100 * w * h / (640 * 480)
        mean_move = signature_distance(sigs[0], sigs[1])
        print(
            f"| {w}x{h} of 640x480 ({covered_pct:.0f} %) | {mean_move:.1f} | "
            f"{peak_change(sigs[0], sigs[1], 16):.1f} |"
        )


def main() -> None:
    runner = ModelRunner(intra_op_threads=1)
    for name, make in (("cut to the astronaut", draw), ("astronaut in one corner", corner)):
        if sys.argv[1:] and sys.argv[1] not in name:
            continue
        for bitrate in BITRATES:
            stream = frames(make, runner, bitrate)
            report(f"{name}, {bitrate // 1000} kbit/s", stream, make is draw and bitrate == 150_000)


def report(name: str, stream: list[Frame], scenes: bool) -> None:
    if scenes:
        scene_figures(stream)
    scores = sorted(
        max((d.score for d in f.detections if d.label == LABEL), default=0.0)
        for f in stream
        if f.unsafe
    )
    safe_max = max(
        max((d.score for d in f.detections if d.label == LABEL), default=0.0)
        for f in stream
        if not f.unsafe
    )
    keys = sum(f.keyframe for f in stream)
    cut = next(i for i, f in enumerate(stream) if f.unsafe)
    a, b = stream[cut - 1].signature, stream[cut].signature
    print(
        f"signature change into the unsafe scene: mean {signature_distance(a, b):.1f}, "
        f"16 most-changed cells {peak_change(a, b, 16):.1f}"
    )
    print(
        f"\n## {name}: {len(stream)} frames, {keys} keyframes, "
        f"{sum(f.unsafe for f in stream)} unsafe; {LABEL} on unsafe frames "
        f"min {scores[0]:.2f} p25 {scores[len(scores) // 4]:.2f} "
        f"p50 {scores[len(scores) // 2]:.2f} max {scores[-1]:.2f}; "
        f"on safe frames max {safe_max:.2f}"
    )
    for q in (4, 2):
        threshold = round(scores[len(scores) // q], 2)
        print(f"\nthreshold {threshold} (p{100 // q} of the unsafe frames' scores)")
        print("| rules | leaked | of which covered | safe withheld % | classified/s |")
        print("|---|---|---|---|---|")
        for rule, (margin, cfg) in RULES.items():
            policy = ModerationPolicy(thresholds={LABEL: threshold}, reference_margin=margin)
            r = replay(stream, policy, cfg)
            print(
                f"| {rule} | {r['leaked']} | {r['leaked_covered']} | "
                f"{r['safe_withheld_pct']} | {r['classified_per_s']} |"
            )


if __name__ == "__main__":
    main()
