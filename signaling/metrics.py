"""Prometheus metrics of a signaling service, read from the hub's own counters when scraped.

Why a collector rather than metric objects: the hub already counts what it decides
(``call_hub.HubStats``) and the relay workers report their totals every second
(``relay.control.RelayTotals``), so a scrape converts those into metric families and nothing
on the per-message path touches the metrics library. Names follow Prometheus conventions: base
units (seconds, bytes), ``_total`` for counters, no per-user labels; relay figures carry the
worker id, which is as bounded as the number of worker processes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from relay.control import Histogram, RelayTotals
from signaling.budgets import CLOSE_REASONS, KINDS, Budgets
from signaling.call_hub import SignalingHub
from signaling.relays import WorkerInfo
from signaling.webhook import WebhookSender

PREFIX = "chatguard"


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


def add_histogram(
    family: HistogramMetricFamily | GaugeHistogramMetricFamily, labels: list[str], hist: Histogram
) -> None:
    """Our per-bucket counts as Prometheus' cumulative ``le`` buckets."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*hist.bounds, float("inf")), hist.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    family.add_metric(labels, buckets, hist.sum)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


class SignalingCollector(Collector):
    """Clients, pairs, calls, messages, moderation decisions: the hub's view."""

    def __init__(self, hub: SignalingHub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        hub, stats = self._hub, self._hub.stats
        yield _gauge("clients", "Connected clients.", hub.client_count())
        yield _gauge("clients_waiting", "Clients waiting for a partner.", hub.waiting_count())
        yield _gauge("pairs", "Pairs in a call now.", hub.pair_count())
        yield _counter("pairs_made", "Pairs made since start.", stats.pairs_made)
        wait = _histogram(
            "pairing_wait_seconds", "How long each member of a new pair had waited.", []
        )
        add_histogram(wait, [], stats.pairing_wait)
        yield wait
        calls = CounterMetricFamily(
            f"{PREFIX}_calls",
            "Calls whose media connected or that failed, once per call and route.",
            labels=["route", "outcome"],
        )
        for (route, outcome), count in sorted(stats.call_outcomes.items()):
            calls.add_metric([route, outcome], count)
        yield calls
        yield _counter(
            "relay_fallbacks",
            "Direct calls moved to the relay because media did not connect.",
            stats.fallbacks_to_relay,
        )
        yield _counter(
            "calls_rerouted_after_worker_loss",
            "Relayed calls moved to another worker because theirs went away.",
            stats.calls_rerouted_after_worker_loss,
        )
        yield _by_label(
            "signaling_messages", "Valid client messages by type.", "type", stats.messages_received
        )
        yield _by_label(
            "signaling_errors", "Error replies to clients by code.", "code", stats.errors_sent
        )
        yield _counter(
            "signaling_messages_relayed",
            "Direct-route SDP and ICE messages passed between partners.",
            stats.messages_relayed,
        )
        yield _by_label(
            "moderation_decisions",
            "Strict route: video blocked or resumed by a relay worker's gate.",
            "decision",
            stats.moderation,
        )
        yield _counter("moderation_strikes", "Strikes counted against offenders.", stats.strikes)
        yield _by_label("bans", "Bans by ground (moderation, reports).", "ground", stats.bans)
        yield _counter(
            "banned_refused",
            "Connections refused because the device or address is banned.",
            stats.refused_banned,
        )
        yield _by_label(
            "refused_connections",
            "WebSockets refused at the handshake or hello, by reason (origin, relay_hello, "
            "relay_throttled, relay_origin).",
            "reason",
            stats.refused,
        )
        yield _counter("reports", "Reports filed by users.", hub.reports.total)


class BudgetsCollector(Collector):
    """The abuse budgets of the public port (``signaling.budgets``): what they refused."""

    def __init__(self, budgets: Budgets) -> None:
        self._budgets = budgets

    def collect(self) -> Iterator[Metric]:
        budgets = self._budgets
        yield _by_label(
            "signaling_rate_limited",
            "Client messages refused as over their budget (not processed), by kind.",
            "kind",
            _every_kind(budgets.messages_refused),
        )
        yield _by_label(
            "signaling_flooders_disconnected",
            "Clients disconnected (4029) for sending on after rate_limited, by the last kind.",
            "kind",
            _every_kind(budgets.disconnected),
        )
        yield _by_label(
            "signaling_connections_refused",
            "WebSockets refused at the door (4030): too many open or too fast, per address.",
            "reason",
            {reason: budgets.connections_refused[reason] for reason in CLOSE_REASONS},
        )
        yield _counter(
            "http_header_timeouts",
            "HTTP connections closed because their request headers came too slowly.",
            budgets.header_timeouts,
        )
        yield _gauge(
            "signaling_addresses_tracked",
            "Client addresses with budgets kept.",
            budgets.address_count(),
        )


def _every_kind(counts: Counter[str]) -> dict[str, int]:
    """Every kind, zeros included, so that a dashboard's series exist before the first flood."""
    return {kind: counts[kind] for kind in KINDS}


class RelayCollector(Collector):
    """Per relay worker (label ``worker``): legs, forwarding, RTCP, CPU, memory, moderation."""

    def __init__(self, hub: SignalingHub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        workers = self._hub.relays.workers()
        yield from _worker_gauges(workers)
        reported = [(info.worker_id, info.totals) for info in workers if info.totals is not None]
        yield from _worker_counters(reported)
        moderated = [
            (worker, totals.moderation)
            for worker, totals in reported
            if totals.moderation is not None
        ]
        specs = (
            ("classifications", "Strict route: frames classified by the model.", "classified"),
            ("classifications_failed", "Strict route: frames with no verdict.", "no_verdict"),
            ("frames_released", "Strict route: frames the gate let through.", "frames_released"),
            ("frames_withheld", "Strict route: frames the gate withheld.", "frames_withheld"),
        )
        for name, doc, attr in specs:
            family = CounterMetricFamily(f"{PREFIX}_strict_{name}", doc, labels=["worker"])
            for worker, totals in moderated:
                family.add_metric([worker], getattr(totals, attr))
            yield family
        gate = _histogram(
            "strict_gate_latency_seconds",
            "Strict route: a released frame's wait for its verdict (last packet in to "
            "forwarded), frames held while a cut settled aside.",
            ["worker"],
        )
        settle = _histogram(
            "strict_settle_latency_seconds",
            "Strict route: the wait of a released frame held while a cut settled (about "
            "settle_s by design).",
            ["worker"],
        )
        inference = _histogram(
            "model_inference_seconds",
            "Strict route: one run of the model on the worker's inference thread (an image, a "
            "stacked batch, or an fp32 re-check).",
            ["worker"],
        )
        for worker, totals in moderated:
            add_histogram(gate, [worker], totals.gate_latency)
            add_histogram(settle, [worker], totals.settle_latency)
            add_histogram(inference, [worker], totals.inference)
        yield gate
        yield settle
        yield inference


def _worker_gauges(workers: list[WorkerInfo]) -> Iterator[Metric]:
    legs = GaugeMetricFamily(
        f"{PREFIX}_relay_legs", "Client connections placed on the worker.", labels=["worker"]
    )
    memory = GaugeMetricFamily(
        f"{PREFIX}_relay_resident_memory_bytes", "The worker's resident memory.", labels=["worker"]
    )
    ready = GaugeMetricFamily(
        f"{PREFIX}_relay_moderation_ready",
        "1 when the worker can moderate (model loaded and tested), else 0.",
        labels=["worker"],
    )
    estimates = GaugeHistogramMetricFamily(
        f"{PREFIX}_relay_sender_estimate_bps",
        "The relay's own estimate of each sender's uplink now, bits per second (senders whose "
        "estimate is ready; what they are told is at most this).",
        labels=["worker"],
    )
    for info in workers:
        legs.add_metric([info.worker_id], len(info.legs))
        memory.add_metric([info.worker_id], info.rss_bytes)
        ready.add_metric([info.worker_id], 1 if info.moderation_ready else 0)
        if info.sender_estimates is not None:
            add_histogram(estimates, [info.worker_id], info.sender_estimates)
    yield from (legs, memory, ready, estimates)


def _worker_counters(reported: list[tuple[str, RelayTotals]]) -> Iterator[Metric]:
    specs = (
        ("relay_packets_forwarded", "RTP packets forwarded to partners.", "packets_forwarded"),
        ("relay_bytes_forwarded", "RTP bytes forwarded to partners.", "bytes_forwarded"),
        ("relay_nacks_received", "NACKs received from clients.", "nacks_received"),
        ("relay_retransmitted_packets", "Packets resent in answer to NACKs.", "retransmitted"),
        ("relay_nacks_sent", "NACKs sent upstream for packets never received.", "nacks_sent"),
        ("relay_plis_received", "Keyframe requests (PLI, FIR) from clients.", "plis_received"),
        ("relay_plis_sent", "Keyframe requests sent to senders.", "plis_sent"),
        (
            "relay_keyframes_replayed",
            "Cached keyframes shown to new partners.",
            "keyframes_replayed",
        ),
        ("relay_cpu_seconds", "CPU time the worker process used.", "cpu_seconds"),
    )
    for name, doc, attr in specs:
        family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=["worker"])
        for worker, totals in reported:
            family.add_metric([worker], getattr(totals, attr))
        yield family
    by_kind = (
        ("relay_packets_dropped", "RTP packets not forwarded, by reason.", "reason", "dropped"),
        (
            "relay_sender_rembs",
            "REMBs sent to senders by the figure that bound them: own (the relay's estimate of "
            "the uplink, lower than the receiver's REMB plus what the gate withheld), receiver "
            "(that one lower, or no estimate yet), own_alone (no recent REMB from the receiver), "
            "own_gated (a moderated stream whose receiver reports no loss).",
            "bound",
            "rembs_sent",
        ),
        (
            "relay_defences",
            "Legs refused, candidates ignored, faults caught and retransmissions withheld, by "
            "kind (docs/protocol.md, Refusals).",
            "kind",
            "defences",
        ),
    )
    for name, doc, label, attr in by_kind:
        family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=["worker", label])
        for worker, totals in reported:
            for key, count in sorted(getattr(totals, attr).items()):
                family.add_metric([worker, key], count)
        yield family
    requests = CounterMetricFamily(
        f"{PREFIX}_relay_keyframe_requests", "Keyframe requests by who needed one (receiver, "
        "gate, switch) and outcome (sent, throttled).",
        labels=["worker", "source", "outcome"],
    )  # fmt: skip
    for worker, totals in reported:
        for key, count in sorted(totals.keyframe_requests.items()):
            source, _, outcome = key.rpartition("_")
            requests.add_metric([worker, source, outcome], count)
    yield requests


def _by_label(name: str, doc: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


class WebhookCollector(Collector):
    """Operator events delivered to the webhook, and lost (queue full, or given up)."""

    def __init__(self, webhook: WebhookSender) -> None:
        self._webhook = webhook

    def collect(self) -> Iterator[Metric]:
        yield _counter(
            "events_webhook_delivered", "Operator events the webhook took.", self._webhook.delivered
        )
        yield _counter(
            "events_webhook_dropped",
            "Operator events lost: dropped from a full queue or given up after retries.",
            self._webhook.dropped,
        )


def metrics_registry(
    hub: SignalingHub, budgets: Budgets, webhook: WebhookSender | None = None
) -> CollectorRegistry:
    """A registry of its own (not the library's global one, so that two services in one
    process, as in tests, do not collide) with this process's CPU and memory beside ours."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    collectors: list[Collector] = [
        SignalingCollector(hub),
        BudgetsCollector(budgets),
        RelayCollector(hub),
    ]
    if webhook is not None:
        collectors.append(WebhookCollector(webhook))
    for collector in collectors:
        registry.register(collector)
    ProcessCollector(registry=registry)
    return registry
