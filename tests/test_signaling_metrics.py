"""The Prometheus exposition of the hub's counters and the workers' reported totals, without a
server: names, labels, and histograms in Prometheus' cumulative form."""

from __future__ import annotations

import random

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from relay import control as rc
from signaling import protocol as p
from signaling.budgets import KINDS, Budgets
from signaling.call_hub import SignalingHub
from signaling.config import config_from_mapping
from signaling.matchmaking import Matchmaker
from signaling.metrics import metrics_registry
from signaling.route_policy import RoutePolicy


def samples(
    hub: SignalingHub, budgets: Budgets | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    budgets = budgets or Budgets(config_from_mapping({}).limits)
    text = generate_latest(metrics_registry(hub, budgets)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def make_hub() -> SignalingHub:
    config = config_from_mapping({})
    return SignalingHub(
        config,
        RoutePolicy(config.regions),
        Matchmaker(SignalingHub.matchmaking_settings(config), random.Random(1)),
    )


def test_histogram_buckets_include_their_bound_and_the_rest_goes_to_inf() -> None:
    hist = rc.Histogram.empty((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        hist.observe(value)
    assert hist.counts == [2, 2, 1]
    assert hist.sum == 8.65


def test_hub_counters_become_metrics_without_users() -> None:
    hub = make_hub()
    a = hub.connect("default", 0, 0)
    b = hub.connect("default", 0, 0)
    hub.receive(a, p.Join(), 1.0, 1)
    hub.receive(b, p.Join(), 1.5, 1)  # a waited 0.5 s, b nothing
    hub.receive(a, p.Ping(), 2, 2)
    hub.receive(a, p.Chat(pair="nope", text="hi"), 2, 2)  # a stale pair: an error reply
    got = samples(hub)
    assert got["chatguard_clients", ()] == 2
    assert got["chatguard_pairs", ()] == 1
    assert got["chatguard_pairs_made_total", ()] == 1
    assert got["chatguard_signaling_messages_total", (("type", "join"),)] == 2
    assert got["chatguard_signaling_messages_total", (("type", "chat"),)] == 1
    assert got["chatguard_signaling_errors_total", (("code", "stale_pair"),)] == 1
    assert got["chatguard_pairing_wait_seconds_bucket", (("le", "0.01"),)] == 1
    assert got["chatguard_pairing_wait_seconds_bucket", (("le", "0.5"),)] == 2
    assert got["chatguard_pairing_wait_seconds_bucket", (("le", "+Inf"),)] == 2
    assert got["chatguard_pairing_wait_seconds_sum", ()] == 0.5
    assert not any(a in str(labels) or b in str(labels) for _, labels in got)


def test_worker_totals_are_labelled_by_worker_and_drop_reason() -> None:
    hub = make_hub()
    hub.worker_joined(rc.Hello(worker_id="w1", token="t", pid=7, max_sessions=10))
    gate = rc.Histogram.empty(rc.GATE_LATENCY_BOUNDS_S)
    gate.observe(0.02)
    settle = rc.Histogram.empty(rc.SETTLE_LATENCY_BOUNDS_S)
    settle.observe(1.1)
    inference = rc.Histogram.empty(rc.MODEL_INFERENCE_BOUNDS_S)
    inference.observe(0.015)
    totals = rc.RelayTotals(
        packets_forwarded=900,
        bytes_forwarded=800_000,
        dropped={"unpaired": 3, "late": 1},
        keyframe_requests={"gate_sent": 4, "gate_throttled": 9},
        rembs_sent={"own": 5, "own_alone": 2},
        cpu_seconds=1.5,
        moderation=rc.ModerationTotals(
            classified=40,
            frames_withheld=6,
            gate_latency=gate,
            settle_latency=settle,
            inference=inference,
        ),
    )
    estimates = rc.Histogram.empty(rc.SENDER_ESTIMATE_BOUNDS_BPS)
    estimates.observe(250_000)
    estimates.observe(4_000_000)
    load = rc.Load(
        legs=2, cpu_percent=10, rss_bytes=50_000_000, totals=totals, sender_estimates=estimates
    )
    hub.worker_message("w1", load, 0, 0)
    got = samples(hub)
    worker = (("worker", "w1"),)
    assert got["chatguard_relay_packets_forwarded_total", worker] == 900
    assert got["chatguard_relay_bytes_forwarded_total", worker] == 800_000
    assert got["chatguard_relay_packets_dropped_total", (("reason", "late"), *worker)] == 1
    assert got["chatguard_relay_packets_dropped_total", (("reason", "unpaired"), *worker)] == 3
    requests = "chatguard_relay_keyframe_requests_total"
    assert got[requests, (("outcome", "sent"), ("source", "gate"), *worker)] == 4
    assert got[requests, (("outcome", "throttled"), ("source", "gate"), *worker)] == 9
    assert got["chatguard_relay_sender_rembs_total", (("bound", "own"), *worker)] == 5
    assert got["chatguard_relay_sender_rembs_total", (("bound", "own_alone"), *worker)] == 2
    estimate = "chatguard_relay_sender_estimate_bps_bucket"
    assert got[estimate, (("le", "200000.0"), *worker)] == 0
    assert got[estimate, (("le", "300000.0"), *worker)] == 1
    assert got[estimate, (("le", "+Inf"), *worker)] == 2
    assert got["chatguard_relay_sender_estimate_bps_gsum", worker] == 4_250_000
    assert got["chatguard_relay_cpu_seconds_total", worker] == 1.5
    assert got["chatguard_relay_resident_memory_bytes", worker] == 50_000_000
    assert got["chatguard_strict_classifications_total", worker] == 40
    assert got["chatguard_strict_frames_withheld_total", worker] == 6
    assert got["chatguard_strict_gate_latency_seconds_bucket", (("le", "0.01"), *worker)] == 0
    assert got["chatguard_strict_gate_latency_seconds_bucket", (("le", "0.025"), *worker)] == 1
    assert got["chatguard_strict_gate_latency_seconds_count", worker] == 1
    settled = "chatguard_strict_settle_latency_seconds_bucket"
    assert got[settled, (("le", "1.0"), *worker)] == 0
    assert got[settled, (("le", "1.25"), *worker)] == 1
    assert got["chatguard_model_inference_seconds_bucket", (("le", "0.01"), *worker)] == 0
    assert got["chatguard_model_inference_seconds_bucket", (("le", "0.02"), *worker)] == 1
    assert got["chatguard_model_inference_seconds_sum", worker] == 0.015
    hub.worker_lost("w1")  # a worker that went away takes its series with it
    assert not any(labels == worker for _, labels in samples(hub))


def test_refusals_of_the_budgets_are_counted_by_kind_and_reason() -> None:
    hub = make_hub()
    budgets = Budgets(config_from_mapping({"limits": {"connections_per_address": 1}}).limits)
    assert budgets.admit("10.0.0.1", 0.0) is None
    assert budgets.admit("10.0.0.1", 0.0) == "too_many_open"
    budget = budgets.connection("10.0.0.1", 0.0)
    while not (refused := budget.take("candidate", 0.0)) or not refused.disconnect:
        pass
    budgets.header_timeouts += 1
    got = samples(hub, budgets)
    # 50 refusals (refused_to_disconnect) told, the 51st disconnects
    assert got[("chatguard_signaling_rate_limited_total", (("kind", "candidate"),))] == 51
    assert got[("chatguard_signaling_rate_limited_total", (("kind", "sdp"),))] == 0
    assert all(("chatguard_signaling_rate_limited_total", (("kind", k),)) in got for k in KINDS)
    flooders = ("chatguard_signaling_flooders_disconnected_total", (("kind", "candidate"),))
    assert got[flooders] == 1
    refused_at_door = (
        "chatguard_signaling_connections_refused_total",
        (("reason", "too_many_open"),),
    )
    assert got[refused_at_door] == 1
    assert got[("chatguard_signaling_connections_refused_total", (("reason", "too_fast"),))] == 0
    assert got[("chatguard_http_header_timeouts_total", ())] == 1
    assert got[("chatguard_signaling_addresses_tracked", ())] == 1
