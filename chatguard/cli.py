"""The ``chatguard`` command: ``serve`` runs everything on one machine with embedded defaults.

Options on the command line override the config file, which overrides the built-in defaults,
so an operator can start with no file at all and add one only for what they change.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import msgspec

from chatguard.bench_cli import add_bench_parser, run_bench
from chatguard.logs import configure_logging
from chatguard.supervisor import CA_ENV, TOKEN_ENV
from signaling.config import (
    Config,
    ConfigError,
    LogFormat,
    LogLevel,
    config_from_mapping,
    load_config,
)
from signaling.route_policy import Route

if TYPE_CHECKING:
    from relay.ice_gathering import GatheringPolicy

DEFAULT_BLOCK_THRESHOLD = 0.5


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatguard",
        description="Random 1:1 video chat that is safe by construction: signaling, "
        "a forwarding media relay and inline moderation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the whole service on this machine",
        description="Run signaling (and the web client at /) and one media relay worker per "
        "core on this machine, with embedded defaults: in-memory matchmaking, the bundled "
        "moderation model, no config file needed. Options given here override the config file.",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML configuration file (see README, 'Configuration'); defaults are built in",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port to listen on (default 8080)")
    serve.add_argument(
        "--route",
        choices=[route.value for route in Route],
        help="force this route for every region: 'direct' (peer-to-peer), 'relay' "
        "(through the media relay) or 'strict' (relayed and moderated); "
        "default: per region, from the config file",
    )
    serve.add_argument(
        "--block",
        action="append",
        metavar="LABEL[:THRESHOLD]",
        help="strict route: block video when the model reports LABEL with a score of at least "
        f"THRESHOLD (default {DEFAULT_BLOCK_THRESHOLD}); repeatable; replaces the policy's "
        "list (labels are the model's, e.g. FEMALE_BREAST_EXPOSED)",
    )
    serve.add_argument(
        "--relay-workers",
        type=int,
        metavar="N",
        help="relay worker processes to start here (default: one per CPU core; 0: none, "
        "when relays run on other machines with `chatguard relay`)",
    )
    serve.add_argument(
        "--admin-port",
        type=int,
        metavar="N",
        help="port of the admin listener with /metrics and /stats, on [admin] host "
        "(default 9090 on 127.0.0.1; 0: off)",
    )
    serve.add_argument(
        "--certfile",
        metavar="FILE",
        help="PEM certificate (chain): serve HTTPS and WSS without a proxy (with --keyfile)",
    )
    serve.add_argument("--keyfile", metavar="FILE", help="the certificate's PEM private key")
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="share one pool of strangers with every other `chatguard serve` given the same "
        "Redis (e.g. redis://127.0.0.1:6379/0); needs the `chatguard[redis]` extra; "
        "default: this process alone, in memory",
    )
    serve.add_argument(
        "--procs",
        type=int,
        default=1,
        metavar="N",
        help="signaling processes to run here, sharing the port (SO_REUSEPORT) and one pool "
        "in Redis, each with its share of the relay workers; needs --redis (default 1)",
    )
    serve.add_argument("--proc-index", type=int, help=argparse.SUPPRESS)  # set for children
    _add_log_level(serve)

    relay = commands.add_parser(
        "relay",
        help="run one relay worker that serves a signaling service",
        description="Run one media relay worker process. It dials the signaling service's "
        "/relay endpoint, reports its load, and carries relayed calls. `serve` starts these "
        "itself; run this by hand to put relays on other machines. The shared token comes "
        f"from the {TOKEN_ENV} environment variable (the [relay] token in signaling's "
        "config file).",
    )
    relay.add_argument(
        "--signaling",
        required=True,
        metavar="URL",
        help="the signaling service's relay endpoint, e.g. ws://signaling.example:8080/relay",
    )
    relay.add_argument(
        "--worker-id",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="a name unique among the relays of this signaling service (default: hostname-pid)",
    )
    relay.add_argument(
        "--max-legs",
        type=int,
        default=400,
        metavar="N",
        help="most client connections this worker takes (default 400: 200 relayed pairs)",
    )
    relay.add_argument(
        "--ice-tcp-port",
        type=int,
        default=0,
        metavar="N",
        help="TCP port for ICE over TCP (RFC 6544 passive candidates), so that browsers on "
        "networks that drop UDP reach this worker; open it in the firewall (default 0: off)",
    )
    relay.add_argument(
        "--ca-file",
        default=os.environ.get(CA_ENV, ""),
        metavar="FILE",
        help="for a wss:// signaling URL: trust this certificate or CA (PEM) instead of the "
        f"system's, e.g. a self-signed one (default: ${CA_ENV})",
    )
    relay.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        metavar="PID",
        help="stop once this process's parent is no longer PID (serve passes its own, so that "
        "no worker outlives it; default: no such check)",
    )
    relay.add_argument(
        "--udp-ports",
        metavar="MIN-MAX",
        default="",
        help="UDP ports for the ICE sockets, e.g. 40000-40199 (one per leg and gathered "
        "address); open them in the firewall (default: any port)",
    )
    relay.add_argument(
        "--udp-port",
        type=int,
        default=0,
        metavar="N",
        help="one UDP port for the ICE of every leg (told apart by ICE username) instead of a "
        "port per leg; open it in the firewall (default 0: a port per leg)",
    )
    relay.add_argument(
        "--gather-from",
        action="append",
        default=[],
        metavar="IF|ADDR|NET",
        help="offer only this interface (eth0), address or network (10.0.0.0/8) to clients; "
        "repeatable (default: every address but loopback and IPv6 link-local)",
    )
    relay.add_argument(
        "--announce",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="tell clients this address instead of the interface address of its family, "
        "e.g. the public IP of a 1:1 NAT; repeatable (an IPv4 and an IPv6 one)",
    )
    relay.add_argument(
        "--announce-interface-addresses",
        action="store_true",
        help="with --announce: offer the interface addresses too, beside the announced ones",
    )
    _add_log_level(relay)
    turn = commands.add_parser(
        "turn-config",
        help="print the coturn configuration that matches chatguard's",
        description="Print a coturn turnserver.conf whose static-auth-secret, realm and "
        "listening ports match [ice.turn] in chatguard's configuration (so the secret is set "
        "once), and which lets TURN relay to public addresses and chatguard's relay workers "
        "only: `chatguard turn-config --config chatguard.toml > /etc/turnserver.conf`.",
    )
    turn.add_argument("--config", type=Path, metavar="FILE", help="chatguard's TOML file")
    admin = commands.add_parser(
        "admin",
        help="list recent operator events or open reports from an admin listener",
        description="Print the recent operator events or the open reports a running "
        "service's admin listener lists (its /events and /reports; with a shared Redis, the "
        "whole service's): one tab-separated line each, oldest first, or the JSON.",
    )
    admin.add_argument("what", choices=["events", "reports"])
    admin.add_argument(
        "--admin",
        metavar="URL",
        default="http://127.0.0.1:9090",
        help="the admin listener (default http://127.0.0.1:9090, [admin] host and port)",
    )
    admin.add_argument("--json", action="store_true", help="print the JSON as served")
    add_bench_parser(commands)
    return parser


def _version() -> str:
    """The installed distribution's version: one source of truth, pyproject.toml."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chatguard")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=get_args(LogLevel),
        help="log verbosity (default info; debug adds every HTTP request)",
    )
    parser.add_argument(
        "--log-format",
        choices=get_args(LogFormat),
        help="'text' (default) or 'json': one JSON object per line, timestamps in UTC",
    )


def _apply_overrides(config: Config, args: argparse.Namespace) -> Config:
    server = config.server
    changes = {
        "host": args.host if args.host is not None else server.host,
        "port": args.port if args.port is not None else server.port,
        "log_level": args.log_level or server.log_level,
        "log_format": args.log_format or server.log_format,
        "certfile": args.certfile or server.certfile,
        "keyfile": args.keyfile or server.keyfile,
    }
    config = msgspec.structs.replace(config, server=msgspec.structs.replace(server, **changes))
    if args.admin_port is not None:
        admin = msgspec.structs.replace(config.admin, port=args.admin_port)
        config = msgspec.structs.replace(config, admin=admin)
    if args.block:
        moderation = msgspec.structs.replace(config.moderation, block=_parse_block(args.block))
        config = msgspec.structs.replace(config, moderation=moderation)
    if args.relay_workers is not None:
        relay = msgspec.structs.replace(config.relay, workers=args.relay_workers)
        config = msgspec.structs.replace(config, relay=relay)
    if args.redis is not None:
        cluster = msgspec.structs.replace(config.cluster, redis_url=args.redis)
        config = msgspec.structs.replace(config, cluster=cluster)
    if config.cluster.redis_url and importlib.util.find_spec("redis") is None:
        raise ConfigError("a Redis URL needs the Redis client: pip install 'chatguard[redis]'")
    try:
        config.check()
    except ConfigError as exc:  # the file passed on its own: an option is to blame
        raise ConfigError(f"command line: {exc}") from None
    return config


def _parse_block(items: list[str]) -> dict[str, float]:
    """`--block LABEL[:THRESHOLD]` values, checked against the default model's labels."""
    from models.manifest import default_manifest

    labels = set(default_manifest().labels)
    block: dict[str, float] = {}
    for item in items:
        label, _, threshold_text = item.partition(":")
        if label not in labels:
            raise ConfigError(
                f"--block {item}: unknown label {label!r}; the model's labels are "
                + ", ".join(sorted(labels))
            )
        try:
            threshold = float(threshold_text) if threshold_text else DEFAULT_BLOCK_THRESHOLD
        except ValueError:
            raise ConfigError(f"--block {item}: threshold must be a number") from None
        block[label] = threshold
    return block


def _serve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    config = _apply_overrides(load_config(args.config), args)
    if args.procs < 1:
        raise ConfigError("command line: --procs must be at least 1")
    if args.procs > 1 and not config.cluster.redis_url:
        raise ConfigError("command line: --procs above 1 needs a shared pool: --redis URL")
    if args.procs > 1 and args.proc_index is None:
        from chatguard.procs import run_procs

        return run_procs(argv, args.procs)

    # imported late so that `--help` and config errors answer at once
    from chatguard.runtime import tune_gc_for_serving
    from chatguard.serve import DrainingServer, create_serving_app, uvicorn_config

    route = Route(args.route) if args.route else None
    server = config.server
    configure_logging(server.log_level, server.log_format)
    log = logging.getLogger("chatguard")
    log.info(
        "chatguard listening on %s://%s:%d/ (route: %s)",
        "https" if server.certfile else "http",
        server.host,
        server.port,
        route.value if route else "per region",
    )
    sockets, relay_url = None, None
    if args.proc_index is not None:  # one of `--procs N`: see chatguard.procs
        from chatguard.procs import listening_sockets, share

        config = share(config, args.procs, args.proc_index)
        public, private = listening_sockets(config.server.host, config.server.port)
        scheme = "wss" if server.certfile else "ws"  # every socket of the child serves TLS
        relay_url = f"{scheme}://127.0.0.1:{private.getsockname()[1]}/relay"
        sockets = [public, private]
    app = create_serving_app(config, route, relay_url)
    service = app.state.service
    tune_gc_for_serving()
    uvicorn_settings = uvicorn_config(app, config)
    drain_timeout_s = server.drain_timeout_s
    runner = DrainingServer(uvicorn_settings, lambda: service.drain(drain_timeout_s))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn raises it after shutdown
        runner.run(sockets=sockets)
    return 0 if runner.started else 3  # uvicorn's STARTUP_FAILURE, as `uvicorn.run` exits


def _gathering(args: argparse.Namespace) -> GatheringPolicy:
    """The relay's address and port options, checked by the rules of the `[relay]` keys
    they mirror."""
    from relay.ice_gathering import GatheringPolicy

    relay = config_from_mapping(
        {
            "relay": {
                "workers": 0,
                "udp_ports": args.udp_ports,
                "udp_port": args.udp_port,
                "gather_from": args.gather_from,
                "announced_addresses": args.announce,
                "announce_interface_addresses": args.announce_interface_addresses,
            }
        },
        "command line",
    ).relay
    return GatheringPolicy(
        gather_from=tuple(relay.gather_from),
        announced=tuple(relay.announced_addresses),
        keep_interface_addresses=relay.announce_interface_addresses,
        udp_ports=relay.udp_port_range(),
        shared_udp_port=relay.udp_port,
    )


def _relay(args: argparse.Namespace) -> int:
    from relay.worker import run_worker

    configure_logging(args.log_level or "info", args.log_format or "text")
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"chatguard relay: set {TOKEN_ENV} to signaling's relay token", file=sys.stderr)
        return 2
    if args.max_legs < 2:
        print("chatguard relay: --max-legs must be at least 2", file=sys.stderr)
        return 2
    if not 0 <= args.ice_tcp_port < 65536:
        print("chatguard relay: --ice-tcp-port must be 0-65535", file=sys.stderr)
        return 2
    gathering = _gathering(args)
    with contextlib.suppress(KeyboardInterrupt):
        # `serve` starts its workers with SIGINT blocked until here (supervisor._WORKER_ENTRY)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        run_worker(
            args.signaling,
            token,
            args.worker_id,
            args.max_legs,
            args.ice_tcp_port,
            gathering,
            args.ca_file,
            args.parent_pid,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the load tool parses the rest itself: see chatguard.bench_cli
        return run_bench(argv[1:])
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args, argv)
        if args.command == "relay":
            return _relay(args)
        if args.command == "admin":
            from chatguard.admin_cli import run_admin

            return run_admin(args.what, args.admin, args.json)
        if args.command == "turn-config":
            from chatguard.turn_config import coturn_config

            source = str(args.config) if args.config else "built-in defaults"
            print(coturn_config(load_config(args.config), source), end="")
            return 0
    except ConfigError as exc:
        print(f"chatguard: configuration error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
