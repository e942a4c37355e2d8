"""ICE servers handed to clients, with short-lived TURN credentials.

TURN credentials follow the shared-secret scheme that coturn implements with ``use-auth-secret``
(the "TURN REST API" draft): the username is ``<expiry unix time>:<user id>`` and the password is
base64(HMAC-SHA1(secret, username)). The TURN server checks the HMAC and the expiry itself, so
signaling never has to tell it about users, and a leaked credential dies on its own.
coturn's side is printed by ``chatguard turn-config``; tests/test_turn_coturn.py has a real
coturn accept these credentials.

When: never before ``join``. The welcome carries the STUN servers only; TURN credentials
come with each ``paired`` and ``reroute`` (the moments a client opens a connection) and with
``ice_servers``, the answer to a client restoring its media, minted then and valid for
``[ice.turn] credential_ttl_s``. A credential harvested by merely
connecting, or kept from an old call, is of no use for long. coturn checks the expiry when an
allocation is made, so a call on TURN outlives its credential. They are added where the
hub's messages are sent (:func:`with_turn`), because minting needs the wall clock and the
hub's decisions do not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec

from signaling import protocol as p
from signaling.config import IceConfig
from signaling.protocol import IceServer


def turn_credentials(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    """Username and password valid until the unix time `expires_at`."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def stun_servers(config: IceConfig) -> list[IceServer]:
    """The servers a client may know before it joins: STUN, which needs no credential."""
    return [IceServer(urls=list(config.stun_urls))] if config.stun_urls else []


def ice_servers_for(config: IceConfig, user_id: str, now_unix: float) -> list[IceServer]:
    """The STUN and TURN servers one client should use, TURN credentials minted for it now."""
    servers = stun_servers(config)
    turn = config.turn
    if turn.urls:
        expires_at = int(now_unix) + turn.credential_ttl_s
        username, password = turn_credentials(turn.secret, user_id, expires_at)
        servers.append(IceServer(urls=list(turn.urls), username=username, credential=password))
    return servers


_ALWAYS_WITH_SERVERS = (p.Reroute, p.IceServers)
"""A tuple, not ``p.Reroute | p.IceServers``: every message sent passes this check, and a union
written in it is built anew at each call."""


def with_turn(
    message: p.ServerMessage, config: IceConfig, user_id: str, now_unix: float
) -> p.ServerMessage:
    """`message` as sent to `user_id`: a pairing, a reroute or an ``ice_servers``, after which
    the client opens or restores a connection, carries the ICE servers with fresh TURN
    credentials; anything else (and a pairing that keeps its relay connection) is unchanged."""
    if isinstance(message, _ALWAYS_WITH_SERVERS) or (
        isinstance(message, p.Paired) and not message.reuse
    ):
        servers = ice_servers_for(config, user_id, now_unix)
        return msgspec.structs.replace(message, ice_servers=servers)
    return message
