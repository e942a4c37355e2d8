"""What ``chatguard bench`` writes as JSON: one schema per workload, read back by ``bench.plot``.

The schema is the documentation: every figure a run produces is a field here, with its unit in
its name. A figure that could not be measured (no samples, a remote service's memory) is None,
written as null. ``settings``, ``versions`` and ``machine`` come from ``bench.provenance``;
``service_stats`` and ``relay_counters`` are what the measured service reported, as it
reported them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bench.stats import Percentiles

LoadAverage = tuple[float, float, float]


class SearchProbe(msgspec.Struct):
    """One load the capacity search measured."""

    load: int
    missed: list[str]
    """The service levels it missed, in words; empty: it held."""
    saturated: str | None
    """What ran out of CPU ("none"), or None where the workload cannot tell."""
    holds: bool
    seconds: float


class SearchResult(msgspec.Struct):
    """The answer of ``--search``: the largest load that held, and every load measured."""

    capacity: int
    unit: str
    capacity_text: str
    stop_reason: str
    elapsed_s: float
    service_levels: dict[str, float]
    service_levels_text: str
    saturated_at_first_failure: str | None
    probes: list[SearchProbe]


# ---------------------------------------------------------------------- signaling


class SignalingCase(msgspec.Struct):
    """One load of ``chatguard bench signaling``."""

    target: str
    clients_requested: int
    peak_connected_clients: int
    pairs_per_second: float
    pairing_latency: Percentiles
    """join/Next to paired, for clients paired at once."""
    queue_time: Percentiles
    """join/Next to paired, for clients that waited for a partner."""
    signal_relay_latency: Percentiles
    errors: int
    error_examples: list[str]
    loadgen_cpu_percent_of_one_core: float
    server_cpu_percent_of_one_core: float | None = None
    """None for a --target service (not on this machine)."""
    server_rss_mib: float | None = None
    server_rss_kib_per_client: float | None = None
    saturated: str | None = None
    service_levels_missed: list[str] = []
    setup: str = "memory"
    """How the service ran (``bench.signaling_setups``): memory, redis, redis-procsN; for a
    --target service, what the options said."""
    websocket_extensions: str = ""
    """What the service accepted of the clients' offer ("none": no compression)."""
    pairs_total: int = 0
    """Pairs made over the whole load, ramp included (what Redis's counters cover)."""
    redis: RedisWork | None = None
    """Redis's own counters over the whole load; None without Redis."""
    server_cpu_wait_percent: float | None = None
    """Share of the load's time the service's processes (their main threads, on average) were
    ready to run but waited for a CPU: other work on a shared machine, or the load generator."""
    machine_cpu_pressure_percent: float | None = None
    """Share of the load's time some task on this machine waited for a CPU (Linux PSI)."""
    measured_s: float = 0.0
    """Seconds measured: from the end of the ramp once 99.5 % of the clients were connected
    (at the latest half-way through ``--duration``) to the end of the load."""


class RedisWork(msgspec.Struct):
    """What Redis did for one load, from its ``INFO`` before and after."""

    commands: int
    """Commands executed, those the pool's script runs included."""
    round_trips: int
    """Read events on client connections: about one per round trip (a pipeline is one)."""
    commands_per_pairing: float | None
    round_trips_per_pairing: float | None
    by_command: dict[str, int]
    cpu_percent_of_one_core: float = 0.0
    """Redis's CPU over the load (``INFO cpu``), in percent of one core."""
    cpu_ms_per_pairing: float | None = None
    """Redis CPU per pairing, churn and signaling between nodes included: what sizes Redis."""


class WaitingProbe(msgspec.Struct):
    """What N users waiting for a partner cost: each joined with an interest of its own, so none
    could be paired (``bench.signaling_load.hold_waiting``)."""

    clients: int
    websocket_extensions: str
    server_kib_per_client: float
    """Resident memory of the service's processes, per waiting user (after minus before)."""
    redis_bytes_per_client: float | None
    """What Redis holds for the service's keys (``MEMORY USAGE``), per waiting user; None
    without Redis."""


class SetupResult(msgspec.Struct):
    """One setup of the run (``--compare``): its capacity and what a waiting user costs."""

    setup: str
    search: SearchResult | None = None
    waiting: WaitingProbe | None = None


class SignalingResult(msgspec.Struct):
    benchmark: str
    settings: dict[str, Any]
    versions: dict[str, str]
    machine: dict[str, Any]
    cases: list[SignalingCase] = []
    setups: list[SetupResult] = []


# ------------------------------------------------------------- relay, strict --service


class FpsSummary(msgspec.Struct):
    """Delivered frame rate over streams; None where no stream was judged."""

    streams: int
    mean: float | None
    min: float | None
    p5: float | None
    streams_at_full_rate: int


class AddedLatency(msgspec.Struct):
    """Relayed minus direct, percentile by percentile (ms)."""

    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None


class Latency(msgspec.Struct):
    relayed: Percentiles
    direct: Percentiles
    added: AddedLatency


class Packets(msgspec.Struct):
    """Counts summed over a group of streams (``bench.media_peer.StreamWindow.TOTALS``)."""

    packets: int = 0
    sent: int = 0
    audio_packets: int = 0
    audio_sent: int = 0
    unsafe_frames: int = 0
    replayed_frames: int = 0


class GroupPackets(msgspec.Struct):
    relayed: Packets
    direct: Packets


class Loss(msgspec.Struct):
    """Share of the packets sent that never arrived; None where senders are not counted."""

    video: float | None
    audio: float | None


class GroupLoss(msgspec.Struct):
    relayed: Loss
    direct: Loss


class Calls(msgspec.Struct):
    """Call events of the simulated users in the measured span."""

    started: int = 0
    reused: int = 0
    """Calls that kept the user's relay connection (Next on the same relay)."""
    nexts: int = 0
    ended: int = 0
    without_media: int = 0
    error_count: int = 0


class WorkerModeration(msgspec.Struct):
    """The relay workers' own strict-route figures from ``/stats`` over the measured span."""

    seconds: int
    streams: int
    classified_per_s: float
    withheld_per_s: float
    no_verdict: int
    gate_p50_ms_median_second: float | None
    gate_p99_ms_worst_second: float | None
    """The worst second's worst worker: a per-second p99 cannot be averaged."""


class RssKib(msgspec.Struct):
    idle: int
    loaded: int


class RelayCase(msgspec.Struct):
    """One load of ``chatguard bench relay`` (or ``strict --service``): N pairs, one relay."""

    relay: str
    """"forward" (the relay route), "strict" (the strict route) or "naive" (the baseline)."""
    pairs: int
    one_way_streams: int
    legs: int
    delivered_fps: FpsSummary
    fps_per_stream: list[float]
    service_levels_missed: list[str]
    direct_fps: FpsSummary
    latency_ms: Latency
    switch_ms: Percentiles
    """Pairing to the new partner's first complete frame."""
    calls: Calls
    routes: dict[str, int]
    moderation_notices: dict[str, int]
    unsafe_frames_received: int
    errors: list[str]
    relay_cpu_percent_of_core: float | None
    """None where a remote service reported no CPU figure in the span."""
    relay_cpu_measured_by: str
    worker_moderation: WorkerModeration | None
    relay_cpu_percent_per_stream: float | None
    streams_per_core_at_this_cost: float | None
    loadgen_cpu_percent_of_core: list[float]
    loadgen_send_lag_ms: Percentiles
    loadgen_srtp_errors: int
    packets: GroupPackets
    packet_loss: GroupLoss
    streams_without_frames: int
    measured_s: float
    relay_runqueue_wait_percent: float | None
    """None where the relay is not on this machine."""
    machine_cpu_pressure_percent: float | None
    saturated: str
    peers_connected: str
    relay_rss_kib: RssKib
    memory_per_session_kib: float
    loadavg_before: LoadAverage
    loadavg_after: LoadAverage
    transport: str = "udp"
    """How the simulated users reached the relay: "udp", or "tcp" (ICE-TCP, as users whose
    network drops UDP). Direct pairs, the latency baseline, are UDP in both."""
    legs_by_transport: dict[str, int] = {}
    """The users' relay connections by the protocol of their nominated ICE pair, at the end
    of the measured span (what ``transport`` asked for, checked)."""
    service_stats: dict[str, Any] | None = None
    """The service's ``/stats`` at the end (relay and strict routes)."""
    relay_counters: dict[str, Any] | None = None
    """The naive relay's own counters (baseline)."""


class ClipInfo(msgspec.Struct):
    codec: str
    width: int
    height: int
    fps: int
    frames: int
    bitrate_bps: float
    packets_per_second: float
    keyframe_interval_frames: int
    audio: bool


class RelayTarget(msgspec.Struct):
    """The figures a relay case is judged against."""

    streams_per_core: int
    added_latency_p99_ms: float
    full_rate_fps: float
    streams_at_full_rate_fraction: float


class RelayResult(msgspec.Struct):
    benchmark: str
    """"relay", or "strict" for ``chatguard bench strict --service``."""
    service: str
    settings: dict[str, Any]
    versions: dict[str, str]
    machine: dict[str, Any]
    clip: ClipInfo
    target: RelayTarget
    cases: list[RelayCase] = []
    micro_hub_us_per_packet: float | None = None
    """``ForwardingHub.on_rtp`` alone, the relay's own uplink estimate included."""
    micro_hub_without_uplink_estimate_us_per_packet: float | None = None
    micro_uplink_estimate_us_per_packet: float | None = None
    search: SearchResult | None = None
    loadavg_end: LoadAverage | None = None


# ---------------------------------------------------------------------- strict, in this process


class StrictRun(msgspec.Struct):
    """One load of ``chatguard bench strict``: N moderated streams in this process."""

    streams: int
    seconds: float
    engine: str
    """The inference engine and precision that classified, e.g. ``openvino bf16``."""
    relay_cpu_cores: float
    load_cpu_cores: float
    cpu_per_stream_pct: float
    streams_per_core_estimate: float | None
    sent_fps_per_stream: float
    decided_fps_per_stream: float
    decided_fps_by_stream: list[float]
    """Released + dropped per second, per stream: 30 is keeping up."""
    released_fps_per_stream: float
    safe_fps_per_stream: float
    classifications_per_s_per_stream: float
    requests_per_s_per_stream: dict[str, float]
    scene_cuts: int
    scene_classifications: int
    no_verdict: int
    gate_latency: Percentiles
    """A frame's last packet in -> released to the sink (paced), every frame released."""
    verdict_wait: Percentiles
    """A frame's last packet in -> the gate's release, frames that waited for verdicts only:
    what a saturated classifier lengthens (the service levels' latency)."""
    settle_wait: Percentiles
    """The same for frames held while a cut settled (``GateConfig.settle_s`` by design)."""
    classify_roundtrip: Percentiles
    loop_lag: Percentiles
    leaked_unsafe_frames: int
    blocked_events: int
    dropped: dict[str, int]
    service_levels_missed: list[str] = []
    saturated: str = ""


class StrictMeta(msgspec.Struct):
    python: str
    cpus: int | None
    loadavg_before: LoadAverage
    loadavg_after: LoadAverage
    pin: list[int] | None
    seed: int
    clip: str
    cut_signature_distances: list[float]
    scene_threshold: float
    settings: dict[str, Any]
    versions: dict[str, str]


class StrictResult(msgspec.Struct):
    per_frame: dict[str, dict[str, Percentiles]]
    """Engine -> each step's cost alone (the steps before inference do not depend on it)."""
    fastpath_640x480: dict[str, Any] | None
    runs: list[StrictRun]
    meta: StrictMeta
    searches: dict[str, SearchResult] = msgspec.field(default_factory=dict)
    """Engine -> its capacity search, with ``--search``."""


# ---------------------------------------------------------------------- strict, real browsers


class BrowserCall(msgspec.Struct):
    """One call of ``chatguard bench strict-browser``: two Chromium pages through one route."""

    route: str
    seconds: float
    max_bitrate_bps: int | None
    """The sending page's cap (``RTCRtpSender.setParameters``); None: the browser's own."""
    unsafe_frames: int
    """Frames of unsafe scenes the receiving page decoded (the goal: 0 on the strict route)."""
    safe_frames: int
    unreadable_frames: int
    unsafe_run_starts: list[int]
    """Camera-loop positions where a run of unsafe frames at the page began."""
    received_sizes: dict[str, int]
    """Frames the receiving page decoded, by size."""
    sender: dict[str, Any]
    """The sending page's getStats over the call's second half: width, height, fps, kbit_s,
    keyframe_share, limitation (samples by qualityLimitationReason), partner_fps (the other
    direction: the receiving page's moving fake camera as the sending page decodes it)."""
    rembs_sent: dict[str, float]
    """REMBs the relay sent its senders, by the figure that bound them."""
    leak_trace: list[str] = msgspec.field(default_factory=list)
    """The relay's moderation decisions (``[moderation] decision_log``) in the seconds before
    each run of unsafe frames reached the page; empty when none did."""


class StrictBrowserResult(msgspec.Struct):
    """The strict route against the relay route in one run, real Chromium on both ends."""

    calls: list[BrowserCall]
    safe_share: float | None
    """Safe frames the strict route's receiver decoded per second over the relay route's (the
    goal: 0.9); None without both routes."""
    goals_missed: list[str]
    """The strict route's goals this run missed, in words; empty: all met."""
    settings: dict[str, Any]
    versions: dict[str, str]
    machine: dict[str, Any]
