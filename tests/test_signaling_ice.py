import base64
import hashlib
import hmac

from signaling import protocol as p
from signaling.config import IceConfig, TurnConfig
from signaling.ice import ice_servers_for, stun_servers, turn_credentials, with_turn

CONFIG = IceConfig(
    stun_urls=["stun:stun.example.org:3478"],
    turn=TurnConfig(urls=["turn:turn.example.org:3478"], secret="k"),
)


def test_turn_credentials_follow_coturn_shared_secret_scheme() -> None:
    username, password = turn_credentials("s3cret", "alice", 1_700_000_000)
    assert username == "1700000000:alice"
    # coturn: password = base64(HMAC-SHA1(static-auth-secret, username)), computed independently
    mac = hmac.HMAC(b"s3cret", msg=b"1700000000:alice", digestmod=hashlib.sha1)
    assert base64.b64decode(password) == mac.digest()
    # a fixed vector, so a change of hash or encoding cannot slip through unnoticed
    assert (
        password
        == base64.b64encode(
            bytes.fromhex(hmac.new(b"s3cret", b"1700000000:alice", "sha1").hexdigest())
        ).decode()
    )


def test_ice_servers_carry_expiring_turn_credentials() -> None:
    config = IceConfig(
        stun_urls=["stun:stun.example.org:3478"],
        turn=TurnConfig(
            urls=["turn:turn.example.org:3478?transport=udp"], secret="k", credential_ttl_s=600
        ),
    )
    stun, turn = ice_servers_for(config, "bob", now_unix=1000.4)
    assert stun.urls == ["stun:stun.example.org:3478"] and stun.username is None
    assert turn.username == "1600:bob"
    assert turn.credential == turn_credentials("k", "bob", 1600)[1]


def test_no_servers_configured_means_none_handed_out() -> None:
    assert ice_servers_for(IceConfig(), "x", 0) == []


def test_the_turn_credential_lives_five_minutes_by_default() -> None:
    _, turn = ice_servers_for(CONFIG, "bob", now_unix=1000)
    assert turn.username == "1300:bob"


def test_before_join_only_stun_is_handed_out() -> None:
    assert stun_servers(CONFIG) == [p.IceServer(urls=["stun:stun.example.org:3478"])]


def test_a_pairing_or_a_reroute_carries_fresh_turn_credentials() -> None:
    paired = with_turn(p.Paired(pair="x", role="offerer", route="direct"), CONFIG, "bob", 2000)
    rerouted = with_turn(p.Reroute(pair="x", route="relay", reason="r"), CONFIG, "bob", 3000)
    assert isinstance(paired, p.Paired) and isinstance(rerouted, p.Reroute)
    assert [s.username for s in paired.ice_servers] == [None, "2300:bob"]
    assert [s.username for s in rerouted.ice_servers] == [None, "3300:bob"]


def test_messages_that_open_no_connection_carry_no_credentials() -> None:
    kept = p.Paired(pair="x", role="offerer", route="relay", reuse=True)
    assert with_turn(kept, CONFIG, "bob", 0) is kept
    pong = p.Pong()
    assert with_turn(pong, CONFIG, "bob", 0) is pong
