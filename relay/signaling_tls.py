"""How a relay worker trusts signaling's TLS certificate when it dials ``wss://``.

Without a CA file the system's trust store decides, as for any HTTPS client. With one
(``chatguard relay --ca-file``, ``CHATGUARD_RELAY_CA``), that file alone is trusted, and a
certificate in it is accepted on its own (partial chain), so a self-signed certificate, or the
service's own leaf, can be pinned. A local worker that ``serve`` starts dials the loopback
address with the service's own certificate as its CA file: the name on the certificate (the
public host name) cannot match 127.0.0.1, and the pinned certificate already proves who
answers, so the host name is not checked for a loopback address with a CA file.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.parse


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_context(signaling_url: str, ca_file: str = "") -> ssl.SSLContext | None:
    """The TLS context for dialling ``signaling_url``; None for a plain ``ws://`` URL."""
    parts = urllib.parse.urlsplit(signaling_url)
    if parts.scheme != "wss":
        return None
    if not ca_file:
        return ssl.create_default_context()
    context = ssl.create_default_context(cafile=ca_file)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if _is_loopback(parts.hostname or ""):
        context.check_hostname = False
    return context
