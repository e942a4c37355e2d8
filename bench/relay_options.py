"""The relay workload's options, and what is wrong with them in words (checked before a run).

The service and load options (:func:`add_service_options`) are shared with ``chatguard bench
strict --service``, which measures the strict route the way this workload measures the relay
route.
"""

from __future__ import annotations

import argparse
from typing import Final

from bench.capacity import ServiceLevels
from bench.search_cli import add_search_options, check_search_args, comma_ints
from bench.service import endpoints_from_target
from bench.workload import add_output_options, check_output

TARGET_STREAMS_PER_CORE: Final = 100
TARGET_ADDED_P99_MS: Final = 5.0
TRANSPORTS: Final = ("udp", "tcp", "both")
SIZES: Final = {"640x480": (640, 480), "1280x720": (1280, 720)}
DEFAULT_BITRATE: Final = {
    ("vp8", "640x480"): 1_000_000,
    ("h264", "640x480"): 1_000_000,
    ("vp8", "1280x720"): 1_500_000,  # the most aiortc's VP8 encoder allows
    ("h264", "1280x720"): 2_500_000,
}

DESCRIPTION = (
    "Relay route under random-chat load: 2N simulated users join the service through "
    "signaling, are paired, connect through the relay, send pre-encoded video (VP8 or H.264, "
    "640x480 or 1280x720 at 30 fps) and Opus audio both ways, and press Next after a random "
    "dwell. Starts `chatguard serve --route relay` here (one relay worker by default, so "
    "figures are per relay core) or drives --target. Compared in the same run with pairs "
    "connected directly (the latency baseline) and with aiortc's naive MediaRelay."
)


def add_options(p: argparse.ArgumentParser) -> None:
    """The relay workload's options (``chatguard bench relay``)."""
    p.add_argument(
        "--pairs",
        type=comma_ints,
        default=[4, 16],
        help="comma-separated numbers of pairs to measure, e.g. 4,16,50 (default 4,16); "
        "with --search, the first is where the search starts",
    )
    p.add_argument(
        "--naive-pairs",
        type=comma_ints,
        default=[1, 2],
        help="pairs for the naive aiortc relay, the baseline (default 1,2; it collapses early; "
        "VP8 only)",
    )
    p.add_argument("--no-naive", action="store_true", help="skip the naive relay")
    p.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per load (default 10)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=4.0,
        help="seconds per load between every user having media and measuring (default 4)",
    )
    add_load_options(p)
    p.add_argument(
        "--micro",
        action="store_true",
        help="also time ForwardingHub.on_rtp alone, with and without the uplink estimate",
    )
    add_output_options(
        p, "relay", "frame rate and added latency against pairs, relay route and naive baseline"
    )
    add_search_options(p, ServiceLevels(added_p99_ms=TARGET_ADDED_P99_MS))


def add_load_options(p: argparse.ArgumentParser) -> None:
    """Options of the service, the simulated users and their clip (relay route)."""
    group = add_service_options(p)
    group.add_argument(
        "--codec", choices=("vp8", "h264"), default="vp8", help="video codec (default vp8)"
    )
    group.add_argument(
        "--size", choices=tuple(SIZES), default="640x480", help="video size (default 640x480)"
    )
    group.add_argument(
        "--bitrate",
        type=int,
        help="video bitrate in bit/s (default 1000000 at 640x480; at 1280x720 1500000 for "
        "VP8, the most aiortc's encoder allows, 2500000 for H.264)",
    )
    group.add_argument(
        "--clip-seconds",
        type=float,
        default=4.0,
        help="length of the clip encoded once at start and replayed in a loop, at most 8 "
        "(default 4)",
    )
    group.add_argument("--seed", type=int, default=1, help="random seed of the load (default 1)")


def add_service_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Options of the service and the simulated users, shared by the relay and strict routes."""
    group = p.add_argument_group("service and load")
    group.add_argument(
        "--target",
        metavar="URL",
        help="an existing deployment, e.g. http://HOST:8080 (its /ws is used; its relays "
        "must be reachable over UDP from here, or over TCP with --transport tcp); default: "
        "start `chatguard serve` on this machine",
    )
    group.add_argument(
        "--admin",
        metavar="URL",
        help="with --target: the deployment's admin listener, whose /stats gives the relay "
        "workers' figures (default: the target's host, port 9090; it must be reachable)",
    )
    group.add_argument(
        "--relay-workers",
        type=int,
        default=1,
        help="relay worker processes of the service started here (default 1: per-core figures)",
    )
    group.add_argument(
        "--next-after",
        type=dwell_range,
        default=(10.0, 30.0),
        metavar="LO:HI",
        help="each pair presses Next after a uniform random LO..HI seconds (default 10:30); "
        "'off' for calls that last the whole run",
    )
    group.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="udp",
        help="how the simulated users reach the relay: udp (default), tcp (ICE-TCP only, "
        "as users whose network drops UDP: an active TCP connection to the worker's "
        "passive candidate, STUN, DTLS and SRTP over RFC 4571 framing), or both (every load "
        "over each, side by side); direct pairs, the latency baseline, stay on UDP",
    )
    group.add_argument("--no-audio", action="store_true", help="video only (default: + Opus)")
    group.add_argument(
        "--loadgen-procs", type=int, default=1, help="load-generator processes (default 1)"
    )
    group.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the service and for every user's first call (default 60)",
    )
    group.add_argument(
        "--ice-address",
        help="the only address the simulated users gather ICE candidates on, and the relay "
        "workers of a service started here too (default: this machine's first IPv4 interface "
        "address for a service here, every interface for --target; not loopback, which the "
        "relay refuses from clients)",
    )
    group.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value for the load generators and the naive relay, e.g. -5 on a shared "
        "machine (negative needs root; default 0)",
    )
    return group


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, in words, or None: checked before anything starts."""
    if not args.pairs or min(args.pairs) < 1:
        return "--pairs: give one or more numbers of pairs >= 1, e.g. 4,16"
    if args.duration <= 0 or args.warmup < 0:
        return "--duration must be > 0 and --warmup >= 0 seconds"
    if not 0 < args.clip_seconds <= 8:
        return "--clip-seconds must be in (0, 8]"
    return check_service_args(args) or check_search_args(args) or check_output(args)


def check_service_args(args: argparse.Namespace) -> str | None:
    """What is wrong with :func:`add_service_options`' options, in words, or None."""
    if args.loadgen_procs < 1 or args.relay_workers < 1:
        return "--loadgen-procs and --relay-workers must be >= 1"
    if args.connect_timeout <= 0:
        return "--connect-timeout must be > 0"
    if args.transport == "both" and getattr(args, "search", False):
        return "--search measures one transport: give --transport udp or tcp"
    if args.target is not None:
        try:
            endpoints_from_target(args.target)
        except ValueError as exc:
            return str(exc)
    return None


def dwell_range(text: str) -> tuple[float, float] | None:
    """``--next-after``: ``LO:HI`` seconds (uniform), ``S`` (fixed), or ``0``/``off`` (no Next)."""
    if text in ("0", "off", "none"):
        return None
    lo_text, _, hi_text = text.partition(":")
    try:
        lo, hi = float(lo_text), float(hi_text or lo_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give seconds as LO:HI (e.g. 10:30), one number, or off"
        ) from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 < LO <= HI")
    return lo, hi
