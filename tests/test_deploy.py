"""The deployment in deploy/, as far as this machine allows: the systemd units pass
`systemd-analyze verify`, the example config is valid with the example secrets, and the coturn
configuration printed from it shares its TURN secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signaling.config import load_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
INSTALLED = "/opt/chatguard/.venv/bin/chatguard"


def example_env(name: str) -> dict[str, str]:
    lines = (DEPLOY / name).read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Checked as installed, with the chatguard command of this environment in place of
    /opt/chatguard's (verify requires the executable to exist); the template as an instance."""
    here = str(Path(sys.executable).parent / "chatguard")
    units = []
    for source, name in (
        ("chatguard.service", "chatguard.service"),
        ("chatguard-relay@.service", "chatguard-relay@7880.service"),
    ):
        text = (DEPLOY / source).read_text()
        assert INSTALLED in text
        (tmp_path / name).write_text(text.replace(INSTALLED, here))
        units.append(str(tmp_path / name))
    done = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr  # unknown keys only warn


def test_the_example_config_is_valid_with_the_example_secrets() -> None:
    secrets = example_env("secrets.env.example")
    config = load_config(DEPLOY / "chatguard.toml", secrets)
    assert config.server.certfile and config.server.keyfile
    assert config.admin.host == "127.0.0.1"
    assert config.ice.turn.secret == secrets["CHATGUARD_TURN_SECRET"]
    assert config.events.webhook_secret == secrets["CHATGUARD_WEBHOOK_SECRET"]
    assert (
        example_env("relay.env.example")["CHATGUARD_RELAY_TOKEN"]
        == (secrets["CHATGUARD_RELAY_TOKEN"])
    )
    # coturn's file, printed from this configuration, carries the same secret
    command = [sys.executable, "-m", "chatguard.cli", "turn-config"]
    printed = subprocess.run(
        [*command, "--config", DEPLOY / "chatguard.toml"],
        env={**os.environ, **secrets}, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert f"static-auth-secret={secrets['CHATGUARD_TURN_SECRET']}" in printed
    assert "realm=turn.example.org" in printed
