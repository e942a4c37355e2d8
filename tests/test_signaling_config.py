import subprocess
import sys
from pathlib import Path

import pytest

from chatguard.cli import main
from signaling.config import ConfigError, config_from_mapping, load_config
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
        ('[server]\nport = "x"\n', "server.port: Expected `int`, got `str`"),
        ("[server]\nprot = 1\n", "server.prot: unknown key; [server] has: host, port, "),
        ("[serve]\nport = 1\n", "serve: unknown key; the top level has: server, relay, "),
        (
            '[regions.routes]\nFR = "relay"\nDE = "fast"\n',
            'regions.routes.DE = "fast" is not allowed; choose one of: direct, relay, strict',
        ),
        (
            '[regions]\ndefault_route = "p2p"\n',
            'regions.default_route = "p2p" is not allowed; choose one of: direct, relay, strict',
        ),
        (
            '[server]\nlog_level = "verbose"\n',
            'server.log_level = "verbose" is not allowed; choose one of: debug, info, warning, '
            "error",
        ),
        (
            '[relay]\nworkers = "many"\n',
            'relay.workers = "many" is not allowed; choose one of: a whole number, auto',
        ),
        (
            "[regions]\ndefault_route = 2\n",
            "regions.default_route: Expected `str`, got `int`; choose one of: direct, relay, "
            "strict",
        ),
        (
            '[moderation.block]\nANUS_EXPOSED = 0.4\nFACE_FEMALE = "high"\n',
            "moderation.block.FACE_FEMALE: Expected `float`, got `str`",
        ),
        ('[ice]\nstun_urls = ["stun:a", 3]\n', "ice.stun_urls[1]: Expected `str`, got `int`"),
        ("[server\n", "invalid TOML"),
        ("[matchmaking]\nheartbeat_timeout_s = -1\n", "heartbeat_timeout_s must be positive"),
        ('[ice.turn]\nurls = ["turn:x"]\n', "ice.turn.secret is required"),
        ("[admin]\nport = 70000\n", "admin.port must be 0 (off) or 1-65535, got 70000"),
        ('[server]\ncertfile = "c.pem"\n', "server.certfile and server.keyfile go together"),
        (
            '[events]\nwebhook_url = "https://audit.example"\n',
            "events.webhook_secret (or CHATGUARD_WEBHOOK_SECRET) is required",
        ),
        (
            '[events]\nwebhook_url = "ftp://audit.example"\nwebhook_secret = "s"\n',
            "events.webhook_url must be an http:// or https:// URL",
        ),
        ("[events]\nrecent_limit = 0\n", "events.recent_limit must be 1-100000"),
        ("[events]\nretention_s = 0\n", "events.retention_s must be positive"),
        ('[events]\ninclude_addresses = "yes"\n', "events.include_addresses: Expected `bool`"),
    ],
)
def test_invalid_file_names_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert str(info.value).startswith(f"{path}: ")
    assert "$." not in str(info.value)  # the TOML key, not msgspec's JSON path


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


def test_serve_with_a_bad_config_exits_2_naming_file_key_and_choices(tmp_path: Path) -> None:
    """The whole command, as an operator runs it: one line that says what to fix, no
    traceback."""
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlog_level = "verbose"\n')
    done = subprocess.run(
        [sys.executable, "-m", "chatguard.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f'chatguard: configuration error: {path}: server.log_level = "verbose" is not '
        "allowed; choose one of: debug, info, warning, error\n"
    )


def test_the_readme_example_is_a_valid_configuration(tmp_path: Path) -> None:
    """Every key the README's Configuration section shows exists and has a valid value."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme.toml"
    path.write_text(example)
    config = load_config(path)
    assert config.moderation.block == {
        "FEMALE_BREAST_EXPOSED": 0.5,
        "FEMALE_GENITALIA_EXPOSED": 0.4,
    }
    assert config.regions.routes == {"DE": Route.STRICT, "FR": Route.RELAY}


def test_a_bad_option_is_blamed_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    assert "command line: server.port must be 1-65535, got 70000" in capsys.readouterr().err


def test_secrets_come_from_the_environment_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[relay]\ntoken = "from-file-0123456789"\n'
        '[ice.turn]\nurls = ["turn:t"]\nsecret = "file-turn"\n'
        '[events]\nwebhook_url = "https://audit.example/hook"\n'
    )
    environ = {"CHATGUARD_TURN_SECRET": "env-turn", "CHATGUARD_WEBHOOK_SECRET": "env-hook",
               "CHATGUARD_RELAY_TOKEN": ""}  # fmt: skip
    config = load_config(path, environ)
    assert config.relay.token == "from-file-0123456789"  # an empty variable is no setting
    assert config.ice.turn.secret == "env-turn"
    assert config.events.webhook_secret == "env-hook"
    assert (
        load_config(None, {"CHATGUARD_RELAY_TOKEN": "env-token-0123456789"}).relay.token
        == "env-token-0123456789"
    )
    with pytest.raises(ConfigError, match=r"events\.webhook_secret"):
        load_config(path, {})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"relay": {"token": "short-token"}}, "relay.token (or CHATGUARD_RELAY_TOKEN) must be "
         "at least 16 characters, got 11"),
        ({"server": {"trusted_proxies": ["10.0.0.0/8", "proxy.local"]}},
         "server.trusted_proxies: 'proxy.local' is not an IP address or network"),
        ({"relay": {"workers_from": ["10.0.0.0/33"]}},
         "relay.workers_from: '10.0.0.0/33' is not an IP address or network"),
        ({"server": {"allowed_origins": ["https://chat.example.org/page"]}},
         "server.allowed_origins: 'https://chat.example.org/page' is not an origin"),
        ({"server": {"allowed_origins": ["*", "https://a.example"]}},
         'server.allowed_origins: "*" (any origin) goes alone'),
        ({"server": {"forwarded_header": "x-real-ip"}}, "server.forwarded_header"),
        ({"relay": {"hello_failures_to_block": 0}}, "relay.hello_failures_to_block must be"),
        ({"relay": {"hello_block_s": 0}}, "relay.hello_failure_window_s and relay.hello_block_s"),
        ({"ice": {"turn": {"credential_ttl_s": 0}}}, "ice.turn.credential_ttl_s must be positive"),
    ],
)  # fmt: skip
def test_trust_settings_are_checked_with_a_clear_error(
    section: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_mapping(section)
    assert message in str(error.value)


def test_trust_settings_default_to_believing_no_one() -> None:
    config = config_from_mapping({})
    assert config.server.trusted_proxies == [] and config.server.allowed_origins == []
    assert config.ice.turn.credential_ttl_s == 300
    assert (config.relay.hello_failures_to_block, config.relay.hello_block_s) == (5, 300.0)
    assert config.relay.workers_from == ["127.0.0.0/8", "::1"]  # this machine's workers only
    config_from_mapping({"relay": {"token": "x" * 16}, "server": {"allowed_origins": ["*"]}})
