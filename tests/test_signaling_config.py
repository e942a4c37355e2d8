from pathlib import Path

import pytest

from chatguard.cli import main
from signaling.config import ConfigError, load_config
from signaling.route_policy import Route


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config.server.port == 8080
    assert config.regions.default_route is Route.DIRECT


def test_file_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9001\n[regions.routes]\nDE = "strict"\n')
    config = load_config(path)
    assert config.server.port == 9001
    assert config.regions.routes == {"DE": Route.STRICT}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[server]\nport = "x"\n', "$.server.port"),
        ("[server]\nprot = 1\n", "unknown field `prot`"),
        ('[regions.routes]\nDE = "fast"\n', "Invalid enum value 'fast' - at `$.regions.routes"),
        ("[server\n", "invalid TOML"),
        ("[matchmaking]\nheartbeat_timeout_s = -1\n", "heartbeat_timeout_s must be positive"),
        ('[ice.turn]\nurls = ["turn:x"]\n', "ice.turn.secret is required"),
    ],
)
def test_invalid_file_names_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_cli_reports_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = 0\n")
    assert main(["serve", "--config", str(path)]) == 2
    assert "server.port must be 1-65535" in capsys.readouterr().err


def test_cli_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--config", "--route", "--log-level"):
        assert option in out
    assert "moderated" in out
