"""`[cluster] redis_url` and `serve --redis`: checked when set, and nothing of the cluster (nor
the Redis client) is loaded without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chatguard.cli import main
from chatguard.procs import share
from signaling.config import ConfigError, config_from_mapping


def test_without_redis_url_the_section_is_not_checked() -> None:
    config = config_from_mapping(
        {"matchmaking": {"heartbeat_timeout_s": 0.5, "heartbeat_interval_s": 0.2}}
    )
    assert config.cluster.redis_url == ""


@pytest.mark.parametrize(
    ("cluster", "problem"),
    [
        ({"redis_url": "http://localhost:6379"}, "must start with redis://"),
        ({"redis_url": "redis://localhost", "presence_ttl_s": 60}, "at most heartbeat_timeout_s"),
        ({"redis_url": "redis://localhost", "presence_ttl_s": 0}, "must be positive"),
    ],
)
def test_a_bad_cluster_setting_is_named(cluster: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        config_from_mapping({"cluster": cluster})


def test_serve_redis_overrides_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--redis", "http://localhost:6379", "--relay-workers", "0"]) == 2
    assert "command line: cluster.redis_url must start with redis://" in capsys.readouterr().err


def test_the_in_memory_default_imports_nothing_of_the_cluster() -> None:
    code = (
        "import sys\n"
        "from signaling.app import create_app\n"
        "from signaling.config import config_from_mapping\n"
        "create_app(config_from_mapping({}))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('signaling.cluster', 'redis'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_serve_procs_needs_a_shared_pool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--procs", "2", "--relay-workers", "0"]) == 2
    assert "--procs above 1 needs a shared pool: --redis URL" in capsys.readouterr().err


def test_each_of_serve_procs_gets_its_share_of_relay_workers_and_ports() -> None:
    config = config_from_mapping(
        {
            "relay": {"workers": 5, "ice_tcp_port": 7880, "udp_port": 9000},
            "cluster": {"node_id": "box"},
            "admin": {"port": 9090},
        }
    )
    parts = [share(config, 3, index) for index in range(3)]
    assert [part.relay.workers for part in parts] == [2, 2, 1]
    assert [part.relay.ice_tcp_port for part in parts] == [7880, 7882, 7884]
    assert [part.relay.udp_port for part in parts] == [9000, 9002, 9004]
    assert [part.cluster.node_id for part in parts] == ["box-0", "box-1", "box-2"]
    assert [part.admin.port for part in parts] == [9090, 9091, 9092]
    no_tcp = config_from_mapping({"relay": {"workers": 1, "ice_tcp_port": 0}})
    assert [share(no_tcp, 2, i).relay.workers for i in range(2)] == [1, 0]
    assert share(no_tcp, 2, 1).relay.ice_tcp_port == 0
