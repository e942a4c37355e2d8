"""Relay benchmark: N random-chat pairs on the relay route, both directions, audio and video.

Run ``chatguard bench relay --pairs 4,16,50``. For each N:

* ``forward``: the service's relay route. The benchmark starts ``chatguard serve --route relay``
  on this machine with ``--relay-workers`` worker processes (default 1, so figures are per
  relay core), or drives an existing deployment (``--target URL``). Load-generator processes
  (:mod:`bench.chat_load`) run 2N simulated users that join through signaling, are paired,
  connect to the relay (over UDP, or ICE-TCP with ``--transport tcp``, or both one after the
  other at each load with ``--transport both``), replay a pre-encoded clip (VP8 or H.264,
  640x480 or 1280x720, plus Opus audio) and press Next after a random dwell
  (``--next-after``), as random chat does.
* ``naive``: aiortc's ``MediaRelay`` (decode, re-encode) in a process of its own
  (:mod:`bench.relay_procs`), at ``--naive-pairs`` (small N: it collapses early): the
  baseline a forwarding relay is compared with.
* ``direct``: inside every case, pairs connected client to client without a relay.

It prints a progress line per second and, at the end, a table, and writes every figure as JSON
(default ``bench/results/relay.json``).

Figures, and why they are measured this way:

* delivered frame rate: complete frames per second at each receiver over the time it was in
  a call (from its first frame, or 3 s after pairing if none came: a stalled call counts);
  a stream holds full rate at >= 29 fps. Receivers never decode (complete = no sequence gap
  up to the marker); naive receivers decode, as a browser would have to.
* latency: from the send time each video packet carries (``abs-send-time``, which the relay
  forwards unchanged) to the arrival of the frame's last packet; the naive relay re-encodes,
  so its receivers decode and read each frame's barcode instead. Added latency = relayed minus
  direct percentile, same run.
* switch time: pairing to the new partner's first complete frame (what Next feels like).
* relay CPU and memory: the relay workers' own: from ``/proc`` when the service runs on this
  machine, else the figures the workers report in the deployment's ``/stats``. Per stream =
  CPU / one-way video streams (2 per pair); per session = (RSS loaded - RSS idle) / legs.
* loss: packets sent while in a call that never arrived, video and audio apart.

The load generators also report their own CPU and how late their senders ran, so a run says
which side saturated. ``--micro`` adds the relay's per-packet CPU without I/O.

The work is split by job: options (:mod:`bench.relay_options`), the clip
(:mod:`bench.relay_media`), orchestration (:mod:`bench.relay_cases`), measurement windows
(:mod:`bench.relay_tally`, :mod:`bench.relay_meter`) and the report (:mod:`bench.relay_report`).
"""

from __future__ import annotations

import argparse

from bench import relay_cases, relay_options, relay_report
from bench.results import RelayResult
from bench.workload import Workload


class RelayWorkload:
    name = "relay"
    description = relay_options.DESCRIPTION + (
        " Added latency is relayed minus direct, measured in the same run from the send time "
        "each video packet carries (abs-send-time, forwarded unchanged by the relay)."
    )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        relay_options.add_options(parser)

    def check(self, args: argparse.Namespace) -> str | None:
        return relay_options.check_args(args)

    def run(self, args: argparse.Namespace) -> RelayResult:
        return relay_cases.run(args)

    def report(self, result: RelayResult, args: argparse.Namespace) -> None:
        relay_report.report(result, args)


WORKLOAD: Workload[RelayResult] = RelayWorkload()
