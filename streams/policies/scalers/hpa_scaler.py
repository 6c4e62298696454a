"""Kubernetes Horizontal Pod Autoscaler on the engines' KV-cache utilisation (``vllm:gpu_cache_usage_perc``).

Faithful to the HPA algorithm (kubernetes.io, "Horizontal Pod Autoscaling", algorithm details and
``behavior`` defaults): every sync period (15 s) ``desired = ceil(current * metric / target)``; no change while
the ratio ``metric / target`` is within the tolerance (10%); starting (not-ready) pods count as 0% use when
scaling up; a scale-up may at most double the replicas or add 4, whichever is more; a scale-down goes only to
the highest recommendation of the stabilisation window (300 s).
"""

from __future__ import annotations

import math
from collections import deque

from streams.policies.base_scaler import BaseScaler
from streams.policies.fleet_view import FleetView, ScaleDecision
from streams.policies.policy_registry import register_scaler

__all__ = ["HPAScaler"]


@register_scaler("hpa")
class HPAScaler(BaseScaler):
    """:param target: target mean KV-cache utilisation per instance (the HPA's averageValue).
    :param tolerance: no action while |metric / target - 1| is at most this (HPA default 0.1).
    :param stabilization_s: scale-down stabilisation window (HPA default 300 s).
    :param sync_s: how often the HPA evaluates (``--horizontal-pod-autoscaler-sync-period``, default 15 s).
    """

    TRACE_TIME_PARAMS = ("stabilization_s", "sync_s")

    def __init__(self, target: float = 0.7, tolerance: float = 0.1, stabilization_s: float = 300.0,
                 sync_s: float = 15.0, min_instances: int = 1, max_instances: int = 8) -> None:
        # No freeze (not even the comparison's): the HPA's scale-down window and scale-up limit play that part.
        super().__init__(min_instances, max_instances, 0.0, sync_s)
        if not 0 < target <= 1 or tolerance < 0 or stabilization_s < 0:
            raise ValueError(f"hpa needs 0 < target <= 1, tolerance >= 0, stabilization_s >= 0; got {target}, "
                             f"{tolerance}, {stabilization_s}")
        self.target, self.tolerance, self.stabilization_s = target, tolerance, stabilization_s
        self._recommendations: deque[tuple[float, int]] = deque()

    def _decide(self, fleet: FleetView, now: float) -> ScaleDecision | None:
        ready = fleet.ready()
        current = fleet.provisioned
        if not ready or current == 0:
            return None
        used = sum(v.kv_utilization for v in ready)  # starting pods count as 0% (the HPA's scale-up rule)
        ratio = used / current / self.target
        desired = current if abs(ratio - 1.0) <= self.tolerance else math.ceil(current * ratio - 1e-9)
        desired = min(desired, max(2 * current, current + 4))  # default scale-up policy per period
        self._recommendations.append((now, desired))
        while self._recommendations[0][0] < now - self.stabilization_s:
            self._recommendations.popleft()
        details = {"kv_utilization": used / current, "ratio": ratio, "desired": float(desired)}
        if desired > current:
            return ScaleDecision(desired, f"hpa: kv {used / current:.2f} / target {self.target} -> {desired}", details)
        stable = max(d for _, d in self._recommendations)
        if stable < current:
            return ScaleDecision(stable, f"hpa: highest recommendation over {self.stabilization_s:.0f}s is {stable}",
                                 details)
        return None
