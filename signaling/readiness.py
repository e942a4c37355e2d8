"""Readiness: can the service carry the calls that the routes in force promise, right now?

Liveness (``/healthz``) only says the process answers. A load balancer or an operator's first
check needs more: a relayed or strict route with no relay worker connected fails every such
call, and a strict route whose workers cannot run the model fails them too, while ``/healthz``
stays green. Pure: the routes in force and the workers' last reports go in, the reasons out.
"""

from __future__ import annotations

from collections.abc import Iterable, Set

from signaling.relays import WorkerInfo
from signaling.route_policy import Route

DRAINING = "draining"
"""The reason while a SIGTERM drains the process: a load balancer sends no new clients; the
ones connected are moving elsewhere (``signaling.drain``)."""


def unready_reasons(routes: Set[Route], workers: Iterable[WorkerInfo]) -> list[str]:
    """Why calls on `routes` cannot be carried now; empty: ready."""
    relayed = sorted(route.value for route in routes if route is not Route.DIRECT)
    if not relayed:
        return []
    taking = [info for info in workers if not info.draining]
    if not taking:
        return [
            f"no relay worker is connected and taking calls (routes in force: {', '.join(relayed)})"
        ]
    if Route.STRICT not in routes or any(info.moderation_ready for info in taking):
        return []
    states = "; ".join(f"{info.worker_id}: {_why_not_moderating(info)}" for info in taking)
    return [f"no connected relay worker can moderate (strict route): {states}"]


def _why_not_moderating(info: WorkerInfo) -> str:
    if info.moderation_ready is None:
        return "model not loaded yet"
    return info.moderation_error or "cannot moderate"
