"""The deployment in deploy/, as far as this machine allows: the systemd units pass
`systemd-analyze verify`, the example config is valid with the example secrets, and coturn
started with deploy/turnserver.conf grants a TURN allocation to credentials chatguard mints."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint

from signaling.config import load_config
from signaling.ice import ice_servers_for
from tests.support.ports import free_port

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
    turn_lines = (DEPLOY / "turnserver.conf").read_text().splitlines()
    assert f"static-auth-secret={secrets['CHATGUARD_TURN_SECRET']}" in turn_lines


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    """deploy/turnserver.conf on loopback ports, without TLS (no certificate here)."""
    if shutil.which("turnserver") is None:
        pytest.skip("coturn (turnserver) is not installed here")
    port = free_port()
    kept = [
        line
        for line in (DEPLOY / "turnserver.conf").read_text().splitlines()
        if not line.startswith(("listening-port", "tls-listening-port", "cert=", "pkey="))
    ]
    config = tmp_path / "turnserver.conf"
    extra = [f"listening-port={port}", "listening-ip=127.0.0.1", "relay-ip=127.0.0.1",
             "no-tls", "no-dtls", f"pidfile={tmp_path / 'turn.pid'}", "log-file=stdout",
             f"userdb={tmp_path / 'turndb'}"]  # fmt: skip
    config.write_text("\n".join([*kept, *extra]) + "\n")
    with subprocess.Popen(
        ["turnserver", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        time.sleep(1.0)  # coturn opens its listeners within a few hundred ms
        assert process.poll() is None, "coturn exited at start"
        try:
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_coturn_with_the_example_config_accepts_chatguards_credentials(
    coturn: int,
) -> None:
    config = load_config(DEPLOY / "chatguard.toml", example_env("secrets.env.example"))
    (turn,) = [s for s in ice_servers_for(config.ice, "user-1", time.time()) if s.username]
    assert turn.username is not None and turn.credential is not None
    transport, _ = await asyncio.wait_for(
        create_turn_endpoint(
            asyncio.DatagramProtocol, ("127.0.0.1", coturn), turn.username, turn.credential
        ),
        10,
    )
    try:
        relayed = transport.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1" and 49152 <= relayed[1] <= 65535
    finally:
        transport.close()
    with pytest.raises(TransactionFailed, match="401"):  # forged credentials are refused
        await asyncio.wait_for(
            create_turn_endpoint(
                asyncio.DatagramProtocol, ("127.0.0.1", coturn), turn.username, "forged"
            ),
            10,
        )
