"""Least outstanding requests (running + waiting at the instance); ties go to the earlier instance."""

from __future__ import annotations

from streams.policies.base_router import BaseRouter, NoReadyInstance
from streams.policies.fleet_view import FleetView, RequestInfo, RouteChoice
from streams.policies.policy_registry import register_router

__all__ = ["LeastRequestsRouter"]


@register_router("least-requests")
class LeastRequestsRouter(BaseRouter):
    """The classic load balancer (Envoy LEAST_REQUEST, vLLM production-stack's default for session-less)."""

    def choose(self, request: RequestInfo, fleet: FleetView, now: float) -> RouteChoice:
        best = None
        best_load = 0
        for v in fleet.instances:
            if v.is_ready:
                load = v.running + v.waiting
                if best is None or load < best_load:
                    best, best_load = v, load
        if best is None:
            raise NoReadyInstance(fleet.service)
        return RouteChoice(best.instance_id, float(best_load), "least-requests")
