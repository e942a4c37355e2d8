"""ICE servers handed to clients, with short-lived TURN credentials.

TURN credentials follow the shared-secret scheme that coturn implements with ``use-auth-secret``
(the "TURN REST API" draft): the username is ``<expiry unix time>:<user id>`` and the password is
base64(HMAC-SHA1(secret, username)). The TURN server checks the HMAC and the expiry itself, so
signaling never has to tell it about users, and a leaked credential dies on its own.
coturn's side is printed by ``chatguard turn-config``; tests/test_turn_coturn.py has a real
coturn accept these credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from signaling.config import IceConfig
from signaling.protocol import IceServer


def turn_credentials(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    """Username and password valid until the unix time `expires_at`."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(config: IceConfig, user_id: str, now_unix: float) -> list[IceServer]:
    """The STUN and TURN servers one client should use, TURN credentials minted for it now."""
    servers: list[IceServer] = []
    if config.stun_urls:
        servers.append(IceServer(urls=list(config.stun_urls)))
    turn = config.turn
    if turn.urls:
        username, password = turn_credentials(turn.secret, user_id, int(now_unix) + turn.ttl_s)
        servers.append(IceServer(urls=list(turn.urls), username=username, credential=password))
    return servers
