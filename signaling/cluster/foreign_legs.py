"""Legs that this node's relay workers carry for calls hosted by other nodes.

A call is hosted by one member's node (``signaling.call_hub``), which may place it on a worker
connected to another node. That node passes the host's commands on to its worker and must send
the worker's answers, leg states and moderation reports about those legs back to the host,
not to its own hub, which knows nothing of them (and would close a leg it does not know). It
learns whose a leg is from the command that opened it. Sans-I/O: the node feeds it commands and
worker messages and acts on what it answers.
"""

from __future__ import annotations

from relay import control as rc


class ForeignLegs:
    """Leg -> the node hosting its call, for legs of this node's workers opened from others."""

    def __init__(self) -> None:
        self._hosts: dict[str, tuple[str, str]] = {}
        """Leg -> (host node, worker)."""

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
