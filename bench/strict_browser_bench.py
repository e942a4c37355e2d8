"""The strict route against the relay route with real Chromium on both ends, in one run.

Why a workload of its own: ``chatguard bench strict`` replays pre-encoded clips that ignore the
relay's feedback, so it cannot show what holding frames for a verdict does to a real sender (a
browser's encoder halves its resolution when the REMB it is sent says so) nor what the model
makes of a browser's coarse first frames after a cut. Here the sender is headless Chromium,
whose encoder and bandwidth estimator obey the REMB the relay sends, and the receiver is another;
``bench.strict_browser_probe`` drives both pages and reads every frame's stamp at the receiving
one. Each route gets one call of ``--seconds`` through a ``chatguard serve --route ROUTE``
started here, the relay route first: it is the baseline the strict route's safe frames are
compared with.

The goals (the strict route's issue): no frame of an unsafe scene at the page; the strict
sender at 640x480, >= 25 fps, ``qualityLimitationReason`` "none" in every sample of the call's
second half; and >= 0.9 of the relay route's safe frames per second at the strict receiver.

Every figure is from loopback on this machine, with a camera Chromium replays from a y4m file
(encoded live, so feedback does act on it): a real network's loss and delay are not in them.
Needs the bench extra (Playwright, scikit-image, OpenCV) and Debian's ``/usr/bin/chromium``;
never downloads a browser.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench import provenance
from bench.chromium import CHROMIUM
from bench.extra import require
from bench.results import BrowserCall, StrictBrowserResult
from bench.workload import Workload, add_output_options, check_output, write_json

DESCRIPTION: Final = __doc__.split("\n\n", 1)[1]
ROUTES: Final = ("relay", "strict")
MIN_SAFE_SHARE: Final = 0.9
MIN_FPS: Final = 25.0
SIZE: Final = (640, 480)


def safe_share(calls: Sequence[BrowserCall]) -> float | None:
    """Safe frames per second at the strict receiver over the relay route's (one call each)."""
    by_route = {call.route: call for call in calls}
    strict, relay = by_route.get("strict"), by_route.get("relay")
    if strict is None or relay is None or relay.safe_frames == 0:
        return None
    return (strict.safe_frames / strict.seconds) / (relay.safe_frames / relay.seconds)


def goals_missed(calls: Sequence[BrowserCall]) -> list[str]:
    """The strict call's goals it missed, in words (none to judge without a strict call)."""
    strict = next((call for call in calls if call.route == "strict"), None)
    if strict is None:
        return []
    missed = []
    if strict.unsafe_frames:
        missed.append(f"{strict.unsafe_frames} unsafe frames reached the page")
    sender = strict.sender
    if not sender:
        return [*missed, "the call was too short to judge the sender"]
    size = (sender.get("width"), sender.get("height"))
    if size != SIZE:
        missed.append(f"the sender sent {size[0]:g}x{size[1]:g}, not {SIZE[0]}x{SIZE[1]}")
    if not sender.get("fps", 0.0) >= MIN_FPS:
        missed.append(f"the sender encoded {sender.get('fps')} fps < {MIN_FPS:g}")
    limited = {k: n for k, n in sender.get("limitation", {}).items() if k != "none"}
    if limited:
        missed.append(f"the sender was limited ({limited} samples by qualityLimitationReason)")
    share = safe_share(calls)
    if share is not None and share < MIN_SAFE_SHARE:
        missed.append(f"{share:.2f} of the relay route's safe frames < {MIN_SAFE_SHARE:g}")
    return missed


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="length of each call once both pages decode (default 60: every scene of the "
        "camera's 10 s loop six times)",
    )
    parser.add_argument(
        "--max-bitrate",
        type=int,
        metavar="BPS",
        help="cap the sending page at BPS bit/s on every route, e.g. 300000 (default: the "
        "browser's own bitrate)",
    )
    parser.add_argument(
        "--routes",
        type=lambda text: text.split(","),
        default=list(ROUTES),
        metavar="ROUTES",
        help="which routes, comma-separated, in order (default relay,strict; without relay "
        "there is no baseline for the safe frames)",
    )
    parser.add_argument(
        "--moderation",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [moderation] setting for the services, e.g. settle_s=0.5, to compare settings "
        "(repeatable)",
    )
    parser.add_argument(
        "--decision-log",
        type=Path,
        metavar="PATH",
        help="append the relay's moderation decisions of every call (JSON lines, metadata "
        "only: frame ids, detail, verdict scores, the gate's rules) to PATH, to study what "
        "let a frame through or held it back",
    )
    add_output_options(parser, "strict-browser", None)


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, in words, or None: checked before anything starts."""
    require("playwright", "skimage", "cv2")
    if not Path(CHROMIUM).exists():
        return f"needs Debian's Chromium at {CHROMIUM} (apt install chromium); none is downloaded"
    if args.seconds < 4:
        return "--seconds must be >= 4 (the sender's figures are taken over the second half)"
    if args.max_bitrate is not None and args.max_bitrate < 30_000:
        return "--max-bitrate must be >= 30000 bit/s"
    if not args.routes or any(route not in ROUTES for route in args.routes):
        return f"--routes: choose from {', '.join(ROUTES)}, comma-separated, got {args.routes}"
    if bad := [item for item in args.moderation if "=" not in item]:
        return f"--moderation wants KEY=VALUE, got {bad[0]!r}"
    return check_output(args)


def run(args: argparse.Namespace) -> StrictBrowserResult:
    from bench.strict_browser_probe import run as probe

    lines = [" = ".join(item.split("=", 1)) for item in args.moderation]
    cap = "the browser's own bitrate" if args.max_bitrate is None else f"{args.max_bitrate} bit/s"
    calls = []
    for route in args.routes:
        print(
            f"{route} route: starting the service and two Chromium pages; one call of "
            f"{args.seconds:g} s at {cap} ...",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="chatguard-strict-browser-") as workdir:
            call = probe(
                route, args.seconds, args.max_bitrate, Path(workdir), lines, args.decision_log
            )
        print(row(call), flush=True)
        if call.leak_trace:
            print(
                "  the relay's decisions before each leak:\n    " + "\n    ".join(call.leak_trace)
            )
        calls.append(call)
    return StrictBrowserResult(
        calls=calls,
        safe_share=safe_share(calls),
        goals_missed=goals_missed(calls),
        settings=provenance.settings(args),
        versions=provenance.versions(),
        machine=provenance.machine(),
    )


def row(call: BrowserCall) -> str:
    s = call.sender
    limitation = ",".join(f"{k}:{n}" for k, n in sorted(s.get("limitation", {}).items()))
    return (
        f"  {call.route}: sender {s.get('width', 0):g}x{s.get('height', 0):g} {s.get('fps')} fps "
        f"{s.get('kbit_s')} kbit/s, keyframes {s.get('keyframe_share')}, limitation "
        f"{limitation or '-'}; partner's moving picture {s.get('partner_fps')} fps; page got "
        f"{call.safe_frames} safe, {call.unsafe_frames} unsafe, {call.unreadable_frames} "
        f"unreadable frames"
    )


def report(result: StrictBrowserResult, args: argparse.Namespace) -> None:
    if result.safe_share is not None:
        print(
            f"strict/relay safe frames per second: {result.safe_share:.2f} "
            f"(goal {MIN_SAFE_SHARE:g})"
        )
    strict = any(call.route == "strict" for call in result.calls)
    if result.goals_missed:
        print("goals missed: " + "; ".join(result.goals_missed))
    elif strict and result.safe_share is None:
        print("no goal of the strict route missed (its safe frames not judged: no relay call)")
    elif strict:
        print("every goal of the strict route met in this call")
    print("(loopback on this machine, Chromium replaying a y4m camera: no real network in it)")
    write_json(result, args.json)
    print(f"results written to {args.json}")


class StrictBrowserWorkload:
    name = "strict-browser"
    description = DESCRIPTION

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        add_options(parser)

    def check(self, args: argparse.Namespace) -> str | None:
        return check_args(args)

    def run(self, args: argparse.Namespace) -> StrictBrowserResult:
        return run(args)

    def report(self, result: StrictBrowserResult, args: argparse.Namespace) -> None:
        report(result, args)


WORKLOAD: Workload[StrictBrowserResult] = StrictBrowserWorkload()
