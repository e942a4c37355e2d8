"""Region policy: which route a call takes, decided from where its two members are.

A client's region comes only from a header the operator names as trusted (set by their CDN or
proxy); anything a client claims itself is ignored, since the strict route exists precisely for
people who would rather avoid it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signaling.config import RegionsConfig


class Route(enum.Enum):
    """How a call's media travels. Ordered from least to most strict."""

    DIRECT = "direct"
    RELAY = "relay"
    STRICT = "strict"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]


_STRICTNESS = {Route.DIRECT: 0, Route.RELAY: 1, Route.STRICT: 2}


_MAX_REGION_LENGTH = 16


class RoutePolicy:
    """Maps regions to routes; a pair gets the stricter route of its two members."""

    def __init__(self, config: RegionsConfig, override: Route | None = None) -> None:
        self._config = config
        self._routes = {region.upper(): route for region, route in config.routes.items()}
        self._override = override

    def region_from_headers(self, headers: Mapping[str, str]) -> str:
        header = self._config.trusted_header
        value = headers.get(header.lower(), "").strip().upper() if header else ""
        if not value or len(value) > _MAX_REGION_LENGTH or not value.isalnum():
            return self._config.default_region
        return value

    def routes_in_force(self) -> frozenset[Route]:
        """Every route a call can take: the override, or the default and each region's."""
        if self._override is not None:
            return frozenset({self._override})
        return frozenset({self._config.default_route, *self._routes.values()})

    def route_for_region(self, region: str) -> Route:
        if self._override is not None:
            return self._override
        return self._routes.get(region.upper(), self._config.default_route)

    def route_for_pair(self, region_a: str, region_b: str) -> Route:
        return max(
            self.route_for_region(region_a),
            self.route_for_region(region_b),
            key=lambda route: route.strictness,
        )
