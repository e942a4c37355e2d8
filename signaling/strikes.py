"""Strikes and bans: sans-I/O, clock passed in.

Strikes and bans key on the *device* (the random id the web client keeps; a client that sends
none is known by its address). An address is banned only once several distinct banned devices
came from it (`devices_to_ban_network`), because one address is often many people: a school, an
office, a carrier-grade NAT, a family. IPv6 addresses count by their /64, which one subscriber
holds whole and can pick any address in. Bans decided elsewhere (reports, see
``signaling.reports``) are kept here too, so the door checks one book. Only metadata is kept.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass


def network_of(address: str) -> str:
    """What a ban on `address` covers: the address for IPv4, its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True, slots=True)
class Person:
    """Whom strikes, bans and reports are about."""

    device: str
    """``dev:<id>``, or ``addr:<address>`` for a client that sent no device id; "" if neither."""
    network: str
    """`network_of` the client's address; "" if unknown."""

    @classmethod
    def of(cls, address: str, device: str) -> Person:
        key = f"dev:{device}" if device else (f"addr:{address}" if address else "")
        return cls(device=key, network=network_of(address) if address else "")


NOBODY = Person(device="", network="")
"""No device, no network: strikes, bans and reports pass it by."""


def strikes_reason(strikes: int) -> str:
    """What a device banned for `strikes` strikes is told."""
    return f"{strikes} moderation strikes"


@dataclass(frozen=True, slots=True)
class StrikeResult:
    strikes: int
    """Strikes of this device within the window, this one included."""
    banned_until: float | None
    """Set when this strike crossed the limit (monotonic clock)."""


class StrikeBook:
    def __init__(
        self, strikes_to_ban: int, window_s: float, ban_s: float, devices_to_ban_network: int
    ) -> None:
        """`devices_to_ban_network`: banned devices from one network that ban the network
        itself (0: networks are never banned)."""
        self._limit = strikes_to_ban
        self._window_s = window_s
        self._ban_s = ban_s
        self._network_limit = devices_to_ban_network
        self._strikes: dict[str, deque[float]] = {}
        self._bans: dict[str, float] = {}
        self._banned_from: dict[str, dict[str, float]] = {}
        """Network -> its banned devices -> until when."""

    def strike(self, who: Person, now: float) -> StrikeResult:
        if not who.device:
            return StrikeResult(0, None)
        times = self._strikes.setdefault(who.device, deque())
        times.append(now)
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if len(times) < self._limit:
            return StrikeResult(len(times), None)
        until = now + self._ban_s
        self.ban(who, until, strikes_reason(len(times)))
        return StrikeResult(len(times), until)

    def ban(self, who: Person, until: float, reason: str) -> None:
        """Refuse `who`'s device until `until` (monotonic clock); a longer ban stands. The
        device counts towards a ban of its network. `reason`, what the person is told, is
        for a book shared by several nodes (``signaling.cluster.bans``), which tells the
        other nodes, so that they close that device's sessions saying the same."""
        if not who.device:
            return
        self._bans[who.device] = max(until, self._bans.get(who.device, 0.0))
        self._strikes.pop(who.device, None)
        if who.network and self._network_limit:
            banned = self._banned_from.setdefault(who.network, {})
            banned[who.device] = max(until, banned.get(who.device, 0.0))

    def banned_until(self, who: Person, now: float) -> float | None:
        device_until = self._bans.get(who.device, 0.0)
        if device_until and device_until <= now:
            del self._bans[who.device]  # expired bans are forgotten as they are met
        until = max(device_until, self._network_banned_until(who.network, now))
        return until if until > now else None

    def _network_banned_until(self, network: str, now: float) -> float:
        """The network stays banned while at least the limit of its devices are."""
        banned = self._banned_from.get(network)
        if not banned:
            return 0.0
        for device, until in list(banned.items()):
            if until <= now:
                del banned[device]
        if not banned:
            del self._banned_from[network]
        if len(banned) < self._network_limit:
            return 0.0
        return sorted(banned.values(), reverse=True)[self._network_limit - 1]
