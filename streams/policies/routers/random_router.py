"""Uniformly random READY instance (seeded, so runs are reproducible)."""

from __future__ import annotations

import random

from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.policies.fleet_view import FleetView, RequestInfo, RouteChoice
from streams.policies.policy_registry import register_router

__all__ = ["RandomRouter"]


@register_router("random")
class RandomRouter(BaseRouter):
    """:param seed: seed of the router's own random stream."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def choose(self, request: RequestInfo, fleet: FleetView, now: float) -> RouteChoice:
        ready = fleet.ready()
        if not ready:
            raise NoReadyInstance(fleet.service)
        return RouteChoice(ready[self._rng.randrange(len(ready))].instance_id, reason="random")
