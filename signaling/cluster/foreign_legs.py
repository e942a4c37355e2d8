"""Legs that this node's relay workers carry for calls hosted by other nodes.

A call is hosted by one member's node (``signaling.call_hub``), which may place it on a worker
connected to another node. That node passes the host's commands on to its worker and must send
the worker's answers, leg states and moderation reports about those legs back to the host,
not to its own hub, which knows nothing of them (and would close a leg it does not know). It
learns whose a leg is from the command that opened it. Sans-I/O: the node feeds it commands and
worker messages and acts on what it answers.

A host that dies closes nothing: its legs would run on (media included, on the strict route
unmoderated by any signaling decision) until their peers hang up. So the node watches its
hosts' presence keys: a host whose key stays missing for the presence TTL is dead (a live
node renews its key three times per TTL; the wait covers a Redis that restarted empty, until
every node has renewed), and the node closes the legs it carried for it.
"""

from __future__ import annotations

from relay import control as rc


class ForeignLegs:
    """Leg -> the node hosting its call, for legs of this node's workers opened from others;
    and whether those nodes are still alive."""

    def __init__(self) -> None:
        self._hosts: dict[str, tuple[str, str]] = {}
        """Leg -> (host node, worker)."""
        self._missing_since: dict[str, float] = {}
        """Host -> when its presence key was first found missing (this node's clock)."""

    def command(self, host: str, worker: str, command: rc.SignalingMessage) -> None:
        """A command `host` sent for `worker`, about to be passed on to it."""
        match command:
            case rc.OpenLeg(leg=leg):
                self._hosts[leg] = (host, worker)
            case rc.CloseLeg(leg=leg):
                self._hosts.pop(leg, None)

    def host_of(self, worker: str, message: rc.WorkerMessage) -> str | None:
        """The node to send `worker`'s message to; None: it is for this node's hub. A leg's
        last word (closed) forgets the leg."""
        leg = getattr(message, "leg", None)
        if leg is None or (entry := self._hosts.get(leg)) is None or entry[1] != worker:
            return None
        if isinstance(message, rc.LegState) and message.state == "closed":
            del self._hosts[leg]
        return entry[0]

    def forget_worker(self, worker: str) -> None:
        """The worker is gone: its legs with it (the hosts hear that it is gone)."""
        self._hosts = {leg: entry for leg, entry in self._hosts.items() if entry[1] != worker}

    def hosts(self) -> list[str]:
        """The nodes whose calls this node's workers carry legs of."""
        return sorted({host for host, _ in self._hosts.values()})

    def presence(self, host: str, alive: bool, now: float, grace_s: float) -> bool:
        """Whether `host`'s presence key exists, as read at `now`. True: it has been missing
        for `grace_s` (the presence TTL): `host` is dead, and its legs are to be closed."""
        if alive:
            self._missing_since.pop(host, None)
            return False
        since = self._missing_since.setdefault(host, now)
        if now - since < grace_s:
            return False
        del self._missing_since[host]
        return True

    def legs_of(self, host: str) -> list[tuple[str, str]]:
        """(worker, leg) of each leg `host` opened on this node's workers."""
        return sorted((worker, leg) for leg, (node, worker) in self._hosts.items() if node == host)
