"""Power of two choices: sample two distinct READY instances, keep the one with fewer requests."""

from __future__ import annotations

import random

from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.policies.fleet_view import FleetView, RequestInfo, RouteChoice
from streams.policies.policy_registry import register_router

__all__ = ["PowerOfTwoRouter"]


@register_router("power-of-two")
class PowerOfTwoRouter(BaseRouter):
    """Mitzenmacher's two-choice balancing: near least-requests quality without reading every instance.

    :param seed: seed of the router's own random stream.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def choose(self, request: RequestInfo, fleet: FleetView, now: float) -> RouteChoice:
        ready = fleet.ready()
        if not ready:
            raise NoReadyInstance(fleet.service)
        if len(ready) == 1:
            return RouteChoice(ready[0].instance_id, reason="power-of-two: single instance")
        a, b = self._rng.sample(ready, 2)
        la, lb = a.running + a.waiting, b.running + b.waiting
        pick = a if la <= lb else b
        return RouteChoice(pick.instance_id, float(min(la, lb)), "power-of-two")
