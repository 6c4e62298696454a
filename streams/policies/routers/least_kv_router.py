"""Least KV-cache utilisation (AIBrix / production-stack style); ties by fewer requests, then instance order."""

from __future__ import annotations

from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.policies.fleet_view import FleetView, RequestInfo, RouteChoice
from streams.policies.policy_registry import register_router

__all__ = ["LeastKVRouter"]


@register_router("least-kv")
class LeastKVRouter(BaseRouter):
    """Sends each request where the KV cache is emptiest. Waiting requests hold no KV, so the request count
    breaks ties (an instance with an empty cache but a queue is not idle)."""

    def choose(self, request: RequestInfo, fleet: FleetView, now: float) -> RouteChoice:
        best = None
        best_key = (0.0, 0)
        for v in fleet.instances:
            if v.is_ready:
                key = (v.kv_utilization, v.running + v.waiting)
                if best is None or key < best_key:
                    best, best_key = v, key
        if best is None:
            raise NoReadyInstance(fleet.service)
        return RouteChoice(best.instance_id, best_key[0], "least-kv")
