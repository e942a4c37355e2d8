"""Configuration: one TOML file, validated into typed structs, plus command-line overrides.

Every component reads its settings from here so that an operator has one file to edit and one
place where a typo is reported. Validation is done by msgspec; its errors are re-said by
``signaling.config_errors`` with the file, the TOML key and, for a choice, the allowed values.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from signaling.config_errors import explain
from signaling.protocol import CHAT_MAX_CHARS
from signaling.route_policy import Route

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]

SECRET_ENV = {
    "relay.token": "CHATGUARD_RELAY_TOKEN",
    "ice.turn.secret": "CHATGUARD_TURN_SECRET",
    "events.webhook_secret": "CHATGUARD_WEBHOOK_SECRET",
}
"""Secrets that may come from the environment instead of the file (a file is easier to leak:
backups, a repository); set and non-empty, the variable wins over the file."""


MAX_RECENT = 100_000
"""The most events (or reports) the admin listener may be asked to keep: each is a few hundred
bytes, in memory or in Redis, and its pages list them all."""

MIN_RELAY_TOKEN_CHARS = 16
"""A shorter relay token is refused at load: it is the one secret guarding ``/relay``."""


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message says where."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for config sections: unknown keys are errors, because a typo silently ignored is
    a setting silently not applied."""


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: LogLevel = "info"
    """At info, one line per call event (paired, connected, fell back, failed, ended); at
    debug, also every HTTP request (health and readiness polls included)."""
    max_message_bytes: int = 65536
    """Largest WebSocket message accepted; SDP with many codecs is ~10 KiB, so 64 KiB is ample."""
    send_queue_limit: int = 256
    """Messages queued for a client that is not reading before it is disconnected as too slow."""
    websocket_compression: bool = False
    """Accept permessage-deflate, which every browser offers. Off: signaling messages are small
    (an SDP is 2-10 KB, the rest under 200 bytes) and a signaling service is bound by CPU and
    memory per client, not bandwidth; compressing about doubled the CPU per message and added
    tens of KB per connection (``chatguard bench signaling``, README "Benchmarks")."""
    log_format: LogFormat = "text"
    """"json": one JSON object per line (UTC timestamps), for a log collector."""
    certfile: str = ""
    """PEM certificate (chain) to serve HTTPS and WSS directly; empty: plain HTTP (behind a
    proxy that terminates TLS, or on localhost, where browsers allow the camera anyway)."""
    keyfile: str = ""
    """The certificate's PEM private key (required with `certfile`)."""
    drain_timeout_s: float = 30.0
    """SIGTERM drains: new clients are refused and connected ones sent elsewhere, and the
    process exits once no call needs it any more, or after this long (a rolling restart's
    bound; keep the service manager's stop time-out above it)."""
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    """Addresses or networks (e.g. ["127.0.0.1", "10.0.0.0/8"]) of the reverse proxies in
    front of this server. Only a request whose peer is one of them has its client address
    read from X-Forwarded-For / Forwarded and its region from ``[regions] trusted_header``;
    empty: every request is taken as it comes (the socket's address, the default region)."""
    forwarded_header: ForwardedHeader = "x-forwarded-for"
    """The header those proxies write the client's address in (only that one is read: a
    proxy passes the other on as the client sent it)."""
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    """Page origins (e.g. ["https://chat.example.org"]) whose scripts may open ``/ws``;
    empty: only pages served with the same host as the request's Host header. ["*"]: any
    site at all (unsafe: another site could then run calls in its visitors' names)."""

    @property
    def access_log(self) -> bool:
        """A line per HTTP request only at debug: not one per health poll or scrape."""
        return self.log_level == "debug"


class AdminConfig(_Section):
    """The admin listener: `/metrics` (Prometheus), `/stats`, `/events` and `/reports` (JSON)
    and a page of the last two at `/`, kept off the public port. Localhost by default; expose
    it only to your monitoring."""

    host: str = "127.0.0.1"
    port: int = 9090
    """0: no admin listener."""


class MatchmakingConfig(_Section):
    repair_cooldown_s: float = 60.0
    interest_fallback_s: float = 5.0
    heartbeat_timeout_s: float = 30.0
    heartbeat_interval_s: float = 10.0
    connect_timeout_s: float = 10.0
    """How long a client waits for media to connect before it says the call failed."""


class TurnConfig(_Section):
    urls: list[str] = msgspec.field(default_factory=list)
    secret: str = ""
    """coturn's ``static-auth-secret`` (``use-auth-secret`` mode)."""
    credential_ttl_s: int = 300
    """TURN credentials expire this long after they are handed out (with each pairing, never
    before ``join``). coturn checks the expiry when an allocation is made, not while it lasts,
    so a call outlives it; a leaked credential does not."""
    realm: str = "chatguard"
    """coturn's ``realm`` (``chatguard turn-config`` prints it; browsers never see it)."""
    tls_cert_file: str = ""
    """Certificate chain (PEM) for ``turns:`` URLs, as coturn's ``cert``."""
    tls_key_file: str = ""
    """Its private key (PEM), as coturn's ``pkey``."""
    allowed_peer_ips: list[str] = msgspec.field(default_factory=list)
    """Private addresses TURN may relay to although private ranges are denied: the relay
    workers' (the announced addresses of ``[relay]`` are added by themselves)."""


class IceConfig(_Section):
    stun_urls: list[str] = msgspec.field(default_factory=list)
    turn: TurnConfig = msgspec.field(default_factory=TurnConfig)


class RegionsConfig(_Section):
    trusted_header: str = ""
    """Request header carrying the client's country (set by the CDN/proxy). Empty: trust none."""
    default_region: str = "default"
    default_route: Route = Route.DIRECT
    routes: dict[str, Route] = msgspec.field(default_factory=dict)
    """Region code (e.g. "DE") to route."""


class RelayConfig(_Section):
    workers: int | Literal["auto"] = "auto"
    """Relay worker processes `serve` starts on this machine: a number (0: none, for
    deployments whose relays run elsewhere) or "auto", one per CPU core."""
    token: str = ""
    """Shared secret relay workers present to signaling; empty: `serve` makes a random one
    for the workers it starts (remote workers then need it set here and on their side). At
    least ``MIN_RELAY_TOKEN_CHARS`` characters."""
    hello_failures_to_block: int = 5
    """Failed relay hellos (a wrong token, no hello) from one address within
    `hello_failure_window_s` after which that address is refused at ``/relay`` for
    `hello_block_s`: a token cannot be guessed at line speed."""
    hello_failure_window_s: float = 60.0
    hello_block_s: float = 300.0
    workers_from: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.0/8", "::1"])
    """Addresses and networks relay workers may dial `/relay` from (the client address as
    `[server] trusted_proxies` establishes it), besides the address the service listens on.
    The default admits this machine's own workers only: the control link is not for the
    public, so a remote worker's network is listed."""
    max_legs_per_worker: int = 400
    fallback_after_s: float = 5.0
    """A direct call whose media has not connected by then moves to the relay."""
    stun_url: str = ""
    """A STUN server relay workers use to learn their public address when they sit behind
    NAT (a cloud VM's 1:1 NAT, say); empty: they offer their interface addresses only."""
    ice_tcp_port: int = 7880
    """ICE over TCP for browsers on networks that drop UDP: the local workers listen on this
    port and the next ones (one each, consecutive); 0: UDP only."""
    udp_ports: str = ""
    """UDP ports of the workers' ICE sockets, "MIN-MAX" (e.g. "40000-40199"), shared by the
    local workers; a leg takes one port per address it gathers on. Empty: any port."""
    udp_port: int = 0
    """One UDP port shared by every leg of a worker (legs told apart by ICE username), instead
    of a port per leg: local worker i uses udp_port + i; 0: a port per leg (``udp_ports``)."""
    gather_from: list[str] = msgspec.field(default_factory=list)
    """Interface names, addresses or networks (e.g. ["eth0"], ["10.0.0.0/8"]) the workers
    offer to clients; empty: every address but loopback and IPv6 link-local."""
    announced_addresses: list[str] = msgspec.field(default_factory=list)
    """Addresses clients are told instead of the interface address of the same family: the
    public IP of a 1:1 NAT (a cloud machine's). Several allowed (an IPv4 and an IPv6 one)."""
    announce_interface_addresses: bool = False
    """Offer the interface addresses beside the announced ones (clients on the same private
    network then need not go through the NAT)."""

    def local_workers(self) -> int:
        """How many relay workers `serve` starts here: "auto" is one per core, as a worker is
        single-threaded."""
        if self.workers == "auto":
            return os.cpu_count() or 1
        return self.workers

    def udp_port_range(self) -> tuple[int, int] | None:
        """``udp_ports`` as (first, last); None when unset. Call after :meth:`Config.check`."""
        return parse_port_range(self.udp_ports) if self.udp_ports else None


def parse_port_range(text: str) -> tuple[int, int]:
    """ "40000-40199" as (40000, 40199); ValueError says what is wrong."""
    first, dash, last = text.partition("-")
    try:
        low, high = int(first), int(last if dash else first)
    except ValueError:
        raise ValueError(f'{text!r} is not a port range "MIN-MAX"') from None
    if not 0 < low <= high < 65536:
        raise ValueError(f"{text!r}: ports must be 1-65535, MIN at most MAX")
    return low, high


class ModerationConfig(_Section):
    block: dict[str, float] | None = None
    """Label -> score at or above which a frame is unsafe. None: the model's default list
    (exposed genitals, anus, breasts, buttocks). `serve --block` overrides it."""
    verdict_ttl_s: float = 1.0
    """A safe verdict covers later frames of the same scene for this long."""
    min_classifications_per_s: float = 2.0
    reference_margin: float = 0.75
    """A score at or above this fraction of its label's threshold (though under it) is a near
    miss: that frame is released alone and vouches for no later frame. 1: off."""
    resume_after_safe: int = 2
    """Safe verdicts in a row, the resuming keyframe's included, that lift a block."""
    alert_s: float = 2.0
    """For this long after a block, a resume or a near miss (and while blocked), classify at
    `alert_classifications_per_s`."""
    alert_classifications_per_s: float = 5.0
    scene_peak_cells: int = 16
    """The most-changed cells of the 18x32 scene signature that `scene_peak_threshold` averages."""
    scene_peak_threshold: float = 40.0
    """Mean luma change (0-255) of those cells from which a frame is a new scene, classified
    before it is forwarded: a change confined to part of the picture."""
    detail_growth: float = 0.1
    """A frame with more fine detail than this fraction above the frame a safe verdict was on
    is classified itself, not covered: an encoder refining a coarse picture after a cut."""
    settle_s: float = 1.0
    """After a cut (a keyframe, a new scene), frames wait until two that came this much later
    are found safe: a verdict on the coarse first frames of a scene says little, and an encoder
    that is still ramping up draws the detail in for up to about a second. 0: off."""
    mute_audio_while_blocked: bool = False
    decision_log: bool = False
    """Log every decision of every moderated stream (frame ids, detail, verdict scores, the
    gate's rules; never pixels) at info on `relay.strict.decisions`, whatever the log level:
    for a leak's post-mortem. About 60-100 lines a second per stream."""
    max_decoded_pixels: int = 1920 * 1088
    """Largest picture (width x height) a strict-route sender may send; a larger keyframe is
    withheld undecoded (fail closed) and counted. The default admits 1080p."""
    decode_budget: float = 0.25
    """Seconds of the worker's decoder one strict stream may use per second (a 640x480 VP8
    stream at 30 fps uses about 0.03); a stream over it is withheld until it is back under."""
    strikes_to_ban: int = 3
    strike_window_s: float = 600.0
    ban_s: float = 3600.0
    """How long an offender's device is refused after the last strike."""
    devices_to_ban_network: int = 3
    """Banned devices from one address (IPv6: one /64) that get the address itself banned; one
    address is often many people (a school, carrier-grade NAT). 0: never ban addresses."""


class ChatConfig(_Section):
    max_chars: int = 500
    """Longest text message (the protocol's ceiling is 500)."""
    burst: int = 5
    """Messages a client may send at once before the rate limit applies."""
    per_s: float = 1.0
    """Messages per second a client may keep sending."""


class Budget(_Section):
    """One kind of message's token buckets (``signaling.budgets``): `burst` at once, then
    `per_s`, for each connection; `address_burst` and `address_per_s` for all connections of
    one address together. All four are required when a kind is set, so that a partial table
    never mixes an operator's numbers with another kind's defaults."""

    per_s: float
    burst: int
    address_per_s: float
    address_burst: int


def _budget(per_s: float, burst: int, address_per_s: float, address_burst: int) -> Any:
    return msgspec.field(default_factory=lambda: Budget(per_s, burst, address_per_s, address_burst))


class LimitsConfig(_Section):
    """Abuse budgets of the public port: far above what the web client sends (a browser
    sends dozens of ICE candidates at once), so only a script flooding the service meets them."""

    per_address: bool = True
    """false: no per-address cap or budgets, only per-connection ones (every client comes
    from one address: a load generator, or a proxy not declared as trusted)."""
    connections_per_address: int = 20
    """Open WebSockets from one address; one more is refused with close code 4030."""
    connects_per_s: float = 2.0
    connect_burst: int = 40
    """New WebSockets one address may open at once, then per second (over: 4030)."""
    header_timeout_s: float = 10.0
    """An HTTP request (a WebSocket handshake included) whose headers have not all arrived
    this long after the connection opened, or after the previous response, is closed."""
    refused_to_disconnect: int = 50
    """Messages refused as over budget (one forgiven per second) after which the client is
    disconnected with close code 4029."""
    join: Budget = _budget(2.0, 20, 20.0, 200)
    """join, next and leave."""
    sdp: Budget = _budget(2.0, 20, 20.0, 200)
    """offer and answer."""
    candidate: Budget = _budget(20.0, 200, 200.0, 2000)
    call_state: Budget = _budget(2.0, 20, 20.0, 200)
    report: Budget = _budget(0.5, 10, 5.0, 100)
    chat: Budget = _budget(5.0, 20, 50.0, 200)
    """A backstop behind ``[chat]``'s own, tighter, per-client limit."""
    ping: Budget = _budget(1.0, 10, 20.0, 200)
    invalid: Budget = _budget(1.0, 10, 10.0, 100)
    """Messages that could not be read: malformed, invalid, too large, binary or of another
    protocol version."""

    def budgets(self) -> dict[str, Budget]:
        """The message budgets by kind (``signaling.budgets.KINDS``): every `Budget` field."""
        return {
            name: value
            for name in self.__struct_fields__
            if isinstance(value := getattr(self, name), Budget)
        }

    def problems(self) -> list[str]:
        problems: list[str] = []
        if self.connections_per_address < 1 or self.connect_burst < 1:
            problems.append("limits.connections_per_address and connect_burst must be at least 1")
        if self.connects_per_s <= 0 or self.header_timeout_s <= 0:
            problems.append("limits.connects_per_s and header_timeout_s must be positive")
        if self.refused_to_disconnect < 1:
            problems.append("limits.refused_to_disconnect must be at least 1")
        for kind, budget in self.budgets().items():
            if min(budget.per_s, budget.address_per_s) <= 0:
                problems.append(f"limits.{kind}: per_s and address_per_s must be positive")
            if min(budget.burst, budget.address_burst) < 1:
                problems.append(f"limits.{kind}: burst and address_burst must be at least 1")
        return problems


class ReportsConfig(_Section):
    reporters_to_ban: int = 3
    """Distinct reporters (devices) whose reports about one device, within `window_s`, ban it.
    Must be at least 2: no one can ban someone alone."""
    window_s: float = 3600.0
    ban_s: float = 86400.0
    """How long a reported device is refused after the report that crossed the limit."""


class WebClientConfig(_Section):
    require_age_confirmation: bool = False
    """The page asks people to confirm their age before the camera opens."""
    minimum_age: int = 18


class EventsConfig(_Section):
    """Operator events (``signaling.events``): every moderation decision, as metadata, to the
    log (logger ``chatguard.events``) and, if set, to a webhook."""

    webhook_url: str = ""
    """POSTed one JSON event per request, signed (see README); empty: log only."""
    webhook_secret: str = ""
    """HMAC-SHA256 key of the signature; or the CHATGUARD_WEBHOOK_SECRET environment variable."""
    queue_limit: int = 1000
    """Events waiting for delivery beyond which the oldest are dropped (and logged)."""
    recent_limit: int = 500
    """The most recent events, and the most recent reports, the admin listener lists; with
    `[cluster] redis_url` they are kept in Redis, so every node lists the same."""
    retention_s: float = 86400.0
    """Events older than this are no longer listed (Redis forgets them too); reports are
    listed for `[reports] window_s`, while they count towards a ban."""
    include_addresses: bool = False
    """Add the subject's IP address to each event (``address``): off by default, as an address
    is personal data and the session id already ties an event to this service's own logs."""


class ClusterConfig(_Section):
    redis_url: str = ""
    """A Redis server shared by every signaling process of one service (``redis://host:6379/0``);
    empty: this process alone, everything in memory. See ``signaling.cluster``."""
    node_id: str = ""
    """This process's name among the nodes; empty: made up at start (host name and pid)."""
    presence_ttl_s: float = 10.0
    """A node that has not renewed its presence for this long is dead: its clients' partners
    are told and re-queued. Must not exceed the heartbeat time-out."""
    key_prefix: str = "cg:"
    """Prefix of every key and channel, so that one Redis can hold several services."""


class Config(_Section):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    relay: RelayConfig = msgspec.field(default_factory=RelayConfig)
    moderation: ModerationConfig = msgspec.field(default_factory=ModerationConfig)
    matchmaking: MatchmakingConfig = msgspec.field(default_factory=MatchmakingConfig)
    ice: IceConfig = msgspec.field(default_factory=IceConfig)
    regions: RegionsConfig = msgspec.field(default_factory=RegionsConfig)
    chat: ChatConfig = msgspec.field(default_factory=ChatConfig)
    reports: ReportsConfig = msgspec.field(default_factory=ReportsConfig)
    web_client: WebClientConfig = msgspec.field(default_factory=WebClientConfig)
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)
    events: EventsConfig = msgspec.field(default_factory=EventsConfig)
    cluster: ClusterConfig = msgspec.field(default_factory=ClusterConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)

    def check(self) -> None:
        """Cross-field checks that types alone cannot express."""
        problems: list[str] = []
        if not 0 < self.server.port < 65536:
            problems.append(f"server.port must be 1-65535, got {self.server.port}")
        if not 0 <= self.admin.port < 65536:
            problems.append(f"admin.port must be 0 (off) or 1-65535, got {self.admin.port}")
        elif self.admin.port == self.server.port and self.admin.port:
            problems.append("admin.port must differ from server.port")
        if bool(self.server.certfile) != bool(self.server.keyfile):
            problems.append("server.certfile and server.keyfile go together")
        if self.events.webhook_url and not self.events.webhook_secret:
            problems.append(
                f"events.webhook_secret (or {SECRET_ENV['events.webhook_secret']}) "
                "is required when events.webhook_url is set"
            )
        if self.events.webhook_url and not self.events.webhook_url.startswith(
            ("http://", "https://")
        ):
            problems.append("events.webhook_url must be an http:// or https:// URL")
        if self.events.queue_limit < 1:
            problems.append("events.queue_limit must be at least 1")
        if not 1 <= self.events.recent_limit <= MAX_RECENT:
            problems.append(f"events.recent_limit must be 1-{MAX_RECENT}")
        if self.events.retention_s <= 0:
            problems.append("events.retention_s must be positive")
        if self.server.max_message_bytes < 1024:
            problems.append("server.max_message_bytes must be at least 1024")
        if self.server.drain_timeout_s < 0:
            problems.append("server.drain_timeout_s must be 0 (no drain) or more")
        mm = self.matchmaking
        for name in ("heartbeat_timeout_s", "heartbeat_interval_s", "connect_timeout_s"):
            if getattr(mm, name) <= 0:
                problems.append(f"matchmaking.{name} must be positive")
        if mm.heartbeat_interval_s >= mm.heartbeat_timeout_s:
            problems.append("matchmaking.heartbeat_interval_s must be below heartbeat_timeout_s")
        for name in ("repair_cooldown_s", "interest_fallback_s"):
            if getattr(mm, name) < 0:
                problems.append(f"matchmaking.{name} must not be negative")
        if self.ice.turn.urls and not self.ice.turn.secret:
            problems.append("ice.turn.secret is required when ice.turn.urls is set")
        if self.relay.workers != "auto" and self.relay.workers < 0:
            problems.append('relay.workers must be "auto" or a number >= 0')
        if self.relay.max_legs_per_worker < 2:
            problems.append("relay.max_legs_per_worker must be at least 2")
        if self.relay.fallback_after_s <= 0:
            problems.append("relay.fallback_after_s must be positive")
        last_ice_tcp_port = self.relay.ice_tcp_port + max(self.relay.local_workers() - 1, 0)
        if self.relay.ice_tcp_port < 0 or last_ice_tcp_port > 65535:
            problems.append("relay.ice_tcp_port must be 0 (off) or leave a port per worker")
        last_udp_port = self.relay.udp_port + max(self.relay.local_workers() - 1, 0)
        if self.relay.udp_port < 0 or last_udp_port > 65535:
            problems.append("relay.udp_port must be 0 (off) or leave a port per worker")
        if self.relay.udp_port and self.relay.udp_ports:
            problems.append(
                "relay.udp_port (one shared port) and relay.udp_ports exclude each other"
            )
        problems += self._check_addresses()
        problems += self._check_trust()
        mod = self.moderation
        for label, threshold in (mod.block or {}).items():
            if not 0.0 < threshold <= 1.0:
                problems.append(f"moderation.block.{label} must be in (0, 1], got {threshold}")
        positive = (
            "verdict_ttl_s", "min_classifications_per_s", "strike_window_s", "ban_s",
            "alert_classifications_per_s", "scene_peak_threshold", "decode_budget",
        )  # fmt: skip
        for name in positive:
            if getattr(mod, name) <= 0:
                problems.append(f"moderation.{name} must be positive")
        if not 0.0 < mod.reference_margin <= 1.0:
            problems.append("moderation.reference_margin must be in (0, 1] (1: no margin)")
        if mod.resume_after_safe < 1 or mod.alert_s < 0:
            problems.append("moderation.resume_after_safe must be 1 or more, alert_s 0 or more")
        if mod.max_decoded_pixels < 64 * 64:
            problems.append("moderation.max_decoded_pixels must be at least 4096 (64x64)")
        if mod.detail_growth < 0:
            problems.append("moderation.detail_growth must be 0 or more")
        if not 0 <= mod.settle_s <= 2:
            problems.append("moderation.settle_s must be 0 (off) to 2 seconds")
        if not 1 <= mod.scene_peak_cells <= 256:
            problems.append("moderation.scene_peak_cells must be 1-256")
        if mod.devices_to_ban_network < 0:
            problems.append("moderation.devices_to_ban_network must be 0 (never) or more")
        if mod.strikes_to_ban < 1:
            problems.append("moderation.strikes_to_ban must be at least 1")
        if self.ice.turn.credential_ttl_s <= 0:
            problems.append("ice.turn.credential_ttl_s must be positive")
        problems.extend(self._check_client_features())
        problems.extend(self._check_cluster())
        problems.extend(self.limits.problems())
        if problems:
            raise ConfigError("; ".join(problems))

    def _check_cluster(self) -> list[str]:
        cluster = self.cluster
        if not cluster.redis_url:
            return []  # one process alone: the rest of the section does not apply
        problems: list[str] = []
        if not cluster.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("cluster.redis_url must start with redis://, rediss:// or unix://")
        if not 0 < cluster.presence_ttl_s <= self.matchmaking.heartbeat_timeout_s:
            # a dead node's clients are handed back no later than a silent client's partner
            problems.append("cluster.presence_ttl_s must be positive, at most heartbeat_timeout_s")
        return problems

    def _check_trust(self) -> list[str]:
        """Who is believed: proxies, page origins, relay workers."""
        problems: list[str] = []
        listed = [("server.trusted_proxies", v) for v in self.server.trusted_proxies]
        listed += [("relay.workers_from", v) for v in self.relay.workers_from]
        for key, value in listed:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                problems.append(f"{key}: {value!r} is not an IP address or network")
        origins = self.server.allowed_origins
        if "*" in origins and len(origins) > 1:
            problems.append('server.allowed_origins: "*" (any origin) goes alone')
        for value in origins:
            if value != "*" and not _is_origin(value):
                problems.append(
                    f"server.allowed_origins: {value!r} is not an origin "
                    '("https://host" or "http://host:port", no path)'
                )
        token = self.relay.token
        if token and len(token) < MIN_RELAY_TOKEN_CHARS:
            problems.append(
                f"relay.token (or {SECRET_ENV['relay.token']}) must be at least "
                f"{MIN_RELAY_TOKEN_CHARS} characters, got {len(token)}"
            )
        relay = self.relay
        if relay.hello_failures_to_block < 1:
            problems.append("relay.hello_failures_to_block must be at least 1")
        if relay.hello_failure_window_s <= 0 or relay.hello_block_s <= 0:
            problems.append("relay.hello_failure_window_s and relay.hello_block_s must be positive")
        return problems

    def _check_addresses(self) -> list[str]:
        problems: list[str] = []
        if self.relay.udp_ports:
            try:
                parse_port_range(self.relay.udp_ports)
            except ValueError as exc:
                problems.append(f"relay.udp_ports: {exc}")
        for key, values in (
            ("relay.announced_addresses", self.relay.announced_addresses),
            ("ice.turn.allowed_peer_ips", self.ice.turn.allowed_peer_ips),
        ):
            for value in values:
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    problems.append(f"{key}: {value!r} is not an IP address")
        if bool(self.ice.turn.tls_cert_file) != bool(self.ice.turn.tls_key_file):
            problems.append("ice.turn.tls_cert_file and tls_key_file go together")
        return problems

    def _check_client_features(self) -> list[str]:
        problems: list[str] = []
        if not 1 <= self.chat.max_chars <= CHAT_MAX_CHARS:
            problems.append(f"chat.max_chars must be 1-{CHAT_MAX_CHARS}")
        if self.chat.burst < 1 or self.chat.per_s <= 0:
            problems.append("chat.burst must be at least 1 and chat.per_s positive")
        reports = self.reports
        if reports.reporters_to_ban < 2:
            problems.append("reports.reporters_to_ban must be at least 2 (no one bans alone)")
        if reports.window_s <= 0 or reports.ban_s <= 0:
            problems.append("reports.window_s and reports.ban_s must be positive")
        if self.web_client.minimum_age < 1:
            problems.append("web_client.minimum_age must be positive")
        return problems


def _is_origin(value: str) -> bool:
    """An origin as a browser sends it: scheme, host and an optional port, nothing else."""
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not (parts.path or parts.query or parts.fragment or parts.username)
    )


def config_from_mapping(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate already-parsed data; errors are prefixed with `source` so the operator knows
    which file to open."""
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {explain(exc, data, Config)}") from None
    try:
        config.check()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def _with_env_secrets(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """`data` with the secrets of ``SECRET_ENV`` that the environment sets put in place."""
    for dotted, variable in SECRET_ENV.items():
        value = environ.get(variable, "")
        if not value:
            continue
        *sections, key = dotted.split(".")
        table = data
        for section in sections:
            table = table.setdefault(section, {})
            if not isinstance(table, dict):
                break  # the file has a non-table there: validation will say so
        else:
            table[key] = value
    return data


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read the TOML file at `path`, or the embedded defaults when `path` is None, with the
    secrets the environment gives (``SECRET_ENV``)."""
    if path is None:
        return config_from_mapping(_with_env_secrets({}, environ), "<defaults>")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return config_from_mapping(_with_env_secrets(data, environ), str(path))
