"""The lifecycle of one member's relay leg, as signaling sees it: states, events, one table.

A *leg* is one client's WebRTC connection with a relay worker (``relay.control.OpenLeg``).
Only the states, the events and the table of transitions live here; who fires an event and
what is sent to whom because of it is the hub's business (``signaling.call_hub``)::

    OPENING --answered--> ANSWERED --connected--> CONNECTED --parked--> PARKED
                                                  CONNECTED <--adopted-- PARKED
    every state but CLOSED --closed--> CLOSED

A leg is *parked* when its member's call ends by Next (its own or the partner's) while its
media is up: the worker unlinks it but keeps the connection, so that the member's next relayed
call on that worker starts without a new handshake (*adopted*). Only a connected leg is worth
keeping, which is why parking is a transition from CONNECTED alone. An event the table does not
list raises :class:`IllegalLegTransition`; the hub refuses such events from workers (a late or
repeated report) instead of acting on them.
"""

from __future__ import annotations

import enum


class LegState(enum.Enum):
    OPENING = "opening"
    """Signaling sent the member's offer to the worker and waits for its answer."""
    ANSWERED = "answered"
    """The worker answered; the member has the answer, media may not flow yet."""
    CONNECTED = "connected"
    """The worker reported the leg's media connected."""
    PARKED = "parked"
    """Out of any call, unlinked, kept open for the member's next relayed call."""
    CLOSED = "closed"
    """Closed by signaling, refused or failed on the worker, or gone with the worker."""


class LegEvent(enum.Enum):
    ANSWERED = "answered"
    """The worker's SDP answer arrived."""
    CONNECTED = "connected"
    """The worker reported the media connection up."""
    PARKED = "parked"
    """The member's call ended and the leg is kept (``unlink``)."""
    ADOPTED = "adopted"
    """A parked leg becomes the member's leg in a new call on the same worker."""
    CLOSED = "closed"


S, E = LegState, LegEvent

TRANSITIONS: dict[tuple[LegState, LegEvent], LegState] = {
    (S.OPENING, E.ANSWERED): S.ANSWERED,
    (S.OPENING, E.CLOSED): S.CLOSED,
    (S.ANSWERED, E.CONNECTED): S.CONNECTED,
    (S.ANSWERED, E.CLOSED): S.CLOSED,
    (S.CONNECTED, E.CONNECTED): S.CONNECTED,  # reported again: nothing changes
    (S.CONNECTED, E.PARKED): S.PARKED,
    (S.CONNECTED, E.CLOSED): S.CLOSED,
    (S.PARKED, E.CONNECTED): S.PARKED,  # a kept connection that recovered: still kept
    (S.PARKED, E.ADOPTED): S.CONNECTED,
    (S.PARKED, E.CLOSED): S.CLOSED,
}

ANSWER_RECEIVED = frozenset({S.ANSWERED, S.CONNECTED})
"""States in which the member holds the relay's answer: a call links once both legs are here."""


class IllegalLegTransition(Exception):
    """An event that the leg's current state does not allow."""

    def __init__(self, state: LegState, event: LegEvent) -> None:
        super().__init__(f"a relay leg that is {state.value} cannot be {event.value}")
        self.state = state
        self.event = event


def allows(state: LegState, event: LegEvent) -> bool:
    return (state, event) in TRANSITIONS


def advance(state: LegState, event: LegEvent) -> LegState:
    """The state after `event`; raises IllegalLegTransition for a pair the table lacks."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalLegTransition(state, event) from None
