"""`chatguard turn-config`: coturn's file from chatguard's, one secret in one place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatguard.turn_config import coturn_config, listening_ports
from signaling.config import ConfigError, config_from_mapping

TURN = {
    "urls": [
        "turn:turn.example.org?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
        "turns:turn.example.org:443?transport=tcp",
    ],
    "secret": "s3cret",
    "realm": "chat.example.org",
    "tls_cert_file": "/etc/ssl/turn.pem",
    "tls_key_file": "/etc/ssl/turn.key",
    "allowed_peer_ips": ["10.0.0.5"],
}


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_printed_file_carries_chatguards_secret_realm_ports_and_certificate() -> None:
    config = config_from_mapping(
        {"ice": {"turn": TURN}, "relay": {"announced_addresses": ["203.0.113.7"]}}
    )
    lines = lines_of(coturn_config(config))
    for expected in (
        "use-auth-secret",
        "static-auth-secret=s3cret",
        "realm=chat.example.org",
        "listening-port=3478",
        "tls-listening-port=443",
        "cert=/etc/ssl/turn.pem",
        "pkey=/etc/ssl/turn.key",
        "no-multicast-peers",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
        "denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "allowed-peer-ip=10.0.0.5",
        "allowed-peer-ip=203.0.113.7",  # the relay's announced address: TURN must reach it
    ):
        assert expected in lines
    assert len(lines) == len(set(lines))


def test_without_tls_urls_coturn_is_told_to_leave_tls_off() -> None:
    turn = {"urls": ["turn:turn.example.org:3478"], "secret": "s"}
    lines = lines_of(coturn_config(config_from_mapping({"ice": {"turn": turn}})))
    assert {"no-tls", "no-dtls", "listening-port=3478"} <= set(lines)
    assert not [line for line in lines if line.startswith(("cert=", "pkey="))]


def test_what_coturn_cannot_serve_is_refused() -> None:
    with pytest.raises(ConfigError, match="one turn: port"):
        listening_ports(["turn:a:3478", "turn:a:3479"])
    with pytest.raises(ConfigError, match="not a turn"):
        listening_ports(["stun:a:3478"])
    with pytest.raises(ConfigError, match="urls and secret"):
        coturn_config(config_from_mapping({}))
    no_cert = {"urls": ["turns:a:5349"], "secret": "s"}
    with pytest.raises(ConfigError, match="tls_cert_file"):
        coturn_config(config_from_mapping({"ice": {"turn": no_cert}}))


def test_the_command_prints_it(tmp_path: Path) -> None:
    config = tmp_path / "chatguard.toml"
    config.write_text('[ice.turn]\nurls = ["turn:t.example:3478"]\nsecret = "from-file"\n')
    done = subprocess.run(
        [sys.executable, "-m", "chatguard.cli", "turn-config", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "static-auth-secret=from-file" in done.stdout.splitlines()
    empty = subprocess.run(
        [sys.executable, "-m", "chatguard.cli", "turn-config"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert empty.returncode == 2 and "urls and secret" in empty.stderr
