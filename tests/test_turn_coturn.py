"""Browsers whose UDP is blocked reach the relay through coturn, over TCP and over TLS.

Debian's coturn runs with exactly what `chatguard turn-config` prints for the test's chatguard
configuration (plus the lines the printed file leaves to the machine: where to listen, where
to relay from, where its pid and database go). The relay workers offer no ICE-TCP here, so with
UDP dropped both ways in the browsers' namespaces a call can only go through TURN; the browsers'
selected candidate pairs say it did (a local `relay` candidate, reached over `tcp` or `tls`).
Signaling hands out the credentials (signaling/ice.py): coturn accepting them checks that
chatguard's TURN REST scheme is coturn's.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chatguard.turn_config import coturn_config
from signaling.config import load_config
from tests.support.browser import requires_chromium, selected_pair, status_of, wait_for_frames
from tests.support.netns import IsolatedHosts, chromium_in, open_client, udp_blocked_hosts
from tests.support.ports import free_port
from tests.support.server import chatguard_serve

pytestmark = [pytest.mark.netns, pytest.mark.browser, pytest.mark.slow, requires_chromium]

SECRET = "coturn-test-secret"

CONFIG = """
[server]
host = "0.0.0.0"

[regions]
default_route = "relay"

[relay]
workers = 1
ice_tcp_port = 0
gather_from = {relay_addresses}

[ice.turn]
urls = ["{url}"]
secret = "{secret}"
tls_cert_file = "{cert}"
tls_key_file = "{key}"
allowed_peer_ips = {relay_addresses}
"""


def coturn_or_skip() -> str:
    """Path of `turnserver`; skip without it, fail in CI (.ci/run installs coturn)."""
    path = shutil.which("turnserver")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have coturn (turnserver) installed")
        pytest.skip("coturn is not installed (apt-get install coturn)")
    return path


def write_certificate(directory: Path, address: str) -> tuple[Path, Path, str]:
    """A self-signed certificate for `address` (IP SAN) and its key, as PEM files, and the
    Chromium flag that trusts this one key (and nothing else it would not trust anyway)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "turn.pem", directory / "turn.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return cert_path, key_path, f"--ignore-certificate-errors-spki-list={pin}"


@contextmanager
def coturn(turnserver: str, config_text: str, directory: Path, address: str) -> Iterator[None]:
    """coturn with `config_text` plus this machine's lines, until it listens on every port."""
    conf = directory / "turnserver.conf"
    conf.write_text(
        config_text
        + f"listening-ip={address}\nrelay-ip={address}\n"
        + f"pidfile={directory / 'turnserver.pid'}\nuserdb={directory / 'turndb'}\n"
        + f"log-file={directory / 'turn.log'}\nsimple-log\nno-stdout-log\n"
    )
    ports = [int(line.split("=")[1]) for line in config_text.splitlines() if "-port=" in line]
    with subprocess.Popen(
        [turnserver, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        try:
            deadline = time.monotonic() + 10
            for port in ports:
                while True:
                    try:
                        socket.create_connection((address, port), timeout=1).close()
                        break
                    except OSError:
                        assert process.poll() is None, (directory / "turn.log").read_text()
                        assert time.monotonic() < deadline, f"coturn is not listening on {port}"
                        time.sleep(0.05)
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_udp_blocked_browsers_reach_the_relay_through_coturn(
    netns_hosts: IsolatedHosts, tmp_path: Path, transport: str
) -> None:
    turnserver = coturn_or_skip()
    a, b = udp_blocked_hosts(netns_hosts)
    turn_address = a.gateway  # a host address: every namespace reaches it (local delivery)
    cert, key, trust_flag = write_certificate(tmp_path, turn_address)
    trust = [trust_flag]
    scheme = "turn" if transport == "tcp" else "turns"
    url = f"{scheme}:{turn_address}:{free_port()}?transport=tcp"
    relay_addresses = f'["{a.gateway}", "{b.gateway}"]'  # private: allowed as peers by name
    config = CONFIG.format(
        url=url, secret=SECRET, cert=cert, key=key, relay_addresses=relay_addresses
    )
    (tmp_path / "chatguard.toml").write_text(config)
    printed = coturn_config(load_config(tmp_path / "chatguard.toml"))
    with (
        coturn(turnserver, printed, tmp_path, turn_address),
        chatguard_serve(tmp_path, config) as service,  # ready: the relay worker has joined
    ):
        port = urlsplit(service).port
        assert port is not None
        async with (
            chromium_in(a, a.url(port), extra_args=trust) as browser_a,
            chromium_in(b, b.url(port), extra_args=trust) as browser_b,
        ):
            pages = [await open_client(browser_a, a, port), await open_client(browser_b, b, port)]
            for page in pages:
                await page.click("#start")
            for page in pages:
                await wait_for_frames(page, 10)
                assert await status_of(page) == ("connected", "relay")
                pair = await selected_pair(page)
                assert pair is not None
                candidate = {
                    "type": pair["local_type"],
                    "relay_protocol": pair["local_relay_protocol"],
                    "state": pair["state"],
                }
                assert candidate == {
                    "type": "relay",
                    "relay_protocol": transport,
                    "state": "succeeded",
                }, pair
